"""Generated and embedded datasets; the prepare / load_prepared checksum contract; the catalog."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from repro import paths
from repro.checksums import file_digest
from repro.datasets import DATASETS, dataset_names, load_prepared
from repro.datasets import prepare as prepare_spec
from repro.datasets.generated import mexican_hat, sine
from repro.errors import ReproError

SINE = DATASETS.get("sine").defaults
HAT = DATASETS.get("mexican_hat").defaults


def prepare(name: str, params: dict | None = None, **kwargs):
    return prepare_spec(DATASETS.get(name), params, **kwargs)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_registry_lists_builtin_datasets():
    names = dataset_names()
    for name in ("sine", "mexican_hat", "digits", "mnist", "cifar10", "cifar100"):
        assert name in names
    with pytest.raises(ReproError, match=r"unknown dataset 'nope'; valid choices: .*cifar10.*sine"):
        DATASETS.get("nope")


def test_listing_datasets_imports_no_paper_package_nor_triton():
    """A fresh interpreter: `repro.datasets` and its listing import no paper package (``repro_*``)
    and not triton, whatever papers are installed."""
    code = textwrap.dedent("""
        import json, sys
        import repro.datasets
        names = repro.datasets.dataset_names()
        loaded = sorted(m for m in sys.modules if m.startswith("repro_") or m == "triton" or m.startswith("triton."))
        print(json.dumps({"names": names, "loaded": loaded}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert {"sine", "mexican_hat", "digits", "mnist", "cifar10", "cifar100"} <= set(out["names"])


def test_catalog_adds_what_a_paper_declares(fake_paper):
    """The core registries hold the core's items; ``repro.catalog`` adds the papers' on demand."""
    from repro import catalog
    from repro.models import MODELS, build_model
    from repro.workloads import WORKLOADS

    assert catalog.get_workload("sine") is WORKLOADS.get("sine")  # a core name: no paper loaded
    assert catalog.get_dataset("sine") is DATASETS.get("sine")
    wl = catalog.get_workload("fake_line")  # only the paper has it: its contributions are registered
    assert wl.dataset == "fake_line" and wl.model == "fake_linear"
    assert catalog.get_dataset("fake_line") is fake_paper.datasets[0]
    assert "fake_linear" in MODELS and isinstance(build_model("fake_linear", n_in=1, n_out=1), torch.nn.Module)
    assert "fake_line" in catalog.dataset_names() and "fake_line" in catalog.workload_names()
    assert {"sine", "digits"} <= set(catalog.dataset_names())
    with pytest.raises(ReproError, match=r"unknown workload 'nope'; valid choices: .*fake_line"):
        catalog.get_workload("nope")


def test_registry_refuses_a_second_definition_of_a_name():
    import dataclasses

    from repro.datasets import register_dataset

    spec = DATASETS.get("sine")
    assert register_dataset(spec) is spec  # the same item again is harmless
    with pytest.raises(ReproError, match="'sine' is registered twice with different definitions"):
        register_dataset(dataclasses.replace(spec, description="another sine"))
    with pytest.raises(ReproError, match="registered under the name 'other'"):
        DATASETS.register("other", spec)
    assert DATASETS.get("sine") is spec


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
    sidecar = out.with_name("sine.pt.sha256")
    assert sidecar.read_text() == file_digest(out) + "\n"
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left beside it
    assert out == project / "data" / "prepared" / "sine.pt"


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


@pytest.mark.parametrize(("name", "params", "key"), [
    ("sine", {"n_trian": 10}, "n_trian"),
    ("digits", {"seed": 1, "fraction": 0.5}, "fraction"),
    ("mnist", {"n_train": 100}, "n_train"),  # a dataset without parameters takes none
])
def test_prepare_refuses_an_unknown_parameter(project, name, params, key):
    with pytest.raises(ReproError, match=rf"dataset '{name}': unknown parameter '{key}'; valid choices: "):
        prepare(name, params)
    assert not paths.prepared_data_path(name).exists()


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


class NotATensor:
    """Anything torch.load(weights_only=True) refuses to unpickle."""


@pytest.mark.parametrize("payload", ["foreign object", "wrong layout"])
def test_checksum_valid_but_unloadable_file_is_a_clean_error(project, payload):
    """A file whose sidecar matches but that weights_only refuses (or that lacks our layout) is a
    ReproError naming the fix, not an UnpicklingError."""
    from repro.files import save_torch

    out = paths.prepared_data_path("sine")
    obj = {"x_train": torch.zeros(2, 1), "meta": NotATensor()} if payload == "foreign object" else {"x": torch.zeros(1)}
    save_torch(obj, out)
    out.with_name("sine.pt.sha256").write_text(file_digest(out) + "\n")
    with pytest.raises(ReproError) as info:
        load_prepared("sine")
    msg = str(info.value)
    assert "matches its checksum but is not a prepared dataset that can be loaded safely" in msg
    assert str(out) in msg and "repro data prepare sine" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_tensor_data_to_keeps_the_validation_split(project):
    prepare("sine")
    data = load_prepared("sine")
    assert data.x_val is None and data.y_val is None  # the prepared file holds train and test only
    assert data.to(torch.device("cpu")).x_val is None
    from repro.workloads import get_workload

    split = get_workload("sine").split(data).to(torch.device("cpu"))
    assert split.x_val is not None and len(split.x_val) == len(split.y_val) == 20
    assert len(split.x_train) == 180 and len(split.x_test) == 200


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
