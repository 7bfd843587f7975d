"""``repro bench fast_cifar``: the core's fast CIFAR-10 baseline against airbench94, in one run.

Our recipe (``repro.fast_cifar`` on the workload ``cifar10_fast``) trains on the workload's
training split (45k images; the target is read on the 5k validation split) and reports its time
to 94% on the training clock (evaluation excluded), its training time and its test accuracy with
test-time augmentation. Where the ``airbench`` package (a GPU-only dev dependency) and a CUDA
device are present, ``airbench.train94`` then trains on the *same* 45k training images after its
own warm-up run, and its reported ``total_time_seconds`` (whitening, training and its final TTA
evaluation) and test accuracy are recorded beside ours; the ratio ours / airbench is the number
issue #10 asks for (goal: <= 2).

Without CIFAR-10 on the machine (the device has no network) ``--synthetic`` trains both on
random CIFAR-shaped images: the ratio of training times then measures speed only, and the record
says so. ``--quick`` (CPU checks of the machinery) uses a 2048-image subset, one epoch and a
narrow net (widths 16/32/32); its numbers mean nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from repro import catalog, environment, fast_cifar, paths
from repro.checkpoint import Checkpointer
from repro.datasets import TensorData, load_prepared
from repro.errors import ReproError
from repro.files import write_json, write_text
from repro.run import RunContext, seed_everything, summarise
from repro.timing import TrainClock

GOAL = 2.0  # ours / airbench94, time to 94% on one GPU


def synthetic_cifar(n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> TensorData:
    """Random CIFAR-shaped data (uint8-valued images in [0, 1], 10 classes): speed only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), generator=g, dtype=torch.uint8).float() / 255
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return TensorData(name="synthetic_cifar10", task="classification", x_train=x[:n_train], y_train=y[:n_train],
                      x_test=x[n_train:], y_test=y[n_train:], sha256="synthetic", num_classes=10)


def _data(synthetic: bool, quick: bool) -> tuple[TensorData, str]:
    wl = catalog.get_workload(fast_cifar.WORKLOAD)
    if synthetic:
        data, label = synthetic_cifar(*((2048, 512) if quick else (50_000, 10_000))), "synthetic (speed only)"
    else:
        if not paths.prepared_data_path(wl.dataset).is_file():
            raise ReproError(f"dataset {wl.dataset!r} is not prepared; run `repro data prepare {wl.dataset}` "
                             "(it downloads CIFAR-10), or pass --synthetic for a speed-only comparison")
        data, label = load_prepared(wl.dataset), "CIFAR-10"
        if quick:
            data = dataclasses.replace(data, x_train=data.x_train[:2048], y_train=data.y_train[:2048],
                                       x_test=data.x_test[:512], y_test=data.y_test[:512])
    return wl.split(data), label


QUICK_WIDTHS = (16, 32, 32)


def run_ours(data: TensorData, seed: int, device: torch.device, hparams: dict[str, Any], tmp: Path,
             quick: bool = False) -> dict[str, Any]:
    wl = catalog.get_workload(fast_cifar.WORKLOAD)
    if quick:
        wl = dataclasses.replace(wl, model_kwargs={**wl.model_kwargs, "widths": QUICK_WIDTHS})
    seed_everything(seed, device)
    ctx = RunContext(paper="core", experiment="bench_fast_cifar", method="fast_cifar", seed=seed, scale="paper",
                     workload=wl, data=data.to(device), device=device, clock=TrainClock(device),
                     checkpoint=Checkpointer(tmp / f"fast_cifar_seed{seed}.pt"),
                     generator=torch.Generator().manual_seed(seed), progress=False,
                     device_generator=torch.Generator(device=device).manual_seed(seed) if device.type == "cuda" else None)
    ctx.test_every_eval = False
    fast_cifar.METHOD.fit(ctx, dict(hparams))
    ctx.score_final_test()
    s = summarise(ctx)
    return {k: s[k] for k in ("time_to_target_s", "train_time_s", "test_accuracy", "val_accuracy", "epochs",
                              "reached_target") if k in s} | {"warmup_time_s": s.get("warmup_time_s", 0.0)}


def _airbench_table(text: str) -> dict[str, float]:
    """The final row of airbench's printed table: its test accuracy with TTA and total time."""
    rows = [r for r in text.splitlines() if r.startswith("|") and "eval" in r]
    if not rows:
        raise ReproError("airbench printed no final 'eval' row; its output format changed:\n" + text[-2000:])
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    return {"tta_test_accuracy": float(cells[5]), "total_time_s": float(cells[6])}


