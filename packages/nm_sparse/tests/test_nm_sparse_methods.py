"""Wrappers, MAC accounting, flip rate, methods, hyper-parameter errors, shared-workload setups."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from repro import catalog
from repro import hparams as H
from repro.checkpoint import Checkpointer
from repro.datasets import load_prepared
from repro.errors import ReproError
from repro.models import build_model
from repro.paper import NotApplicable
from repro.run import RunContext, summarise
from repro.testing import temp_project
from repro.timing import TrainClock

from repro_nm_sparse.accounting import MacCounter, ideal_ratio
from repro_nm_sparse.configuration_nm_sparse import NmSparseConfig
from repro_nm_sparse.masks import layer_mask
from repro_nm_sparse.methods import METHODS
from repro_nm_sparse.models import nm_cnn
from repro_nm_sparse.paper import PAPER
from repro_nm_sparse.wrap import nm_layers, plan_layers, sparsify_model

ROOT = Path(__file__).resolve().parents[3]  # the monorepo root (packages/nm_sparse/tests -> ...)


@pytest.fixture(autouse=True)
def one_thread():
    """Trials run on one torch thread in the pipeline; tiny GEMMs on two busy cores only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mlp():
    torch.manual_seed(0)
    return build_model("mlp", sizes=[784, 512, 256, 10], activation="relu")


def _cfg(method: str, **kw) -> NmSparseConfig:
    fixed = dict(METHODS[method].fixed)
    return NmSparseConfig(**{**fixed, **kw})


@pytest.mark.parametrize("make", [_mlp, lambda: nm_cnn()], ids=["mlp", "cnn"])
def test_dense_method_is_bit_identical_to_the_plain_model(make):
    plain = make()
    wrapped, plans = sparsify_model(copy.deepcopy(plain), _cfg("dense"))
    assert plans and not any(p.sparse for p in plans.values())
    x = torch.rand(5, 1, 28, 28)
    a, b = plain(x), wrapped(x)
    assert torch.equal(a, b)
    a.square().sum().backward()
    b.square().sum().backward()
    for (na, pa), (nb, pb) in zip(plain.named_parameters(), wrapped.named_parameters()):
        assert na == nb and torch.equal(pa.grad, pb.grad)
    assert plain.state_dict().keys() == wrapped.state_dict().keys()


def test_layer_plans():
    mlp = plan_layers(_mlp(), _cfg("bdwp"))
    assert [p.sparse for p in mlp.values()] == [True, True, False]  # classifier dense (skip_last)
    assert [p.bidirectional for p in mlp.values()] == [True, True, False]
    assert [p.sparse for p in plan_layers(_mlp(), _cfg("srste", skip_last=False)).values()] == [True, True, True]
    # 10 outputs are not a multiple of 8: the classifier cannot take BDWP's output-dimension mask
    assert [p.sparse for p in plan_layers(_mlp(), _cfg("bdwp", skip_last=False)).values()] == [True, True, False]
    assert [p.sparse for p in plan_layers(_mlp(), _cfg("srste", skip_first=True)).values()] == [False, True, False]
    cnn = plan_layers(nm_cnn(), _cfg("bdwp"))
    assert [p.sparse for p in cnn.values()] == [False, True, False]  # first conv K = 9
    assert not any(p.semi_structured or p.lowp for p in cnn.values())


def _one_step(method: str, n=2, m=8, batch=4, **kw):
    model = _mlp()
    counter = MacCounter()
    sparsify_model(model, _cfg(method, n=n, m=m, **kw), counter)
    model.train()
    model(torch.rand(batch, 784)).sum().backward()
    return model, counter


