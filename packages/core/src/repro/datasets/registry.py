"""The dataset registry and the prepare/load contract shared by every dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from repro import paths
from repro.checksums import file_digest, verify
from repro.errors import ReproError
from repro.files import save_torch
from repro.registry import Registry

SPLITS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class TensorData:
    """A prepared dataset: train/test tensors, the task, and the sha256 of the prepared file.

    ``x_val``/``y_val`` are empty until a workload carves its validation split out of the
    training data (``Workload.split``); the prepared file itself holds train and test only.
    """

    name: str
    task: Literal["regression", "classification"]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    sha256: str = ""
    num_classes: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # the parameters it was prepared with
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        return self.num_classes if self.task == "classification" else int(self.y_train.shape[-1])

    def to(self, device: torch.device) -> "TensorData":
        moved = {k: getattr(self, k).to(device) for k in SPLITS}
        if self.x_val is not None:
            moved.update(x_val=self.x_val.to(device), y_val=self.y_val.to(device))
        return dataclasses.replace(self, **moved)


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one dataset. ``build(params, raw_dir)`` returns the four split tensors
    (downloaded datasets: ``build(params, raw_dir, mirror=...)``, the local mirror or None).

    Images are returned as float32 in [0, 1] with shape (N, C, H, W) or flat (N, D); regression
    targets as float32 (N, out); class labels as int64 (N,).
    """

    name: str
    kind: Literal["generated", "embedded", "downloaded"]
    task: Literal["regression", "classification"]
    build: Callable[[dict[str, Any], Path], dict[str, torch.Tensor]]
    description: str
    num_classes: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)


def _check(name: str, spec: DatasetSpec) -> None:
    if name != spec.name:
        raise ReproError(f"dataset {spec.name!r} registered under the name {name!r}")


DATASETS: Registry[DatasetSpec] = Registry("dataset", _check)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


def _sidecar(out: Path) -> Path:
    return out.with_name(out.name + ".sha256")


def prepare(spec: DatasetSpec, params: dict[str, Any] | None = None, out: Path | None = None,
            mirror: Path | None = None) -> Path:
    """Build dataset *spec* with *params* (its defaults filled) into *out*; return the path.

    *mirror*: a local copy of downloaded files (torchvision layout), looked in before any download.
    """
    name = spec.name
    unknown_keys = set(params or {}) - set(spec.defaults)
    if unknown_keys:  # a dataset without defaults takes no parameters
        raise ReproError(f"dataset {name!r}: unknown parameter {sorted(unknown_keys)[0]!r}; "
                         f"valid choices: {', '.join(sorted(spec.defaults)) or '(none: it takes no parameters)'}")
    params = {**spec.defaults, **(params or {})}
    out = out or paths.prepared_data_path(name)
    raw_dir = paths.data_dir() / "raw"
    extra = {"mirror": mirror} if spec.kind == "downloaded" else {}
    tensors = spec.build(params, raw_dir, **extra)
    missing = [k for k in SPLITS if k not in tensors]
    if missing:
        raise ReproError(f"dataset {name!r}: builder returned no {missing}")
    payload = {k: tensors[k].contiguous() for k in SPLITS}
    payload["meta"] = {"name": name, "task": spec.task, "num_classes": spec.num_classes, "params": params}
    sidecar = _sidecar(out)
    sidecar.unlink(missing_ok=True)  # the data file is not "finished" until its sidecar exists
    save_torch(payload, out)
    sidecar.write_text(file_digest(out) + "\n")
    return out


def load_prepared(name: str, path: Path | None = None) -> TensorData:
    """Load a prepared dataset after verifying its checksum sidecar (never unpickles)."""
    path = path or paths.prepared_data_path(name)
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        raise ReproError(
            f"dataset {name!r} is not prepared ({path} or its .sha256 is missing); "
            f"run `repro data prepare {name}` (or the pipeline) first"
        )
    expected = sidecar.read_text(errors="replace").strip()
    verify(path, expected, fix=f"Delete it and run `repro data prepare {name}` again.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = payload["meta"]
        tensors = {k: payload[k] for k in SPLITS}
        if not all(isinstance(t, torch.Tensor) for t in tensors.values()):
            raise TypeError("a split is not a tensor")
        task, num_classes, params = meta["task"], int(meta["num_classes"]), dict(meta["params"])
        if task not in ("regression", "classification"):
            raise ValueError(f"unknown task {task!r}")
    except Exception as exc:  # noqa: BLE001 - refused by weights_only, or not our layout
        raise ReproError(f"{path} matches its checksum but is not a prepared dataset that can be loaded safely "
                         f"({type(exc).__name__}); delete it and run `repro data prepare {name}` again") from None
    for k in ("x_train", "x_test"):
        if tensors[k].dtype == torch.uint8:  # images are stored as bytes, used as floats in [0, 1]
            tensors[k] = tensors[k].float().div_(255.0)
    return TensorData(name=name, task=task, **tensors, sha256=expected, num_classes=num_classes, params=params)
