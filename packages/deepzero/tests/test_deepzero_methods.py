"""The methods through the core Trainer: sparsity masks hit their ratios, queries are counted
exactly (and RGE's equal the sparse CGE's), the ZO step runs no autograd and tracks FO SGD,
shared-workload setups run or refuse with a reason."""

from __future__ import annotations

import math

import pytest
import torch

from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.errors import ReproError
from repro.models import MODELS
from repro.paper import NotApplicable
from repro.run import RunContext, seed_everything, summarise
from repro.timing import TrainClock
from repro.workloads import get_workload
from repro_deepzero import engine
from repro_deepzero.configuration_deepzero import DeepZeroConfig
from repro_deepzero.methods import ZO_MAX_PARAMS, ZO_MAX_PARAMS_QUADRATIC, matched_rge_queries
from repro_deepzero.paper import PAPER
from repro_deepzero.zo_grasp import active_counts, layer_sparsities, random_masks

WORKLOADS = {w.name: w for w in PAPER.workloads}
for _name, _builder in PAPER.models.items():  # what repro.catalog does for an installed paper
    if _name not in MODELS:
        MODELS.register(_name, _builder)


@pytest.fixture(scope="module")
def fake_digits():
    g = torch.Generator().manual_seed(0)
    return TensorData(name="digits", task="classification", x_train=torch.rand(240, 1, 8, 8, generator=g),
                      y_train=torch.arange(240) % 10, x_test=torch.rand(60, 1, 8, 8, generator=g),
                      y_test=torch.arange(60) % 10, num_classes=10)


def _ctx(data, workload, method, tmp_path, seed=0):
    device = torch.device("cpu")
    seed_everything(seed, device)
    return RunContext(paper="deepzero", experiment="test", method=method, seed=seed, scale="smoke",
                      workload=workload, data=workload.split(data).to(device), device=device,
                      clock=TrainClock(device), checkpoint=Checkpointer(tmp_path / f"{method}.pt"),
                      generator=torch.Generator().manual_seed(seed), progress=False)


def _fit(data, method, tmp_path, workload="digits_mlp16", **hp):
    ctx = _ctx(data, WORKLOADS[workload], method, tmp_path)
    spec = PAPER.method(method)
    hparams = spec.hparams({"optimizer": "sgd", "lr": 0.05, "epochs": 2, "batch_size": 32,
                            "grasp_per_class": 4, "grasp_queries": 8, **hp})
    spec.validate(hparams)
    spec.fit(ctx, hparams)
    return ctx, summarise(ctx)


# ---- masks and ratios -------------------------------------------------------------------------------

def test_layer_sparsities_hit_the_global_target_exactly():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randn(37, 5, generator=g), "b": torch.randn(11, generator=g) * 3,
              "c": torch.randn(64, generator=g)}
    sizes = {n: s.numel() for n, s in scores.items()}
    for s in (0.0, 0.5, 0.9, 0.99):
        ratios = layer_sparsities(scores, s)
        pruned = sum(round(ratios[n] * sizes[n]) for n in sizes)
        assert pruned == round(s * sum(sizes.values()))
        assert all(0 <= r <= 1 for r in ratios.values())
    with pytest.raises(ReproError):
        layer_sparsities(scores, 1.0)


def test_random_masks_have_exact_counts_and_are_redrawn():
    sizes = {"a": 185, "b": 11, "c": 64}
    ratios = {"a": 0.9, "b": 0.5, "c": 0.97}
    g = torch.Generator().manual_seed(0)
    first, second = random_masks(sizes, ratios, g), random_masks(sizes, ratios, g)
    counts = active_counts(sizes, ratios)
    assert counts == {"a": 19, "b": 5, "c": 2}  # n - round(s n) with Python round (166.5 -> 166), as torch prune
    for m in (first, second):
        for n, idx in m.items():
            assert len(idx) == counts[n] and len(set(idx.tolist())) == counts[n]
            assert torch.all(idx[1:] > idx[:-1]) and 0 <= int(idx.min()) and int(idx.max()) < sizes[n]
    assert any(not torch.equal(first[n], second[n]) for n in sizes)


def test_sparse_cge_trains_with_the_target_sparsity_and_matched_rge_budget(fake_digits, tmp_path):
    ctx, summary = _fit(fake_digits, "cge_sparse_reuse", tmp_path, rank_one=True)
    prog = engine.Program(WORKLOADS["digits_mlp16"].build_model())
    n_w = sum(prog.params[n].numel() for n in prog.weight_names)
    assert summary["weight_sparsity"] == pytest.approx(1 - (n_w - round(0.9 * n_w)) / n_w)
    assert summary["zo_queries_per_step"] == 1 + matched_rge_queries(prog, 0.9)
    assert math.isfinite(summary["test_accuracy"])


# ---- query accounting ---------------------------------------------------------------------------------

