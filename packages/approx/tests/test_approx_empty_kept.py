"""A kept set of size zero (Bernoulli-CRS can keep no pair) gives the empty sum, exactly zero, on every path.

The empty draw is *forced* (the selection monkeypatched to keep nothing, or every Bernoulli coin
forced to tails), not left to chance; one randomized test then repeats a heavy-tailed toy layer a
few hundred times (where empty draws do happen: the conv backward used to crash on them).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from repro_approx import ApproxConfig, MacCounter, approx_conv2d, approx_linear, approx_matmul, kernels
from repro_approx import autograd as ag
from repro_approx import sampling

MODES = ("forward", "backward", "both")
STRATEGIES = ("topk", "crs", "bernoulli")
STRIDE, PADDING = (2, 2), (1, 1)
EVERY_PATH = list(itertools.product(("linear", "conv2d"), MODES, STRATEGIES))


def _inputs(layer: str, batch: int = 6):
    gen = torch.Generator().manual_seed(0)
    if layer == "linear":
        shapes = ((batch, 8), (4, 8), (batch, 4))
    else:
        shapes = ((batch, 8, 5, 5), (4, 8, 3, 3), (batch, 4, 3, 3))
    x, w, g = (torch.randn(*s, generator=gen) for s in shapes)
    bias = torch.randn(4, generator=gen)
    return x, w, bias, g


def _run(layer: str, cfg: ApproxConfig, x, w, bias, g, counter: MacCounter | None = None):
    x, w, bias = (t.clone().requires_grad_() for t in (x, w, bias))
    if layer == "linear":
        out = approx_linear(x, w, bias, cfg, counter)
    else:
        out = approx_conv2d(x, w, bias, cfg, counter, STRIDE, PADDING)
    out.backward(g)
    return out.detach(), x.grad, w.grad, bias.grad


def _exact(layer: str, x, w, bias, g):
    x, w, bias = (t.clone().requires_grad_() for t in (x, w, bias))
    out = F.linear(x, w, bias) if layer == "linear" else F.conv2d(x, w, bias, STRIDE, PADDING)
    out.backward(g)
    return out.detach(), x.grad, w.grad, bias.grad


def _bias_only(layer: str, bias, like):
    return bias.view(1, -1).expand_as(like) if layer == "linear" else bias.view(1, -1, 1, 1).expand_as(like)


class Schedule:
    """Stands in for ``select``: call i keeps nothing if ``empty[i]`` else every pair with scale 1."""

    def __init__(self, empty):
        self.empty, self.calls = list(empty), 0

    def __call__(self, scores, k, strategy, eps=0.1, generator=None):
        assert strategy in STRATEGIES
        drop = self.empty[self.calls] if self.calls < len(self.empty) else True
        self.calls += 1
        n = scores.numel()
        if drop:
            return torch.empty(0, dtype=torch.long), torch.empty(0)
        return torch.arange(n), torch.ones(n)


@pytest.mark.parametrize(("layer", "mode", "strategy"), EVERY_PATH)
def test_forced_empty_selection_gives_zeros_on_every_path(layer, mode, strategy, monkeypatch):
    monkeypatch.setattr(ag, "select", Schedule([]))  # every selection keeps nothing
    x, w, bias, g = _inputs(layer)
    counter = MacCounter()
    out, gx, gw, gb = _run(layer, ApproxConfig(ratio=0.5, mode=mode, strategy=strategy), x, w, bias, g, counter)
    ref_out, _, _, ref_gb = _exact(layer, x, w, bias, g)
    if mode == "backward":  # exact forward; both backward products sampled to nothing
        assert torch.allclose(out, ref_out, atol=1e-5)
    else:  # no forward pair kept: the output is the bias alone
        assert torch.equal(out, _bias_only(layer, bias, ref_out))
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gw, torch.zeros_like(w))
    assert torch.allclose(gb, ref_gb, atol=1e-5)  # the bias gradient is never sampled
    assert torch.isfinite(out).all()
    forward_macs = ref_out.numel() * (w[0].numel() if layer == "conv2d" else w.shape[1])
    assert counter.performed == (forward_macs if mode == "backward" else 0)
    assert counter.dense == 3 * forward_macs


@pytest.mark.parametrize("layer", ["linear", "conv2d"])
@pytest.mark.parametrize(("mode", "empty"), [
    ("backward", (True, False)), ("backward", (False, True)), ("backward", (False, False)),
    ("both", (False, True, False)), ("both", (False, False, True)), ("both", (False, True, True)),
    ("both", (False, False, False)), ("both", (True,)),
])
def test_each_product_sampled_to_nothing_contributes_zero(layer, mode, empty, monkeypatch):
    """Mixed schedules: the products whose kept set is empty are zero, the others (all kept) exact."""
    schedule = Schedule(empty)
    monkeypatch.setattr(ag, "select", schedule)
    x, w, bias, g = _inputs(layer)
    out, gx, gw, gb = _run(layer, ApproxConfig(ratio=0.5, mode=mode, strategy="bernoulli"), x, w, bias, g)
    ref_out, ref_gx, ref_gw, ref_gb = _exact(layer, x, w, bias, g)
    fwd_empty, gx_empty, gw_empty = (empty[0], True, True) if mode == "both" and empty[0] else \
        ((False,) + tuple(empty)) if mode == "backward" else tuple(empty)
    assert schedule.calls == len(empty)  # nothing left to sample after an empty forward
    want_out = _bias_only(layer, bias, ref_out) if fwd_empty else ref_out
    assert torch.allclose(out, want_out, atol=1e-5)
    assert torch.allclose(gx, torch.zeros_like(x) if gx_empty else ref_gx, atol=1e-4)
    assert torch.allclose(gw, torch.zeros_like(w) if gw_empty else ref_gw, atol=1e-4)
    assert torch.allclose(gb, ref_gb, atol=1e-5)


@pytest.mark.parametrize(("layer", "mode"), list(itertools.product(("linear", "conv2d"), MODES)))
def test_all_bernoulli_coins_tails_through_the_real_selection(layer, mode, monkeypatch):
    """No stand-in for ``select``: its uniforms are forced to 1, so no coin keeps a pair."""
    monkeypatch.setattr(sampling, "_uniforms", lambda n, device, generator: torch.ones(n, device=device))
    x, w, bias, g = _inputs(layer)
    out, gx, gw, gb = _run(layer, ApproxConfig(ratio=0.5, mode=mode, strategy="bernoulli"), x, w, bias, g)
    ref_out, _, _, ref_gb = _exact(layer, x, w, bias, g)
    want = ref_out if mode == "backward" else _bias_only(layer, bias, ref_out)
    assert torch.allclose(out, want, atol=1e-5)
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gw, torch.zeros_like(w))
    assert torch.allclose(gb, ref_gb, atol=1e-5)


def test_select_and_approx_matmul_with_no_pair_kept(monkeypatch):
    monkeypatch.setattr(sampling, "_uniforms", lambda n, device, generator: torch.ones(n, device=device))
    idx, scale = sampling.select(torch.rand(10) + 0.1, 5, "bernoulli")
    assert idx.numel() == 0 and scale.numel() == 0 and idx.dtype == torch.long
    a, b = torch.randn(3, 10), torch.randn(10, 4)
    assert torch.equal(sampling.sampled_matmul(a, b, idx, scale), torch.zeros(3, 4))
    assert torch.equal(approx_matmul(a, b, 0.5, strategy="bernoulli"), torch.zeros(3, 4))


@pytest.mark.parametrize(("layer", "mode", "strategy"), EVERY_PATH)
def test_zero_batch_rows(layer, mode, strategy):
    """An empty batch (nothing to sample over) is not an error either."""
    x, w, bias, g = _inputs(layer, batch=0)
    out, gx, gw, gb = _run(layer, ApproxConfig(ratio=0.5, mode=mode, strategy=strategy), x, w, bias, g)
    assert out.shape[0] == 0 and gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(bias))


def test_kernel_wrappers_with_no_pair_kept():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 12, generator=gen), torch.randn(12, 7, generator=gen)
    none, no_scale = torch.empty(0, dtype=torch.long), torch.empty(0)
    for ref in (True, False):
        assert torch.equal(kernels.sampled_gemm(a, b, none, no_scale, force_reference=ref), torch.zeros(5, 7))
        s = kernels.pair_scores(a, b, force_reference=ref)
        assert torch.equal(kernels.bernoulli_keep(s, 4, 0.1, torch.ones(12), force_reference=ref), torch.zeros(12))
        got = kernels.sample_and_multiply(a, b, 4, "bernoulli", u=torch.ones(12), force_reference=ref)
        assert torch.equal(got, torch.zeros(5, 7))
        # k = n: every pair, scale 1 (the exact product), for every strategy
        for strategy in STRATEGIES:
            exact = kernels.sample_and_multiply(a, b, 12, strategy, u=torch.ones(12), force_reference=ref)
            assert torch.allclose(exact, a @ b, atol=1e-5)


# ---- randomized: the heavy-tailed toy layer ------------------------------------------------------

def _heavy_toy(layer: str):
    """A few huge batch rows / channels (Pareto-like scales): Bernoulli-CRS often keeps nothing of the rest."""
    gen = torch.Generator().manual_seed(0)

    def heavy(n):
        return torch.rand(n, generator=gen) ** -3.0

    if layer == "conv2d":
        x = torch.randn(8, 4, 5, 5, generator=gen) * heavy(8).view(-1, 1, 1, 1) * heavy(4).view(1, -1, 1, 1)
        w = torch.randn(4, 4, 3, 3, generator=gen) * heavy(4).view(-1, 1, 1, 1)
        g = torch.randn(8, 4, 3, 3, generator=gen)
    else:
        x = torch.randn(8, 6, generator=gen) * heavy(8).view(-1, 1) * heavy(6)
        w = torch.randn(4, 6, generator=gen) * heavy(4).view(-1, 1)
        g = torch.randn(8, 4, generator=gen)
    return x, w, torch.zeros(4), g


@pytest.mark.parametrize(("layer", "mode"), list(itertools.product(("linear", "conv2d"), ("backward", "both"))))
def test_heavy_tailed_toy_repeated_never_crashes_and_stays_unbiased(layer, mode, monkeypatch):
    real, empties = ag.select, []

    def counting(*args, **kwargs):
        idx, scale = real(*args, **kwargs)
        empties.append(idx.numel() == 0)
        return idx, scale

    monkeypatch.setattr(ag, "select", counting)
    x, w, bias, g = _heavy_toy(layer)
    _, ref_gx, ref_gw, _ = _exact(layer, x, w, bias, g)
    cfg = ApproxConfig(ratio=0.5, strategy="bernoulli", mode=mode)
    torch.manual_seed(0)
    reps = 300
    sum_gx = torch.zeros_like(x, dtype=torch.float64)
    sum_gw = torch.zeros_like(w, dtype=torch.float64)
    for _ in range(reps):
        out, gx, gw, gb = _run(layer, cfg, x, w, bias, g)
        assert torch.isfinite(out).all() and torch.isfinite(gx).all() and torch.isfinite(gw).all()
        sum_gx += gx
        sum_gw += gw
    assert sum(empties) > 0, "the toy must actually produce empty draws"
    # unbiased: the mean of the estimates (empty draws included, as zeros) approaches the exact gradient
    tol = 0.1 if mode == "backward" else 0.25
    for mean, ref in ((sum_gx / reps, ref_gx), (sum_gw / reps, ref_gw)):
        assert float((mean - ref).norm() / ref.norm()) < tol


@pytest.mark.parametrize("mode", MODES)
def test_wrapped_model_trains_through_empty_draws(mode, monkeypatch):
    """``approximate_model`` end to end: every Bernoulli draw empty, one training step still works."""
    from torch import nn

    from repro_approx import approximate_model

    monkeypatch.setattr(sampling, "_uniforms", lambda n, device, generator: torch.ones(n, device=device))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 5))
    counter = MacCounter()
    model, names = approximate_model(model, ApproxConfig(ratio=0.5, strategy="bernoulli", mode=mode), counter)
    assert names == ["2", "5"]  # the first conv stays exact
    model.train()
    loss = model(torch.randn(4, 3, 8, 8)).square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    for name in names:
        layer = model.get_submodule(name)
        assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))  # sampled to nothing
        assert layer.bias.grad is not None and torch.isfinite(layer.bias.grad).all()
    assert 0 < counter.performed < counter.dense
