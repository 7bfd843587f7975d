"""Downloaded datasets: the MNIST mirror, offline errors, and CIFAR from a (fake) mirror archive."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.error
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.utils as tv_utils

from repro import paths
from repro.datasets import DATASETS, load_prepared
from repro.datasets import prepare as prepare_spec
from repro.datasets.downloaded import MNIST_SHA256, fetch_cifar, resolve_mirror
from repro.errors import ReproError

# The offline mirror of real datasets: $REPRO_DATA_MIRROR (CI sets it), else ../shared/data
# beside the checkout.
SHARED_DATA = Path(os.environ.get("REPRO_DATA_MIRROR") or Path(__file__).resolve().parents[4] / "shared" / "data")
MNIST_RAW = SHARED_DATA / "MNIST" / "raw"
needs_mnist = pytest.mark.skipif(
    not all((MNIST_RAW / name).is_file() for name in MNIST_SHA256), reason=f"no MNIST mirror in {SHARED_DATA}"
)


def prepare(name: str):
    """What `repro data prepare NAME` does: the mirror resolved from $REPRO_DATA_MIRROR."""
    return prepare_spec(DATASETS.get(name), mirror=resolve_mirror())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def no_download(monkeypatch):
    """Offline: torchvision's download fails as it does without a network."""
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    return calls


@pytest.fixture
def no_unpickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle.load was called on an unverified file")

    monkeypatch.setattr(pickle, "load", refuse)


# --------------------------------------------------------------------------- MNIST


@needs_mnist
def test_mnist_from_mirror(project, monkeypatch, no_download):
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(SHARED_DATA))
    out = prepare("mnist")
    assert no_download == []  # nothing was downloaded
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert raw["x_train"].dtype == torch.uint8 and raw["x_test"].dtype == torch.uint8  # stored as bytes
    data = load_prepared("mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == torch.float32
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert torch.equal(data.x_test, raw["x_test"].float() / 255.0)
    assert data.num_classes == 10 and data.task == "classification"
    counts = torch.bincount(data.y_train, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(data.y_test, minlength=10).sum() == 10000
    # the raw files were copied into the project and are verified copies of the mirror
    for name in MNIST_SHA256:
        assert (project / "data" / "raw" / "MNIST" / "raw" / name).is_file()


@needs_mnist
def test_mnist_damaged_mirror_is_refused(project, tmp_path, monkeypatch, no_download):
    mirror = tmp_path / "mirror"
    raw = mirror / "MNIST" / "raw"
    raw.mkdir(parents=True)
    damaged = "train-labels-idx1-ubyte"
    for name in MNIST_SHA256:
        if name != damaged:
            (raw / name).symlink_to(MNIST_RAW / name)
    blob = bytearray((MNIST_RAW / damaged).read_bytes())
    blob[1000] ^= 0x01
    (raw / damaged).write_bytes(bytes(blob))
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(mirror))
    with pytest.raises(ReproError) as info:
        prepare("mnist")
    msg = str(info.value)
    assert "checksum mismatch" in msg
    assert str(raw / damaged) in msg
    assert MNIST_SHA256[damaged] in msg and hashlib.sha256(bytes(blob)).hexdigest() in msg
    assert "REPRO_DATA_MIRROR" in msg
    assert no_download == []  # a damaged mirror is an error, not a reason to go online
    assert not (project / "data" / "raw" / "MNIST" / "raw" / damaged).exists()  # never copied
    assert not paths.prepared_data_path("mnist").exists()


def test_mnist_offline_without_mirror(project, no_download):
    with pytest.raises(ReproError) as info:
        prepare("mnist")
    msg = str(info.value)
    url = torchvision.datasets.MNIST.mirrors[0] + "train-images-idx3-ubyte.gz"
    assert url in msg
    assert "REPRO_DATA_MIRROR" in msg
    assert "URLError" in msg
    assert no_download == [url]
    assert not paths.prepared_data_path("mnist").exists()
    assert not paths.prepared_data_path("mnist").with_name("mnist.pt.sha256").exists()


def test_mirror_that_is_not_a_directory(project, monkeypatch, tmp_path, no_download):
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(ReproError, match="REPRO_DATA_MIRROR=.*nowhere is not a directory"):
        prepare("mnist")
    assert no_download == []


def test_resolve_mirror_order(project, monkeypatch, tmp_path):
    """$REPRO_DATA_MIRROR first; else the configured path, relative to the project root, if it
    exists; else no mirror."""
    configured = project / "mirror"
    assert resolve_mirror() is None
    assert resolve_mirror("mirror") is None  # configured but absent: ignored
    configured.mkdir()
    assert resolve_mirror("mirror") == configured.resolve()
    assert resolve_mirror(str(configured)) == configured.resolve()  # absolute works too
    env = tmp_path / "env-mirror"
    env.mkdir()
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(env))
    assert resolve_mirror("mirror") == env


def test_mnist_prepare_uses_the_given_mirror_only(project, monkeypatch, tmp_path, no_download):
    """An explicit mirror without MNIST in it does not stop the download attempt (and its error)."""
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    with pytest.raises(ReproError, match="could not download"):
        prepare_spec(DATASETS.get("mnist"), mirror=empty)
    assert len(no_download) == 1


def test_mnist_damaged_local_raw_file_is_refused(project, no_download):
    """A file already in data/raw is verified too (it is not re-fetched over)."""
    target = project / "data" / "raw" / "MNIST" / "raw"
    target.mkdir(parents=True)
    (target / "train-images-idx3-ubyte").write_bytes(b"not mnist")
    with pytest.raises(ReproError) as info:
        prepare("mnist")
    assert str(target / "train-images-idx3-ubyte") in str(info.value)
    assert "checksum mismatch" in str(info.value)
    assert no_download == []


