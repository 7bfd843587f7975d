"""Datasets downloaded through torchvision, with a local mirror and checksums.

Lookup order for every file: already in ``data/raw`` (verified) → ``$REPRO_DATA_MIRROR``
(verified, then copied) → torchvision's download (md5-checked by torchvision, then verified
again here). Offline with no mirror gives one error naming the URL and ``REPRO_DATA_MIRROR``.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
from pathlib import Path
from typing import Any

import torch

from repro import paths
from repro.checksums import verify
from repro.datasets.registry import DatasetSpec, register_dataset
from repro.errors import ReproError

MIRROR_ENV = "REPRO_DATA_MIRROR"

# sha256 of the official *uncompressed* MNIST files (torchvision's MNIST/raw layout).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def resolve_mirror(configured: str | Path | None = None) -> Path | None:
    """The local mirror to use: ``$REPRO_DATA_MIRROR`` (must exist), else *configured* (a path
    relative to the project root, e.g. params.yaml's ``data_mirror``) if it exists, else None."""
    value = os.environ.get(MIRROR_ENV)
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ReproError(f"{MIRROR_ENV}={value} is not a directory")
        return path
    if configured:
        path = (paths.project_root() / configured).expanduser().resolve()
        if path.is_dir():
            return path
    return None


def _download_error(url: str, exc: BaseException, what: str) -> ReproError:
    return ReproError(
        f"could not download {url} ({type(exc).__name__}: {exc}). No copy of {what} was found in a "
        f"local mirror: set {MIRROR_ENV} to a directory that holds it "
        f"(e.g. {MIRROR_ENV}=../shared/data), or run where the URL is reachable."
    )


def fetch_mnist(raw_dir: Path, mirror: Path | None = None) -> Path:
    """Make ``raw_dir/MNIST/raw`` hold the four verified IDX files; return ``raw_dir``."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_and_extract_archive

    target = raw_dir / "MNIST" / "raw"
    target.mkdir(parents=True, exist_ok=True)
    gz_md5 = {name.removesuffix(".gz"): md5 for name, md5 in MNIST.resources}
    for name, sha in MNIST_SHA256.items():
        dest = target / name
        if not dest.exists() and mirror is not None:
            for candidate in (mirror / "MNIST" / "raw" / name, mirror / name):
                if candidate.is_file():
                    verify(candidate, sha, fix=f"The mirror copy in {MIRROR_ENV} is damaged; replace it.")
                    shutil.copyfile(candidate, dest)
                    break
        if not dest.exists():
            url = MNIST.mirrors[0] + name + ".gz"
            try:
                download_and_extract_archive(url, str(target), filename=name + ".gz", md5=gz_md5[name])
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                raise _download_error(url, exc, f"MNIST/raw/{name}") from None
        verify(dest, sha, fix=f"Delete {dest} and prepare again.")
    return raw_dir


def mnist(params: dict[str, Any], raw_dir: Path, mirror: Path | None = None) -> dict[str, torch.Tensor]:
    from torchvision.datasets import MNIST

    root = fetch_mnist(raw_dir, mirror)
    out: dict[str, torch.Tensor] = {}
    for split, train in (("train", True), ("test", False)):
        ds = MNIST(str(root), train=train, download=False)
        out[f"x_{split}"] = ds.data.unsqueeze(1)  # uint8 (N, 1, 28, 28); scaled to [0, 1] on load
        out[f"y_{split}"] = ds.targets.long()
    return out


def fetch_cifar(raw_dir: Path, cls: type, mirror: Path | None = None) -> Path:
    """Make ``raw_dir/<base_folder>`` hold the verified CIFAR batches (md5 from torchvision)."""
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive, extract_archive

    raw_dir.mkdir(parents=True, exist_ok=True)
    folder = raw_dir / cls.base_folder
    batches = [(folder / name, md5) for name, md5 in cls.train_list + cls.test_list]

    def complete() -> bool:
        return all(check_integrity(str(p), md5) for p, md5 in batches)

    if not complete():
        archive = mirror / cls.filename if mirror else None
        if archive is not None and archive.is_file():
            if not check_integrity(str(archive), cls.tgz_md5):
                raise ReproError(
                    f"checksum mismatch for {archive}: expected md5 {cls.tgz_md5}. The mirror copy is "
                    f"corrupted or truncated and was not extracted; replace it."
                )
            extract_archive(str(archive), str(raw_dir))
        else:
            try:
                download_and_extract_archive(cls.url, str(raw_dir), filename=cls.filename, md5=cls.tgz_md5)
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                raise _download_error(cls.url, exc, cls.filename) from None
    for path, md5 in batches:  # every batch is checked before torchvision unpickles it
        if not check_integrity(str(path), md5):
            raise ReproError(
                f"checksum mismatch for {path}: expected md5 {md5}. It was not unpickled; "
                f"delete {folder} and prepare again."
            )
    return raw_dir


def _cifar_builder(cls_name: str):
    def build(params: dict[str, Any], raw_dir: Path, mirror: Path | None = None) -> dict[str, torch.Tensor]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        root = fetch_cifar(raw_dir, cls, mirror)
        out: dict[str, torch.Tensor] = {}
        for split, train in (("train", True), ("test", False)):
            ds = cls(str(root), train=train, download=False)
            out[f"x_{split}"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
            out[f"y_{split}"] = torch.tensor(ds.targets, dtype=torch.int64)
        return out

    return build


register_dataset(
    DatasetSpec("mnist", "downloaded", "classification", mnist,
                "MNIST 28x28 handwritten digits (60k/10k), torchvision + mirror", num_classes=10)
)
register_dataset(
    DatasetSpec("cifar10", "downloaded", "classification", _cifar_builder("CIFAR10"),
                "CIFAR-10 32x32 colour images (50k/10k), torchvision download with md5", num_classes=10)
)
register_dataset(
    DatasetSpec("cifar100", "downloaded", "classification", _cifar_builder("CIFAR100"),
                "CIFAR-100 32x32 colour images (50k/10k), torchvision download with md5", num_classes=100)
)
