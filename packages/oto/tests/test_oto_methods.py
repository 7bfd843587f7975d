"""The methods on the core Trainer: what a trial records, the step paths agree end to end, the
shared-workload setups (runs on digits_mlp / digits_cnn, NotApplicable where no ZIG exists), bad input."""

from __future__ import annotations

import pytest
import torch

from repro import catalog
from repro.datasets import load_prepared
from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import build_context, summarise
from repro.testing import temp_project
from repro.workloads import Workload

from repro.trainer import GradientConfig

from repro_oto.configuration_oto import OtoConfig
from repro_oto.methods import METHODS, OtoHook, check_workload
from repro_oto.paper import PAPER

CHECKOUT = PAPER.package_dir.parents[1]
TINY = {"epochs": 3, "n_p": 1, "lr_decays": [], "eval_every": 1, "batch_size": 128}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test, as a pipeline trial runs: two threads on these small models only
    double the CPU time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def project(tmp_path, monkeypatch):
    return temp_project(tmp_path, CHECKOUT, monkeypatch, datasets=("digits",))


def fit(method: str, overrides: dict, experiment: str = "digits_bn_cnn", seed: int = 0):
    ctx, hparams = build_context("oto", experiment, method, seed=seed, scale="smoke")
    ctx.progress = False
    hparams.update(overrides)
    PAPER.method(method).fit(ctx, hparams)
    return ctx, summarise(ctx)


def test_hspg_trial_records_the_slim_network(project):
    ctx, s = fit("hspg", {**TINY, "lmbda": 0.3})
    assert s["group_sparsity"] > 0 and s["zero_groups"] > 0 and s["total_groups"] == 112
    assert s["slim_exact"] == 1.0 and s["slim_max_abs_diff"] <= 1e-5
    assert s["slim_test_accuracy"] == s["test_accuracy"]
    assert s["flops_slim"] < s["flops_full"] and s["params_slim"] < s["params_full"]
    assert s["flops_remaining"] == pytest.approx(s["flops_slim"] / s["flops_full"])
    assert all("group_sparsity" in row for row in ctx.history)
    assert ctx.history[0]["group_sparsity"] == 0.0  # stage 1 (subgradient steps) makes no exact zeros
    assert ctx.history[-1]["group_sparsity"] == s["group_sparsity"]


def test_dense_is_the_full_model(project):
    _, s = fit("dense", {**TINY, "epochs": 1})
    assert s["group_sparsity"] == 0.0 and s["flops_remaining"] == 1.0 and s["params_remaining"] == 1.0
    assert s["slim_max_abs_diff"] == 0.0


@pytest.mark.parametrize("method", ["hspg", "prox_sg"])
def test_own_sgd_step_equals_the_optimizer_path(project, method):
    """kernel=torch (the hook steps the grouped parameters itself, the fused kernel's reference) trains
    the same model as kernel=optimizer (the core SGD steps, the hook adds the subgradient / projects)."""
    # 5 large batches per epoch (stage 1, then stage 2): few steps, so rounding differences stay small;
    # a large lambda so that groups reach zero in that time
    over = {**TINY, "epochs": 2, "batch_size": 256, "lmbda": 2.0, "momentum": 0.9, "weight_decay": 1e-3}
    a, sa = fit(method, {**over, "kernel": "optimizer"})
    b, sb = fit(method, {**over, "kernel": "torch"})
    assert sa["zero_groups"] == sb["zero_groups"] > 0
    for ra, rb in zip(a.history, b.history):
        assert ra["val_cross_entropy"] == pytest.approx(rb["val_cross_entropy"], rel=1e-5, abs=1e-6)


def test_bad_hyper_parameters_are_refused(project):
    with pytest.raises(ReproError, match="lr_decays"):
        fit("hspg", {**TINY, "lr_decays": [1], "lr_schedule": "step"})
    with pytest.raises(ReproError, match="kernel"):
        fit("hspg", {**TINY, "optimizer": "adam", "kernel": "torch"})
    with pytest.raises(ReproError, match="lmbda"):
        PAPER.method("hspg").validate({"lmbda": -1.0})
    with pytest.raises(ReproError, match="increasing"):
        OtoConfig(lr_decays=(5, 2))
    with pytest.raises(ReproError, match="regulariser"):
        PAPER.method("hspg").validate({"regulariser": "lasso"})