def test_mac_accounting_per_pass():
    b = 4
    dims = [(784, 512), (512, 256), (256, 10)]
    dense = [b * k * o for k, o in dims]
    _, c = _one_step("bdwp", batch=b)
    assert c.fwd_dense == sum(dense) and c.wgrad_dense == sum(dense)
    assert c.bgrad_dense == dense[1] + dense[2]  # the first layer's input gradient is never computed
    assert c.fwd_performed == dense[0] // 4 + dense[1] // 4 + dense[2]
    assert c.bgrad_performed == dense[1] // 4 + dense[2]
    assert c.wgrad_performed == sum(dense)
    assert c.ratio("sparse_layers") == 0.5 == ideal_ratio(2, 8, True, True)  # layer 2: all three GEMMs
    _, s = _one_step("srste", batch=b)
    assert s.bgrad_performed == s.bgrad_dense  # forward-only masks: BP counted dense
    assert s.ratio("sparse_layers") == pytest.approx(0.75) == pytest.approx(ideal_ratio(2, 8, True, False))
    _, d = _one_step("dense", batch=b)
    assert d.ratio("total") == 1.0 and d.sparse_dense == 0
    _, f = _one_step("bdwp", n=2, m=4, batch=b)
    assert f.ratio("sparse_layers") == pytest.approx((0.5 + 0.5 + 1) / 3)


def test_evaluation_runs_the_sparse_network_and_training_is_not_counted_there():
    model, c = _one_step("bdwp")
    before = c.performed
    model.eval()
    x = torch.rand(3, 784)
    with torch.no_grad():
        got = model(x)
        h = x
        for i, layer in enumerate(nm_layers(model).values()):
            w = layer.weight * (layer_mask(layer.weight, 2, 8, "forward") if i < 2 else 1)
            h = F.linear(h, w, layer.bias)
            h = torch.relu(h) if i < 2 else h
    assert torch.allclose(got, h)
    assert c.performed == before


def test_flip_rate_counts_forward_mask_changes_between_steps():
    model, c = _one_step("ste")
    assert c.flip_total == 0  # nothing to compare at the first step
    first = nm_layers(model)["1"]
    old = layer_mask(first.weight, 2, 8, "forward")
    with torch.no_grad():
        first.weight[0, :8] = torch.arange(8.0)  # the top-2 of this group are now positions 6, 7
    model(torch.rand(2, 784)).sum().backward()
    new = layer_mask(first.weight, 2, 8, "forward")
    assert c.flip_total == sum(layer.weight.numel() for layer in list(nm_layers(model).values())[:2])
    assert c.flips == int((old != new).sum()) >= 2


def test_hyperparameter_errors_name_the_key():
    with pytest.raises(ReproError, match="'n' and 'm'"):
        METHODS["srste"].validate({"n": 5, "m": 4})
    with pytest.raises(ReproError, match="'backend'.*2:4"):
        METHODS["bdwp"].validate({"n": 4, "m": 8, "backend": "semi_structured"})
    METHODS["bdwp"].validate({"n": 2, "m": 8, "backend": "semi_structured"})
    with pytest.raises(ReproError, match="'sparsity'.*valid choices: bidirectional, dense, forward"):
        H.parse(NmSparseConfig, {"sparsity": "sideways"}, "nm_sparse")
    with pytest.raises(ReproError, match="fixed switch"):
        METHODS["ste"].hparams({"decay": 1e-3})
    with pytest.raises(ReproError, match="valid choices"):
        METHODS["srste"].validate({"mask_kernel": "cuda"})


def test_experiments_set_the_pattern_as_a_tunable_hyperparameter():
    for name, method in METHODS.items():
        assert "n" not in method.fixed and "m" not in method.fixed
    for exp in PAPER.experiments_at("smoke").values():
        for m, hp in exp.methods.items():
            assert (hp.get("n"), hp.get("m")) == ((2, 8) if m != "dense" else (None, None))
    patterns = {(hp["n"], hp["m"]) for exp in PAPER.experiments_at("paper").values()
                for m, hp in exp.methods.items() if m != "dense"}
    assert patterns == {(2, 4), (2, 8)}


@pytest.fixture
def digits_project(tmp_path, monkeypatch):
    return temp_project(tmp_path, ROOT, monkeypatch, ("digits",))


