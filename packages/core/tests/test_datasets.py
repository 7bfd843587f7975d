"""Generated and embedded datasets; the prepare / load_prepared checksum contract."""

from __future__ import annotations

import math

import pytest
import torch

from repro import paths
from repro.checksums import file_digest
from repro.datasets import dataset_names, get_dataset, load_prepared, prepare
from repro.datasets.generated import mexican_hat, sine
from repro.errors import ReproError

SINE = get_dataset("sine").defaults
HAT = get_dataset("mexican_hat").defaults


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_registry_lists_builtin_datasets():
    names = dataset_names()
    for name in ("sine", "mexican_hat", "digits", "mnist", "cifar10", "cifar100"):
        assert name in names
    with pytest.raises(ReproError, match=r"unknown dataset 'nope'; valid choices: .*cifar10.*sine"):
        get_dataset("nope")


@pytest.mark.parametrize(("build", "defaults", "in_dim"), [(sine, SINE, 1), (mexican_hat, HAT, 2)])
def test_generated_is_deterministic(tmp_path, build, defaults, in_dim):
    a, b = build(dict(defaults), tmp_path), build(dict(defaults), tmp_path)
    assert_same(a, b)
    assert a["x_train"].shape == (defaults["n_train"], in_dim)
    assert a["y_train"].shape == (defaults["n_train"], 1)
    assert a["x_test"].shape == (defaults["n_test"], in_dim)
    assert a["y_test"].shape == (defaults["n_test"], 1)
    assert all(t.dtype == torch.float32 for t in a.values())


def test_sine_values():
    d = sine(dict(SINE), None)
    assert torch.allclose(d["y_test"], torch.sin(d["x_test"]))  # noise-free test targets
    residual = d["y_train"] - torch.sin(d["x_train"])
    assert 0.03 < residual.std().item() < 0.07  # noise 0.05
    assert d["x_train"].min() >= -math.pi and d["x_train"].max() <= math.pi


def test_mexican_hat_values():
    d = mexican_hat(dict(HAT), None)
    r = d["x_test"].norm(dim=1, keepdim=True)
    assert torch.allclose(d["y_test"], torch.sin(r) / r, atol=1e-6)
    assert d["x_train"].abs().max() <= 8.0
    z = mexican_hat({**HAT, "n_test": 2}, None)
    # sin(r)/r is 1 at the origin, not NaN
    assert torch.isfinite(mexican_hat({**HAT, "extent": 1e-30}, None)["y_test"]).all()
    assert z["x_test"].shape == (2, 2)


@pytest.mark.parametrize(("build", "defaults"), [(sine, SINE), (mexican_hat, HAT)])
def test_generated_changes_with_params(build, defaults):
    base = build(dict(defaults), None)
    other_seed = build({**defaults, "seed": defaults["seed"] + 1}, None)
    assert not torch.equal(base["x_train"], other_seed["x_train"])
    noisier = build({**defaults, "noise": 0.5}, None)
    assert torch.equal(base["x_train"], noisier["x_train"])  # same draws, different noise scale
    assert not torch.equal(base["y_train"], noisier["y_train"])
    assert torch.equal(base["y_test"], noisier["y_test"])  # test targets are noise-free
    bigger = build({**defaults, "n_train": defaults["n_train"] + 5}, None)
    assert bigger["x_train"].shape[0] == defaults["n_train"] + 5


def test_prepare_writes_file_and_sidecar(project):
    out = prepare("sine")
    assert out == project / "data" / "prepared" / "sine.pt"
    sidecar = out.with_name("sine.pt.sha256")
    assert sidecar.read_text() == file_digest(out) + "\n"
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left beside it


def test_prepare_load_round_trip(project):
    params = {**SINE, "n_train": 50, "noise": 0.1}
    out = prepare("sine", params)
    data = load_prepared("sine")
    expected = sine(params, None)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(data, k), expected[k]), k
    assert data.name == "sine" and data.task == "regression"
    assert data.sha256 == file_digest(out)
    assert data.params == params
    assert data.input_shape == (1,) and data.output_dim == 1