# --------------------------------------------------------------------------- CIFAR-10

PER_BATCH = 4


def _batch(seed: int, n: int = PER_BATCH) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "batch_label": f"batch {seed}",
        "labels": [int(v) for v in rng.integers(0, 10, n)],
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "filenames": [f"img{seed}_{i}.png" for i in range(n)],
    }


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in torchvision's layout, tarred into a mirror; CIFAR10's md5s point at it."""
    src = tmp_path / "cifar-src"
    folder = src / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _batch(i) for i in range(1, 6)}
    batches["test_batch"] = _batch(99)
    for name, content in batches.items():
        with open(folder / name, "wb") as fh:
            pickle.dump(content, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, fh, protocol=2)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "tgz_md5", md5(archive))
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / "batches.meta")})
    monkeypatch.setenv("REPRO_DATA_MIRROR", str(mirror))
    return {"batches": batches, "folder": folder, "archive": archive, "mirror": mirror}


def test_cifar10_from_mirror(project, fake_cifar, no_download):
    out = prepare("cifar10")
    assert no_download == []
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert raw["x_train"].dtype == torch.uint8
    data = load_prepared("cifar10")
    b = fake_cifar["batches"]
    assert data.x_train.shape == (5 * PER_BATCH, 3, 32, 32) and data.x_test.shape == (PER_BATCH, 3, 32, 32)
    assert data.num_classes == 10 and data.y_train.dtype == torch.int64
    expected_train = np.concatenate([b[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert torch.equal(raw["x_train"], torch.from_numpy(expected_train))  # pixels in NCHW, batch order kept
    assert torch.equal(raw["x_test"], torch.from_numpy(b["test_batch"]["data"].reshape(-1, 3, 32, 32)))
    assert data.y_train.tolist() == [y for i in range(1, 6) for y in b[f"data_batch_{i}"]["labels"]]
    assert data.y_test.tolist() == b["test_batch"]["labels"]
    assert torch.equal(data.x_train, raw["x_train"].float() / 255.0)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_cifar_truncated_mirror_archive_is_refused(project, fake_cifar, no_download, no_unpickle):
    archive = fake_cifar["archive"]
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(ReproError) as info:
        prepare("cifar10")
    msg = str(info.value)
    assert "checksum mismatch" in msg and str(archive) in msg
    assert torchvision.datasets.CIFAR10.tgz_md5 in msg
    assert no_download == []
    assert not (project / "data" / "raw" / "cifar-10-batches-py").exists()  # never extracted
    assert not paths.prepared_data_path("cifar10").exists()


def test_cifar_batch_with_bad_md5_is_not_unpickled(project, fake_cifar, monkeypatch, no_download, no_unpickle):
    # Re-pack the mirror archive with a tampered batch; the archive's own md5 is made to match,
    # so only the per-batch check can catch it.
    folder = fake_cifar["folder"]
    blob = bytearray((folder / "data_batch_3").read_bytes())
    blob[-50] ^= 0xFF
    (folder / "data_batch_3").write_bytes(bytes(blob))
    archive = fake_cifar["archive"]
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "tgz_md5", md5(archive))
    expected = dict(cls.train_list)["data_batch_3"]
    with pytest.raises(ReproError) as info:
        prepare("cifar10")
    msg = str(info.value)
    target = project / "data" / "raw" / "cifar-10-batches-py" / "data_batch_3"
    assert "checksum mismatch" in msg and str(target) in msg and expected in msg
    assert "not unpickled" in msg
    assert not paths.prepared_data_path("cifar10").exists()


def test_cifar_damaged_local_batch_is_restored_from_mirror(project, fake_cifar, no_download):
    prepare("cifar10")
    first = load_prepared("cifar10")
    local = project / "data" / "raw" / "cifar-10-batches-py" / "test_batch"
    local.write_bytes(local.read_bytes()[:-10])
    prepare("cifar10")
    second = load_prepared("cifar10")
    assert torch.equal(first.x_test, second.x_test)
    assert md5(local) == dict(torchvision.datasets.CIFAR10.test_list)["test_batch"]


def test_cifar_offline_without_mirror(project, fake_cifar, monkeypatch, no_download):
    monkeypatch.delenv("REPRO_DATA_MIRROR")
    cls = torchvision.datasets.CIFAR10
    with pytest.raises(ReproError) as info:
        fetch_cifar(project / "data" / "raw", cls)
    assert cls.url in str(info.value) and "REPRO_DATA_MIRROR" in str(info.value)
    assert no_download == [cls.url]
    with pytest.raises(ReproError, match="could not download"):
        prepare("cifar10")  # the mirror is what $REPRO_DATA_MIRROR names, nothing else


def test_cifar_from_an_explicit_mirror(project, fake_cifar, monkeypatch, no_download):
    monkeypatch.delenv("REPRO_DATA_MIRROR")
    prepare_spec(DATASETS.get("cifar10"), mirror=fake_cifar["mirror"])
    assert no_download == []
    assert load_prepared("cifar10").x_test.shape == (PER_BATCH, 3, 32, 32)


def test_cifar_mirror_without_archive_falls_back_to_download(project, fake_cifar, no_download):
    fake_cifar["archive"].unlink()
    with pytest.raises(ReproError, match="could not download"):
        prepare("cifar10")
    assert no_download == [torchvision.datasets.CIFAR10.url]