def _ctx(workload: str, method: str, root: Path) -> RunContext:
    wl = catalog.get_workload(workload)
    dev = torch.device("cpu")
    torch.manual_seed(0)
    return RunContext(paper="nm_sparse", experiment=workload, method=method, seed=0, scale="smoke", workload=wl,
                      data=wl.split(load_prepared(wl.dataset)), device=dev, clock=TrainClock(dev),
                      checkpoint=Checkpointer(root / "ckpt" / f"{workload}-{method}.pt"),
                      generator=torch.Generator().manual_seed(0), progress=False)


def test_shared_workload_setups():
    for wl_name in ("digits_mlp", "digits_cnn", "mnist_mlp", "mnist_cnn", "cifar10_resnet18"):
        wl = catalog.get_workload(wl_name)
        for name, method in METHODS.items():
            assert method.setup_for(wl) == ({} if name == "dense" else {"n": 2, "m": 8})
    for name in ("ste", "srste", "bdwp"):
        with pytest.raises(NotApplicable, match="multiples of M=8"):
            METHODS[name].setup_for(catalog.get_workload("sine"))
    assert METHODS["dense"].setup_for(catalog.get_workload("sine")) == {}


BOARD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}  # a stand-in for the board's gradient settings


@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_on_the_shared_digits_workloads(digits_project, workload, method):
    """One epoch through the shared-workload setup (``setup_for``) and the board's settings."""
    s = _board_run(workload, method, digits_project, epochs=1)
    assert 0 <= s["test_accuracy"] <= 1
    assert s["n_sparse_layers"] == (0 if method == "dense" else 1)
    assert s["macs_ratio"] <= 1.0 and (s["macs_ratio"] < 1.0) is (method != "dense")


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_on_the_shared_digits_workloads_at_their_budget(digits_project, workload, method):
    """The workload's default budget (max_epochs at its batch size), as the leaderboard runs it."""
    s = _board_run(workload, method, digits_project, epochs=None)
    assert s["test_accuracy"] > (0.8 if workload == "digits_mlp" else 0.3)


def _board_run(workload: str, method: str, root: Path, epochs: int | None) -> dict:
    spec = METHODS[method]
    wl = catalog.get_workload(workload)
    ctx = _ctx(workload, method, root)
    epochs = epochs or wl.max_epochs
    spec.fit(ctx, {**BOARD, **spec.setup_for(wl), "epochs": epochs, "eval_every": epochs, **spec.fixed})
    return summarise(ctx)


class Interrupted(Exception):
    pass


def test_resume_continues_the_mac_and_flip_records(digits_project):
    """An interrupted run resumed from its checkpoint reports the same MACs and flip rate."""
    spec = METHODS["ste"]
    hp = {**BOARD, "n": 2, "m": 8, "epochs": 3, "eval_every": 3, **spec.fixed}
    straight = _ctx("digits_mlp", "ste", digits_project)
    spec.fit(straight, hp)
    ctx = _ctx("digits_mlp", "ste", digits_project)
    save = ctx.save_checkpoint

    def save_then_die(state):
        save(state)
        raise Interrupted

    ctx.save_checkpoint = save_then_die
    with pytest.raises(Interrupted):
        spec.fit(ctx, {**hp, "checkpoint_every": 1})
    resumed = _ctx("digits_mlp", "ste", digits_project)
    spec.fit(resumed, {**hp, "checkpoint_every": 1})
    a, b = summarise(straight), summarise(resumed)
    for key in ("macs_performed", "macs_dense", "mask_flip_rate", "test_accuracy"):
        assert a[key] == b[key], key
    assert a["mask_flip_rate"] > 0


def test_semi_structured_backend_falls_back_on_cpu_and_says_so(digits_project):
    plans = plan_layers(_mlp(), _cfg("bdwp", n=2, m=4, backend="semi_structured"), torch.device("cpu"))
    assert not any(p.semi_structured or p.lowp for p in plans.values())
    spec = METHODS["bdwp"]
    ctx = _ctx("digits_mlp", "bdwp", digits_project)
    spec.fit(ctx, {**BOARD, "n": 2, "m": 4, "backend": "semi_structured", "epochs": 1, **spec.fixed})
    s = summarise(ctx)
    assert s["semi_structured_used"] == 0.0 and s["semi_structured_available"] == 0.0