def test_prepare_fills_defaults_and_to_out(project, tmp_path):
    out = prepare("sine", {"n_train": 10}, out=tmp_path / "elsewhere" / "s.pt")
    data = load_prepared("sine", out)
    assert data.params == {**SINE, "n_train": 10}
    assert data.x_train.shape == (10, 1) and data.x_test.shape == (SINE["n_test"], 1)
    assert not paths.prepared_data_path("sine").exists()


def test_prepare_is_byte_reproducible(project):
    first = file_digest(prepare("mexican_hat"))
    second = file_digest(prepare("mexican_hat"))
    assert first == second


def test_prepare_twice_gives_same_tensors(project):
    prepare("mexican_hat")
    a = load_prepared("mexican_hat")
    prepare("mexican_hat")
    b = load_prepared("mexican_hat")
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k


@pytest.fixture
def no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a file that failed its checksum")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_prepared_file_is_refused(project, no_torch_load, damage):
    out = prepare("sine")
    expected = out.with_name("sine.pt.sha256").read_text().strip()
    blob = bytearray(out.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        blob = blob[: len(blob) - 100]
    out.write_bytes(bytes(blob))
    actual = file_digest(out)
    with pytest.raises(ReproError) as info:
        load_prepared("sine")
    msg = str(info.value)
    assert str(out) in msg
    assert "expected" in msg and expected in msg
    assert actual in msg
    assert "repro data prepare sine" in msg


@pytest.mark.parametrize("missing", ["data", "sidecar"])
def test_unprepared_dataset(project, missing):
    if missing == "sidecar":
        prepare("sine").with_name("sine.pt.sha256").unlink()
    with pytest.raises(ReproError) as info:
        load_prepared("sine")
    assert "not prepared" in str(info.value)
    assert "run `repro data prepare sine`" in str(info.value)


def test_sidecar_removed_before_rewrite(project, monkeypatch):
    """An interrupted re-prepare never leaves an old sidecar vouching for a new file."""
    out = prepare("sine")
    sidecar = out.with_name("sine.pt.sha256")
    assert sidecar.exists()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("repro.datasets.registry.save_torch", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare("sine", {"n_train": 20})
    assert not sidecar.exists()
    with pytest.raises(ReproError, match="not prepared"):
        load_prepared("sine")


def test_digits(project):
    prepare("digits", {"test_fraction": 0.25, "seed": 0})
    d = load_prepared("digits")
    assert d.task == "classification" and d.num_classes == 10 and d.output_dim == 10
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.y_train.shape == (1347,) and d.y_train.dtype == torch.int64
    assert d.x_train.dtype == torch.float32
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and d.x_train.max() == 1.0
    train_counts = torch.bincount(d.y_train, minlength=10)
    test_counts = torch.bincount(d.y_test, minlength=10)
    assert set(d.y_train.tolist()) == set(range(10))
    # stratified: every class is split 75/25 up to rounding
    total = train_counts + test_counts
    assert total.sum() == 1797
    assert ((test_counts.double() - 0.25 * total.double()).abs() <= 1).all()
    # train and test are disjoint images of the same 1,797
    assert d.x_train.shape[0] + d.x_test.shape[0] == 1797


def test_digits_split_depends_on_seed():
    from repro.datasets.embedded import digits

    a = digits({"test_fraction": 0.25, "seed": 0}, None)
    b = digits({"test_fraction": 0.25, "seed": 0}, None)
    c = digits({"test_fraction": 0.25, "seed": 1}, None)
    assert torch.equal(a["y_test"], b["y_test"]) and torch.equal(a["x_test"], b["x_test"])
    assert not torch.equal(a["x_test"], c["x_test"])
    assert digits({"test_fraction": 0.5, "seed": 0}, None)["x_test"].shape[0] == 899