def test_equal_query_accounting(fake_digits, tmp_path):
    rge_ctx, rge = _fit(fake_digits, "rge", tmp_path / "r")
    cge_ctx, cge = _fit(fake_digits, "cge_sparse_reuse", tmp_path / "c", rank_one=True)
    assert rge["zo_queries_per_step"] == cge["zo_queries_per_step"]
    n_train = len(rge_ctx.data.x_train)
    epochs = 2
    per_step = rge["zo_queries_per_step"]  # 1 unperturbed cache pass + q perturbed queries
    # every training sample, every epoch: the Trainer's own forward + the estimator's queries
    assert rge["forward_evals"] == epochs * n_train * (1 + per_step)
    grasp_samples = 4 * 10
    assert cge["forward_evals"] == epochs * n_train * (1 + per_step) + cge["grasp_queries"] * grasp_samples
    assert cge["grasp_queries"] == 2 * (1 + 8)
    assert cge["zo_queries"] == per_step * rge_ctx.history[-1]["step"]


def test_full_cge_queries_every_coordinate(fake_digits, tmp_path):
    _, summary = _fit(fake_digits, "cge", tmp_path, epochs=1)
    assert summary["zo_queries_per_step"] == 1 + summary["n_params"] == 1 + 1210


# ---- the ZO step ----------------------------------------------------------------------------------------

def test_zo_step_runs_no_autograd_and_tracks_first_order_sgd(fake_digits, tmp_path, monkeypatch):
    """Full CGE (an O(mu) estimate of the gradient) under the same SGD lands next to FO SGD."""
    grad_modes = []
    forward = torch.nn.Sequential.forward

    def spying(self, x):
        grad_modes.append(torch.is_grad_enabled())
        return forward(self, x)

    monkeypatch.setattr(torch.nn.Sequential, "forward", spying)
    models = {}
    import repro.trainer as T

    fit = T.Trainer.fit

    def keep(self):
        state = fit(self)
        models[self.ctx.method] = [p.detach().clone() for p in state.model.parameters()]
        return state

    monkeypatch.setattr(T.Trainer, "fit", keep)
    _fit(fake_digits, "fo_sgd", tmp_path / "f", epochs=1, lr=0.1)
    fo_modes, grad_modes[:] = list(grad_modes), []
    _fit(fake_digits, "cge", tmp_path / "c", epochs=1, lr=0.1, rank_one=True, mu=1e-3)
    assert any(fo_modes) and not any(grad_modes), "the ZO forwards run without autograd"
    for a, b in zip(models["fo_sgd"], models["cge"]):
        torch.testing.assert_close(b, a, rtol=0, atol=3e-3)


def test_rank_one_needs_feature_reuse():
    with pytest.raises(ReproError, match="rank_one"):
        DeepZeroConfig(rank_one=True, feature_reuse=False)
    with pytest.raises(ReproError, match="feature_reuse"):
        PAPER.method("cge_sparse").validate({**PAPER.method("cge_sparse").fixed, "rank_one": True})


# ---- shared workloads ------------------------------------------------------------------------------------

def test_shared_workload_setups():
    mlp_wl, cnn_wl, cifar = get_workload("digits_mlp"), get_workload("digits_cnn"), get_workload("cifar10_resnet18")
    assert PAPER.method("fo_sgd").setup_for(mlp_wl) == {} == PAPER.method("fo_sgd").setup_for(cifar)
    deepzero = PAPER.method("cge_sparse_reuse")
    setup = deepzero.setup_for(mlp_wl)  # 4,810 parameters: DeepZero itself runs on digits_mlp
    assert setup == {"rank_one": True, "mask_interval": 2}
    deepzero.validate(deepzero.hparams(setup))
    for name in ("rge", "cge", "cge_sparse"):  # queries x full-forward cost grows like d^2
        with pytest.raises(NotApplicable, match=str(ZO_MAX_PARAMS_QUADRATIC)):
            PAPER.method(name).setup_for(mlp_wl)
    small = WORKLOADS["digits_mlp16"]  # 1,210 parameters: every method
    for name, m in PAPER.methods.items():
        m.validate(m.hparams(m.setup_for(small)))
    for name, m in PAPER.methods.items():
        if name != "fo_sgd":
            for wl in (cnn_wl, cifar):
                with pytest.raises(NotApplicable, match="parameters"):
                    m.setup_for(wl)
    with pytest.raises(NotApplicable, match=str(ZO_MAX_PARAMS)):
        deepzero.setup_for(cnn_wl)


@pytest.mark.slow
def test_every_method_trains_digits_mlp_at_its_default_budget(tmp_path):
    """What the leaderboard runs: each method's setup on digits_mlp, the workload's default budget.
    (Not timed here; the brief's "a few seconds" is checked by eye from the printed duration.)"""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    data = TensorData(name="digits", task="classification", x_train=x[:1347], y_train=y[:1347], x_test=x[1347:],
                      y_test=y[1347:], num_classes=10)
    wl = get_workload("digits_mlp")
    for name, m in PAPER.methods.items():
        try:
            setup = m.setup_for(wl)
        except NotApplicable:
            continue
        ctx = _ctx(data, wl, name, tmp_path)
        hp = m.hparams({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, **setup})
        m.fit(ctx, hp)
        s = summarise(ctx)
        print(f"{name}: test accuracy {s['test_accuracy']:.3f}, train {s['train_time_s']:.1f} s")
        assert s["test_accuracy"] > 0.5
