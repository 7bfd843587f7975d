"""Properties of the quantizers: levels, unbiasedness of stochastic rounding, the BHQ plan and transform."""

from __future__ import annotations

import pytest
import torch

from repro_fqt import kernels as K
from repro_fqt import quantizers as Q


def heavy_tailed(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """A gradient-like matrix: per-sample magnitudes spread over decades (a few samples dominate)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) ** 4


def test_outputs_lie_on_the_levels_and_within_one_level():
    x = heavy_tailed(16, 10)
    for bits in (2, 4, 8):
        out = K.quantize_samples(x, bits)
        zero, scale = Q.per_row_range(x, bits)
        levels = (out - zero) * scale
        assert torch.allclose(levels, levels.round(), atol=1e-3)
        assert levels.min() >= -1e-3 and levels.max() <= Q.num_bins(bits) + 1e-3
        assert ((out - x).abs() * scale).max() <= 1 + 1e-4


def test_per_tensor_range_puts_zero_on_a_level():
    x = torch.tensor([[-0.37, 0.0, 1.91], [0.5, -0.01, 0.02]])
    zero, scale = Q.per_tensor_range(x, 4, align_zero=True)
    level_of_zero = float(-zero * scale)
    assert level_of_zero == pytest.approx(round(level_of_zero), abs=1e-4)
    out = K.quantize_tensor(x, 4, stochastic=True)
    assert out[0, 1] == 0.0  # exact zeros stay exactly zero under stochastic rounding
    # the range widened to align zero still covers the data: no clamping, hence no bias
    assert float((x.max() - zero) * scale) <= Q.num_bins(4) + 1e-4


def test_positive_tensor_keeps_the_unaligned_range_where_the_reference_divides_by_zero():
    x = torch.tensor([0.2, 0.7, 1.3])  # min(x - eps, 0) = 0: floor(-zero * scale) == 0
    zero, scale = Q.per_tensor_range(x, 8, align_zero=True)
    assert torch.isfinite(zero) and torch.isfinite(scale)
    assert torch.isfinite(K.quantize_tensor(x, 8, stochastic=False)).all()


def test_constant_rows_come_back_exactly():
    x = torch.full((3, 4), 0.7)  # 0.7 -+ 1e-8 rounds back to 0.7 in float32: an empty range
    for out in (K.quantize_samples(x, 4), K.quantize_columns(x, 4), K.quantize_tensor(x, 4, stochastic=True,
                                                                                     align_zero=False)):
        assert torch.equal(out, x)


@pytest.mark.parametrize("scheme", ["ptq", "psq", "bhq"])
def test_stochastic_rounding_is_unbiased(scheme):
    """Mean over many draws -> the input: the per-coordinate t statistics have mean square ~ 1."""
    x = heavy_tailed(12, 8, seed=1)
    gen = torch.Generator().manual_seed(0)
    r = 300
    draws = torch.stack([K.quantize_gradient(x, scheme, 4, generator=gen) for _ in range(r)]).double()
    mean, sd = draws.mean(0), draws.std(0)
    ok = sd > 1e-6 * x.abs().max()
    t2 = ((mean - x.double())[ok] / (sd[ok] / r ** 0.5)) ** 2
    assert 0.6 < float(t2.mean()) < 1.6


def test_shifted_rounding_noise_is_detected_as_biased(monkeypatch):
    """The same statistic on a biased quantizer (noise shifted by a quarter level) is far from 1."""
    x = heavy_tailed(12, 8, seed=1)
    draw = Q.draw_noise
    monkeypatch.setattr(Q, "draw_noise", lambda shape, device, generator=None: draw(shape, device, generator) + 0.25)
    r = 300
    draws = torch.stack([K.quantize_gradient(x, "psq", 4) for _ in range(r)]).double()
    mean, sd = draws.mean(0), draws.std(0)
    ok = sd > 1e-6 * x.abs().max()
    t2 = ((mean - x.double())[ok] / (sd[ok] / r ** 0.5)) ** 2
    assert float(t2.mean()) > 20


def test_variance_order_on_heavy_tailed_gradients():
    """Per-sample ranges beat one range (PSQ < PTQ); spreading the large rows' magnitude over
    blocks beats per-sample (BHQ < PSQ) when a few samples dominate."""
    x = heavy_tailed(64, 32, seed=2)
    gen = torch.Generator().manual_seed(0)

    def var(scheme):
        return float(torch.stack([(K.quantize_gradient(x, scheme, 4, generator=gen) - x).pow(2).sum()
                                  for _ in range(40)]).mean())

    ptq, psq, bhq = var("ptq"), var("psq"), var("bhq")
    assert psq < ptq and bhq < psq


def test_householder_max_matches_the_dense_reflection():
    for n in range(1, 20):
        assert float(Q.householder_max(torch.tensor([n]))) == pytest.approx(
            float(Q.householder_dense(n).abs().max()), rel=1e-6)
        h = Q.householder_dense(n)
        if n > 1:
            e1 = torch.zeros(n)
            e1[0] = 1
            assert torch.allclose(h @ e1, torch.full((n,), n ** -0.5), atol=1e-6)  # e1 -> 1/sqrt(n) 1
            assert torch.allclose(h @ h, torch.eye(n), atol=1e-5)  # an involution


@pytest.mark.parametrize("n", [3, 4, 7, 32, 128])
def test_bhq_plan_blocks_cover_the_rows_and_transform_matches_dense(n):
    x = heavy_tailed(n, 9, seed=n)
    plan = Q.bhq_plan(Q.row_ranges(x))
    sizes = plan.sizes()
    assert int(sizes.sum()) == n and int(sizes.min()) >= 2
    ranges = Q.row_ranges(x)
    leaders = [int(torch.nonzero(plan.block == b).flatten()[ranges[plan.block == b].argmax()]) for b in range(plan.n_blocks)]
    # each block is led by one of the n_blocks largest rows
    assert set(leaders) == set(torch.argsort(ranges, descending=True)[: plan.n_blocks].tolist())
    T = plan.dense()
    assert torch.allclose(Q.householder_apply(x, plan), T @ x, atol=1e-5)
    assert torch.allclose(Q.householder_apply(Q.householder_apply(x, plan), plan, inverse=True), x, atol=1e-5)


def test_bhq_edge_cases():
    one = torch.randn(1, 5)
    assert Q.bhq_plan(Q.row_ranges(one)).identity
    assert torch.isfinite(K.quantize_householder(one, 4)).all()
    two = torch.tensor([[1.0, -2.0], [0.001, 0.002]])
    plan = Q.bhq_plan(Q.row_ranges(two))
    assert plan.n_blocks == 1 and plan.sizes().tolist() == [2]
    assert torch.allclose(Q.householder_apply(Q.householder_apply(two, plan), plan, inverse=True), two, atol=1e-6)


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="ptq, psq, bhq"):
        K.quantize_gradient(torch.zeros(2, 2), "fp4", 4)