def run_airbench(data: TensorData, runs: int, epochs: float | None, tmp: Path) -> dict[str, Any]:
    """airbench94 (the PyPI package) on the same training images; its own warm-up run first."""
    import airbench

    folder = tmp / "cifar10"  # its training loop reads the test set from ./cifar10/test.pt
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train.pt", data.x_train, data.y_train), ("test.pt", data.x_test, data.y_test)):
        images = (x.cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # its NHWC uint8 layout
        torch.save({"images": images, "labels": y.cpu(), "classes": [str(c) for c in range(10)]}, folder / name)
    out = []
    kwargs = {} if epochs is None else {"epochs": epochs}
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        loader = airbench.CifarLoader(str(folder), train=True, batch_size=1024, aug={"flip": True, "translate": 2},
                                      altflip=True)
        with contextlib.redirect_stdout(io.StringIO()):
            airbench.warmup94(train_loader=loader, **kwargs)
        for run in range(runs):
            buf = io.StringIO()
            loader = airbench.CifarLoader(str(folder), train=True, batch_size=1024,
                                          aug={"flip": True, "translate": 2}, altflip=True)
            with contextlib.redirect_stdout(buf):
                airbench.train94(train_loader=loader, run=run, **kwargs)
            out.append(_airbench_table(buf.getvalue()))
    finally:
        os.chdir(cwd)
    return {"runs": out, "version": getattr(airbench, "__version__", environment.package_versions().get("airbench"))}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(values) and finite else math.inf


def bench_fast_cifar(device: str | None = None, seeds: int = 3, synthetic: bool = False, quick: bool = False,
                     out: Path | None = None) -> tuple[dict[str, Any], Path, Path]:
    dev = torch.device(device) if device else environment.select_device()
    data, label = _data(synthetic, quick)
    hparams: dict[str, Any] = {"train_epochs": 1.0} if quick else {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        run_ours(dataclasses.replace(data, x_train=data.x_train[:2048], y_train=data.y_train[:2048]), 0, dev,
                 {**hparams, "train_epochs": 1.0}, tmp, quick)  # warm-up, untimed
        ours = [run_ours(data, s, dev, hparams, tmp, quick) for s in range(seeds)]
        has_airbench = dev.type == "cuda" and importlib.util.find_spec("airbench") is not None
        theirs = run_airbench(data, seeds, 1.0 if quick else None, tmp) if has_airbench else None
    clock = "train_time_s" if synthetic else "time_to_target_s"
    mine = _mean([o.get(clock, math.nan) if (synthetic or o.get("reached_target")) else math.inf for o in ours])
    doc: dict[str, Any] = {
        "data": label, "device": environment.device_name(dev), "hardware": environment.hardware(),
        "seeds": seeds, "quick": quick, "ours": ours, "ours_clock": clock, "ours_mean_s": mine,
        "airbench": theirs, "goal_ratio": GOAL,
    }
    lines = [f"# Fast CIFAR-10 baseline vs airbench94 — {doc['device']}", "",
             f"Data: {label}; {seeds} seeds; ours: `{clock}` on the training clock (evaluation excluded).", "",
             "| seed | ours time to 94% (s) | ours train time (s) | ours test acc (TTA) |", "|---|---|---|---|"]
    lines += [f"| {i} | {o.get('time_to_target_s', math.nan):.2f} | {o['train_time_s']:.2f} | "
              f"{o.get('test_accuracy', math.nan):.4f} |" for i, o in enumerate(ours)]
    if theirs is None:
        why = "no CUDA device" if dev.type != "cuda" else "the airbench package is not installed"
        doc["ratio"] = None
        lines += ["", f"airbench94 not run: {why}."]
    else:
        ab = _mean([r["total_time_s"] for r in theirs["runs"]])
        doc["airbench_mean_s"], doc["ratio"] = ab, mine / ab if ab > 0 else math.inf
        lines += ["", "| airbench run | total time (s) | test acc (TTA) |", "|---|---|---|"]
        lines += [f"| {i} | {r['total_time_s']:.2f} | {r['tta_test_accuracy']:.4f} |" for i, r in enumerate(theirs["runs"])]
        lines += ["", f"**Ratio ours / airbench94: {doc['ratio']:.2f}** (goal <= {GOAL}; "
                      + ("speed only: synthetic data" if synthetic else "time to 94% vs airbench's total time") + ")."]
    prefix = out or paths.project_root() / "packages" / "core" / "benchmarks" / "results" / f"fast_cifar-{dev.type}"
    js = write_json(doc, prefix.with_name(prefix.name + ".json"))
    md = write_text("\n".join(lines) + "\n", prefix.with_name(prefix.name + ".md"))
    return doc, js, md