def test_schedules_follow_v1():
    cfg_ = OtoConfig(lmbda=1e-3, lmbda_decays=(35, 40, 45), n_p=None)
    assert [cfg_.lmbda_at(e) for e in (0, 35, 40, 45)] == pytest.approx([1e-3, 1e-4, 1e-5, 1e-6])
    assert OtoConfig(lmbda=1e-6, lmbda_decays=(1,)).lmbda_at(1) == 0.0  # v1: <= 1e-6 becomes 0
    assert cfg_.warmup_epochs(300) == 75 and OtoConfig(n_p=3).warmup_epochs(300) == 3
    assert OtoConfig(epsilon=0.0, epsilon_linear=0.99).eps_for("linear") == 0.99
    hook = OtoHook(OtoConfig(n_p=2), GradientConfig(), 8)
    assert [hook._mode(e) for e in range(4)] == ["subgradient", "subgradient", "half_space", "half_space"]
    assert OtoHook(OtoConfig(n_p=2, warmup="prox"), GradientConfig(), 8)._mode(0) == "prox"
    assert OtoHook(OtoConfig(regulariser="prox_sg"), GradientConfig(), 8)._mode(5) == "prox"
    assert OtoHook(OtoConfig(regulariser="none"), GradientConfig(), 8)._mode(5) is None


def test_lr_decays_divide_the_step_size_by_ten(project):
    ctx, hparams = build_context("oto", "digits_bn_cnn", "dense", seed=0, scale="smoke")
    seen = []
    orig = OtoHook.epoch_start

    def spy(self, state):
        orig(self, state)
        seen.append(state.optimizer.param_groups[0]["lr"])

    OtoHook.epoch_start = spy
    try:
        ctx.progress = False
        PAPER.method("dense").fit(ctx, {**hparams, "epochs": 4, "lr": 0.1, "lr_decays": [1, 3], "batch_size": 512})
    finally:
        OtoHook.epoch_start = orig
    assert seen == pytest.approx([0.1, 0.01, 0.01, 0.001])


GROUPS = {"digits_mlp": 64, "digits_cnn": 32 + 64}  # the hidden neurons / the two conv layers' channels


def run_board(method: str, workload: str, budget: dict) -> dict:
    """*method* with its leaderboard setup on a shared workload, over the core's default gradient
    settings (Adam: the grouped parameters take the core-optimizer path)."""
    wl = catalog.get_workload(workload)
    setup = PAPER.method(method).setup_for(wl)
    assert ("lmbda" in setup) == (method != "dense")
    ctx, _ = build_context("oto", "digits_bn_cnn", method, seed=0, scale="smoke")  # a context on the digits data
    ctx.workload, ctx.progress = wl, False
    ctx.data = wl.split(load_prepared(wl.dataset)).to(ctx.device)
    PAPER.method(method).fit(ctx, {**PAPER.method(method).hparams(setup), **budget})
    s = summarise(ctx)
    assert s["slim_exact"] == 1.0 and s["total_groups"] == GROUPS[workload]
    return s


@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", list(METHODS))
def test_setup_on_shared_workloads_runs(project, method, workload):
    s = run_board(method, workload, {"epochs": 1})  # the default budget: the slow test below
    assert s["epochs"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", list(METHODS))
def test_setup_on_shared_workloads_at_their_default_budget(project, method, workload):
    s = run_board(method, workload, {})
    assert s["epochs"] == catalog.get_workload(workload).max_epochs
    assert s["test_accuracy"] > 0.5


def _wl(**kw) -> Workload:
    base = dict(name="x", dataset="digits", model="mlp", model_kwargs={"sizes": [64, 10], "activation": "relu"},
                loss="cross_entropy", metrics=("test_accuracy",), target=0.9)
    return Workload(**{**base, **kw})


def test_not_applicable_where_no_zig_can_be_built():
    with pytest.raises(NotApplicable, match="no prunable zero-invariant group"):
        check_workload(_wl())  # a single linear layer: its outputs are the network's outputs
    with pytest.raises(NotApplicable, match="input shape"):
        check_workload(_wl(dataset="somewhere_else"))
    for m in METHODS.values():
        with pytest.raises(NotApplicable):
            m.setup_for(_wl())
    assert check_workload(_wl(model_kwargs={"sizes": [64, 32, 10], "activation": "relu"})).num_groups == 32
