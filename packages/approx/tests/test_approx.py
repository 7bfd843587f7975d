"""Sampling math, autograd vs exact, wrapper errors, MAC accounting, configuration validation,
methods' fixed switches and the by-construction claims."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from repro import hparams as H
from repro.claims import judge
from repro.errors import ReproError
from repro.paper import Experiment
from repro.trainer import GD_KEYS, GradientConfig, scheduled_lr
from repro_approx import ApproxConfig, MacCounter, approx_conv2d, approx_linear, approximate_model
from repro_approx.configuration_approx import ApproxTrainConfig
from repro_approx.methods import METHODS, ApproxHook, _m
from repro_approx.paper import PAPER
from repro_approx.sampling import approx_matmul, num_kept, pair_scores, sampled_matmul, select


# ---- sampling math ------------------------------------------------------------------------------

def test_num_kept_formula():
    assert num_kept(100, 0.3) == 30
    assert num_kept(10, 0.25) == 2  # floor
    assert num_kept(10, 0.01, minimal_k=4) == 4  # minimal_k lifts k
    assert num_kept(10, 0.5, minimal_k=20) == 10  # never more than n
    assert num_kept(7, 1.0) == 7
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ReproError, match="ratio"):
            num_kept(10, bad)


def test_topk_keeps_largest_scores_without_rescaling():
    s = torch.tensor([0.1, 5.0, 0.2, 3.0, 4.0, 0.0])
    idx, scale = select(s, 3, "topk")
    assert idx.tolist() == [1, 3, 4]
    assert torch.equal(scale, torch.ones(3))


def test_scores_are_column_times_row_norms():
    a, b = torch.randn(5, 4), torch.randn(4, 3)
    s = pair_scores(a, b)
    for i in range(4):
        assert s[i] == pytest.approx(float(a[:, i].norm() * b[i].norm()), rel=1e-5)


@pytest.mark.parametrize("strategy", ["crs", "bernoulli"])
def test_randomised_strategies_are_unbiased(strategy):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=gen), torch.randn(8, 5, generator=gen)
    exact = a @ b
    draws = 20000
    acc = torch.zeros_like(exact, dtype=torch.float64)
    s = pair_scores(a, b)
    for _ in range(draws):
        idx, scale = select(s, 3, strategy, generator=gen)
        acc += sampled_matmul(a, b, idx, scale).double()
    mean = acc / draws
    err = (mean - exact.double()).abs().max() / exact.abs().max()
    assert err < 0.05, f"{strategy}: mean of {draws} draws is {err:.3f} (relative) away from A B"


def test_bernoulli_keeps_about_k_and_crs_exactly_k():
    gen = torch.Generator().manual_seed(1)
    s = torch.rand(200, generator=gen) + 0.5  # no clamping at p = 1
    counts = [select(s, 50, "bernoulli", generator=gen)[0].numel() for _ in range(400)]
    assert abs(sum(counts) / len(counts) - 50) < 2
    assert select(s, 50, "crs", generator=gen)[0].numel() == 50


def test_unknown_strategy_names_the_value():
    with pytest.raises(ReproError, match="'magic'"):
        select(torch.ones(4), 2, "magic")


def test_approx_matmul_exact_at_ratio_one():
    a, b = torch.randn(7, 9), torch.randn(9, 4)
    assert torch.equal(approx_matmul(a, b, 1.0, strategy="crs"), a @ b)


# ---- autograd -----------------------------------------------------------------------------------

def _grads(fn, *tensors):
    out = fn(*tensors)
    out.square().sum().backward()
    return out.detach(), [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("mode", ["forward", "backward", "both"])
def test_linear_ratio_one_equals_exact(mode):
    torch.manual_seed(0)
    x, w, b = torch.randn(16, 12, requires_grad=True), torch.randn(5, 12, requires_grad=True), torch.randn(5, requires_grad=True)
    ref_out, ref_g = _grads(lambda x, w, b: nn.functional.linear(x, w, b), x, w, b)
    for t in (x, w, b):
        t.grad = None
    # ratio 1.0 inside the autograd function itself (k = n path): exactly the dense products
    out, g = _grads(lambda x, w, b: approx_linear(x, w, b, ApproxConfig(ratio=1.0, mode=mode)), x, w, b)
    assert torch.equal(out, ref_out)
    for a, r in zip(g, ref_g):
        assert torch.allclose(a, r, atol=1e-6, rtol=1e-6)


def test_wrapped_model_at_ratio_one_is_bit_identical():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.Flatten(),
                          nn.LazyLinear(4))
    x = torch.randn(4, 3, 9, 9)
    plain(x)
    import copy
    wrapped, _ = approximate_model(copy.deepcopy(plain), ApproxConfig(ratio=1.0, strategy="bernoulli"))
    assert list(wrapped.state_dict()) == list(plain.state_dict())
    for m in (plain, wrapped):
        m.train()
        m(x).square().sum().backward()
    for (n, p), q in zip(plain.named_parameters(), wrapped.parameters()):
        assert torch.equal(p.grad, q.grad), n


@pytest.mark.parametrize("mode", ["forward", "backward", "both"])
def test_conv_ratio_one_equals_exact(mode):
    torch.manual_seed(0)
    x, w = torch.randn(3, 4, 8, 8, requires_grad=True), torch.randn(6, 4, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    ref_out, ref_g = _grads(lambda x, w, b: nn.functional.conv2d(x, w, b, 2, 1), x, w, bias)
    for t in (x, w, bias):
        t.grad = None
    out, g = _grads(lambda x, w, b: approx_conv2d(x, w, b, ApproxConfig(ratio=1.0, mode=mode), None, (2, 2), (1, 1)),
                    x, w, bias)
    assert torch.allclose(out, ref_out, atol=1e-5)
    for a, r in zip(g, ref_g):
        assert torch.allclose(a, r, atol=1e-4, rtol=1e-4)


def test_forward_topk_linear_matches_manual_and_grads_only_on_kept_columns():
    torch.manual_seed(0)
    x, w = torch.randn(8, 10, requires_grad=True), torch.randn(3, 10, requires_grad=True)
    cfg = ApproxConfig(ratio=0.5, strategy="topk")
    out = approx_linear(x, w, None, cfg)
    idx = torch.topk(pair_scores(x.detach(), w.detach().t()), 5).indices.sort().values
    assert torch.allclose(out, x[:, idx] @ w[:, idx].t(), atol=1e-6)
    out.sum().backward()
    dropped = sorted(set(range(10)) - set(idx.tolist()))
    assert torch.all(w.grad[:, dropped] == 0) and torch.all(x.grad[:, dropped] == 0)
    assert torch.allclose(w.grad[:, idx], torch.ones(3, 8) @ x[:, idx].detach())


@pytest.mark.parametrize("mode", ["forward", "backward", "both"])
@pytest.mark.parametrize("strategy", ["topk", "crs", "bernoulli"])
def test_sampled_shapes(mode, strategy):
    x = torch.randn(6, 5, 7, 7, requires_grad=True)
    w = torch.randn(8, 5, 3, 3, requires_grad=True)
    out = approx_conv2d(x, w, None, ApproxConfig(ratio=0.4, mode=mode, strategy=strategy), None, (1, 1), (1, 1))
    out.sum().backward()
    assert out.shape == (6, 8, 7, 7) and x.grad.shape == x.shape and w.grad.shape == w.shape
    xl, wl = torch.randn(2, 3, 12, requires_grad=True), torch.randn(4, 12, requires_grad=True)
    outl = approx_linear(xl, wl, None, ApproxConfig(ratio=0.4, mode=mode, strategy=strategy))
    outl.sum().backward()
    assert outl.shape == (2, 3, 4) and xl.grad.shape == xl.shape


# ---- wrapper ------------------------------------------------------------------------------------

def test_wrapper_skips_first_layer_and_keeps_eval_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3))
    x = torch.randn(5, 10)
    before = model(x).detach()
    model, names = approximate_model(model, ApproxConfig(ratio=0.3))
    assert names == ["2", "4"]
    model.eval()
    assert torch.equal(model(x), before)


def test_wrapper_errors_name_the_layer():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ReproError, match=r"'1'.*ReLU"):
        approximate_model(model, ApproxConfig(ratio=0.5, layers=("1",)))
    with pytest.raises(ReproError, match=r"'0'.*grouped"):
        approximate_model(model, ApproxConfig(ratio=0.5, layers=("0",)))
    with pytest.raises(ReproError, match="'nope' is not a module"):
        approximate_model(model, ApproxConfig(ratio=0.5, layers=("nope",)))
    with pytest.raises(ReproError, match=r"layer '3'.*minimal_k=9.*\(8\)"):
        approximate_model(model, ApproxConfig(ratio=0.5, minimal_k=9, layers=("3",)))


# Tunable keys: an experiment may set them; the method validates the merged hyper-parameters.
@pytest.mark.parametrize(("hp", "pattern"), [
    ({"minimal_k": 0}, "'minimal_k'.*0"), ({"eps": 1.5}, "'eps'.*1.5"), ({"bogus": 1}, "'bogus'"),
    ({"train_subset": 0}, "'train_subset'.*0"), ({"train_subset": 2.5}, "'train_subset'.*2.5"),
    ({"skip_first": "yes"}, "'skip_first'.*yes"), ({"lr_schedule": "zigzag"}, "'lr_schedule'.*zigzag"),
    ({"lr": 0.0}, "'lr'.*0.0"),
])
def test_bad_hparams_name_key_and_value(hp, pattern):
    for method in PAPER.methods.values():
        with pytest.raises(ReproError, match=pattern):
            method.validate(method.hparams(hp))


# The fixed switches: out of range in the typed config, and in a method declared with a bad value.
@pytest.mark.parametrize(("fixed", "pattern"), [
    ({"ratio": 0.0}, "'ratio'.*0.0"), ({"ratio": 1.5}, "'ratio'.*1.5"), ({"strategy": "magic"}, "'strategy'.*magic"),
    ({"mode": "sideways"}, "'mode'.*sideways"),
])
def test_bad_fixed_switches_name_key_and_value(fixed, pattern):
    with pytest.raises(ReproError, match=pattern):
        H.parse(ApproxTrainConfig, fixed, "approx")
    switches = {"ratio": 0.5, "strategy": "topk", "mode": "forward", **fixed}
    bad = _m("bad", "a method with a bad fixed switch", switches["ratio"], switches["strategy"], switches["mode"])
    with pytest.raises(ReproError, match=pattern):
        bad.validate(bad.hparams({}))


def test_unknown_key_names_the_valid_choices():
    with pytest.raises(ReproError, match="bogus") as err:
        H.parse(ApproxTrainConfig, {"bogus": 1}, "approx", ignore=GD_KEYS)
    for key in ("ratio", "minimal_k", "train_subset", "lr"):
        assert key in str(err.value)


def test_approx_train_config_parses_and_documents_every_key():
    cfg = H.parse(ApproxTrainConfig, {"ratio": 0.3, "layers": ["2"], "train_subset": 64, "lr": 0.1}, "approx",
                  ignore=GD_KEYS)
    assert cfg == ApproxTrainConfig(ratio=0.3, layers=("2",), train_subset=64)
    assert isinstance(cfg, ApproxConfig) and not cfg.exact and ApproxTrainConfig().exact
    for key in H.keys(ApproxTrainConfig) | GD_KEYS:
        assert f"`{key}`" in METHODS["topk50"].hparams_doc


# ---- methods: fixed switches --------------------------------------------------------------------

def test_fixed_switches_are_ratio_strategy_mode():
    assert PAPER.methods["bwd50"].fixed == {"ratio": 0.5, "strategy": "bernoulli", "mode": "backward"}
    assert PAPER.methods["exact"].fixed == {"ratio": 1.0, "strategy": "topk", "mode": "forward"}
    assert PAPER.methods["topk30"].fixed == {"ratio": 0.3, "strategy": "topk", "mode": "forward"}
    assert PAPER.methods["bern50"].fixed == {"ratio": 0.5, "strategy": "bernoulli", "mode": "forward"}
    for name, method in PAPER.methods.items():
        assert set(method.fixed) == {"ratio", "strategy", "mode"}, name
        assert method.is_baseline == (name == "exact")
    # A trial runs with them, merged over the experiment's tunable keys (which set none of them).
    for scale in ("smoke", "paper"):
        for exp in PAPER.experiments_at(scale).values():
            for m, tunable in exp.methods.items():
                assert not set(tunable) & {"ratio", "strategy", "mode"}, (scale, exp.name, m)
                merged = PAPER.trial_hparams(scale, exp.name, m)
                assert {k: merged[k] for k in PAPER.methods[m].fixed} == PAPER.methods[m].fixed
    hp = PAPER.trial_hparams("smoke", "mnist_mlp", "bwd50")
    assert (hp["ratio"], hp["strategy"], hp["mode"]) == (0.5, "bernoulli", "backward")


@pytest.mark.parametrize("key", ["ratio", "strategy", "mode"])
def test_experiment_setting_a_fixed_switch_is_refused_naming_it(key):
    value = {"ratio": 0.9, "strategy": "crs", "mode": "both"}[key]
    with pytest.raises(ReproError, match=f"'{key}' is a fixed switch of method 'topk50'"):
        PAPER.methods["topk50"].hparams({"lr": 0.1, key: value}, "experiment 'x'")
    # ... and a paper declaring such an experiment is refused when it is built.
    exp = Experiment("x", "mnist_mlp", {"exact": {}, "topk50": {"lr": 0.1, key: value}})
    with pytest.raises(ReproError, match=f"experiment 'x'.*'{key}'.*'topk50'"):
        dataclasses.replace(PAPER, experiments={"smoke": {"x": exp}}, claims=())


# ---- learning-rate schedule (the core's, with lr_schedule: cosine) ------------------------------

def test_cosine_schedule_is_the_core_one():
    cfg = GradientConfig(lr=0.15, lr_schedule="cosine")
    total = 4
    lrs = [scheduled_lr(cfg, e, total) for e in range(total)]
    assert lrs == pytest.approx([0.5 * 0.15 * (1 + math.cos(math.pi * e / total)) for e in range(total)])
    assert lrs[0] == pytest.approx(0.15) and lrs == sorted(lrs, reverse=True)
    # The paper-scale WRN experiment uses it, through the core key (approx has no schedule of its own).
    hp = PAPER.trial_hparams("paper", "cifar10_wrn28_10", "topk50")
    assert hp["lr_schedule"] == "cosine"
    PAPER.method("topk50").validate(hp)
    assert "lr_schedule" not in H.keys(ApproxTrainConfig)


# ---- MAC accounting -----------------------------------------------------------------------------

def test_mac_count_linear_forward_topk_is_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))
    counter = MacCounter()
    approximate_model(model, ApproxConfig(ratio=0.5, skip_first=True), counter)
    model.train()
    model(torch.randn(6, 10)).sum().backward()
    # layer 0 exact, input needs no grad: fwd + dW = 2 * 6*10*8. Layer 2 keeps 4 of 8 inputs:
    # fwd, dX, dW each 6*4*4 performed vs 6*8*4 dense.
    assert counter.performed == 2 * 480 + 3 * 96
    assert counter.dense == 2 * 480 + 3 * 192
    assert counter.saved_fraction == pytest.approx(1 - (960 + 288) / (960 + 576))


def test_mac_count_conv_and_eval_not_counted():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1))
    counter = MacCounter()
    approximate_model(model, ApproxConfig(ratio=0.5), counter)
    model.train()
    model(torch.randn(2, 1, 5, 5)).sum().backward()
    first = 2 * 4 * 1 * 9 * 25  # per pass
    second_dense, second_done = 2 * 6 * 4 * 9 * 25, 2 * 6 * 2 * 9 * 25
    assert counter.dense == 2 * first + 3 * second_dense
    assert counter.performed == 2 * first + 3 * second_done
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 1, 5, 5))
    assert counter.dense == 2 * first + 3 * second_dense


def test_hook_state_roundtrip():
    hook = ApproxHook(ApproxTrainConfig(ratio=0.5))
    hook.counter.add(3, 10)
    other = ApproxHook(ApproxTrainConfig(ratio=0.5))
    other.load_state_dict(hook.state_dict())
    assert other.counter.saved_fraction == pytest.approx(0.7)


def test_paper_declares_experiments_and_claims():
    assert PAPER.slug == "approx" and PAPER.kernel_benchmarks is not None
    for scale in ("smoke", "paper"):
        for exp in PAPER.experiments_at(scale).values():
            for m in exp.methods:
                PAPER.method(m).validate(PAPER.trial_hparams(scale, exp.name, m))
    assert any(c.not_run for c in PAPER.claims)
    assert set(PAPER.tiny_hparams) == set(PAPER.methods)
    for m, tiny in PAPER.tiny_hparams.items():
        method = PAPER.method(m)
        method.validate(method.hparams({**PAPER.experiment("smoke", "mnist_mlp").methods[m], **tiny}))


# ---- claims: MACs saved are by construction -----------------------------------------------------

MACS_CLAIMS = [c for c in PAPER.claims if c.id.startswith("approx_macs_saved_")]


def test_macs_saved_claims_are_by_construction():
    assert {c.id for c in MACS_CLAIMS} == {"approx_macs_saved_mnist_mlp", "approx_macs_saved_mnist_cnn"}
    for c in MACS_CLAIMS:
        assert c.by_construction and c.metric == "macs_saved_fraction" and c.compare == "value"
        assert c.method == "topk30" and not c.not_run
    # No other claim is: accuracy and speed are measured.
    assert all(not c.by_construction for c in PAPER.claims if c not in MACS_CLAIMS)


@pytest.mark.parametrize("claim", MACS_CLAIMS, ids=lambda c: c.id)
@pytest.mark.parametrize(("values", "holds"), [
    ([0.70, 0.70, 0.70], True),  # what topk30 counts: the same fraction on every seed
    ([0.69, 0.71, 0.70, 0.70], True),
    ([0.40, 0.41, 0.40], False),  # a fixed value that misses the claim is still not "not reproduced"
])
def test_macs_saved_claims_get_by_construction_verdict(claim, values, holds):
    others = {"exact": {s: 0.0 for s in range(len(values))}}  # other methods' numbers change nothing
    measurements = {claim.experiment: {claim.method: dict(enumerate(values)), **others},
                    "elsewhere": {claim.method: {s: 0.0 for s in range(len(values))}}}
    v = judge(claim, measurements)
    assert v.verdict == "by construction"
    assert v.holds is holds
    assert v.interval is not None and v.interval.n == len(values)
    assert v.interval.mean == pytest.approx(sum(values) / len(values))
    assert v.as_dict()["verdict"] == "by construction" and v.as_dict()["holds"] is holds
    assert claim.by_construction in v.reason


def test_accuracy_claim_on_the_same_kind_of_measurements_is_judged():
    # Contrast: a measured claim gets an ordinary verdict from the same measurement layout.
    claim = next(c for c in PAPER.claims if c.id == "approx_accuracy_mnist_mlp")
    measurements = {"mnist_mlp": {"topk30": {0: 0.951, 1: 0.949, 2: 0.950}, "exact": {0: 0.952, 1: 0.950, 2: 0.951}}}
    assert judge(claim, measurements).verdict == "reproduced"
