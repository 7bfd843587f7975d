"""Tests for repro_enkf.assimilation: ES-MDA/EnKF analysis step and schedules."""

from __future__ import annotations

import math

import pytest
import torch

from repro_enkf.assimilation import (
    analysis_update,
    analysis_update_reference,
    ensemble_spread,
    inflation_schedule,
)
from repro_enkf.ensemble import ensemble_forward, init_ensemble, num_params

UPDATES = (analysis_update, analysis_update_reference)


def random_problem(ne: int, p: int, nd: int, seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(ne, p, generator=gen, dtype=dtype)
    # Predictions correlated with theta (random linear map + noise) so the update is non-trivial.
    mix = torch.randn(p, nd, generator=gen, dtype=dtype) / math.sqrt(p)
    predictions = theta @ mix + 0.1 * torch.randn(ne, nd, generator=gen, dtype=dtype)
    observations = torch.randn(nd, generator=gen, dtype=dtype)
    obs_var = 0.05 + torch.rand(nd, generator=gen, dtype=dtype)
    noise = torch.randn(ne, nd, generator=gen, dtype=dtype)
    return theta, predictions, observations, obs_var, noise


# (Ne, P, Nd): Nd > Ne, Nd < Ne, Nd == Ne, P < Ne, tiny ensembles.
CASES = [(10, 30, 50), (40, 25, 8), (16, 16, 16), (50, 5, 200), (2, 7, 3), (3, 4, 1)]


@pytest.mark.parametrize("ne,p,nd", CASES)
@pytest.mark.parametrize("alpha", [1.0, 4.0, 37.5])
def test_ensemble_space_matches_reference(ne: int, p: int, nd: int, alpha: float) -> None:
    theta, pred, obs, var, noise = random_problem(ne, p, nd, seed=ne * 1000 + nd)
    fast = analysis_update(theta, pred, obs, var, alpha, noise)
    ref = analysis_update_reference(theta, pred, obs, var, alpha, noise)
    assert fast.shape == theta.shape and fast.dtype == theta.dtype
    # The update actually moved the ensemble, and both forms agree on the increment.
    assert not torch.allclose(fast, theta)
    torch.testing.assert_close(fast - theta, ref - theta, rtol=1e-5, atol=1e-9)


def test_scalar_obs_var_equals_constant_vector() -> None:
    theta, pred, obs, _, noise = random_problem(12, 9, 20, seed=5)
    for update in UPDATES:
        a = update(theta, pred, obs, 0.3, 2.0, noise)
        b = update(theta, pred, obs, torch.full((20,), 0.3, dtype=torch.float64), 2.0, noise)
        torch.testing.assert_close(a, b)


def test_float32_inputs_keep_dtype_and_agree() -> None:
    theta, pred, obs, var, noise = random_problem(20, 15, 60, seed=7, dtype=torch.float32)
    fast = analysis_update(theta, pred, obs, var, 3.0, noise)
    ref = analysis_update_reference(theta, pred, obs, var, 3.0, noise)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_update_does_not_modify_inputs() -> None:
    theta, pred, obs, var, noise = random_problem(6, 5, 4, seed=2)
    copies = [t.clone() for t in (theta, pred, obs, var, noise)]
    for update in UPDATES:
        update(theta, pred, obs, var, 1.0, noise)
    for before, after in zip(copies, (theta, pred, obs, var, noise)):
        assert torch.equal(before, after)


def test_zero_spread_predictions_give_no_update() -> None:
    # If all members predict the same, there is no information to correlate: no update.
    theta, _, obs, var, noise = random_problem(8, 6, 5, seed=3)
    pred = torch.ones(8, 5, dtype=torch.float64)
    for update in UPDATES:
        torch.testing.assert_close(update(theta, pred, obs, var, 1.0, noise), theta)


@pytest.mark.parametrize("n", [1, 2, 4, 10])
@pytest.mark.parametrize("kind", ["constant", "geometric"])
def test_inflation_schedule_sums_to_one(n: int, kind: str) -> None:
    alphas = inflation_schedule(n, kind)
    assert len(alphas) == n
    assert sum(1.0 / a for a in alphas) == pytest.approx(1.0, rel=1e-12)
    assert all(a >= 1.0 for a in alphas)


def test_inflation_schedule_shapes() -> None:
    assert inflation_schedule(4) == [4.0, 4.0, 4.0, 4.0]
    geo = inflation_schedule(4, "geometric")
    assert all(a > b for a, b in zip(geo, geo[1:]))  # strictly decreasing
    assert geo[0] / geo[1] == pytest.approx(2.0)
    assert inflation_schedule(3, "geometric", ratio=1.0) == pytest.approx([3.0, 3.0, 3.0])


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_inflation_schedule_bad_n(n) -> None:
    with pytest.raises(ValueError, match="n_assimilations"):
        inflation_schedule(n)


def test_inflation_schedule_bad_kind_and_ratio() -> None:
    with pytest.raises(ValueError, match="kind.*'linear'"):
        inflation_schedule(3, "linear")
    with pytest.raises(ValueError, match="ratio"):
        inflation_schedule(3, "geometric", ratio=0.5)


def test_ensemble_spread() -> None:
    theta = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    # Column stds (unbiased): sqrt(2) and 0 -> mean sqrt(2)/2.
    assert ensemble_spread(theta) == pytest.approx(math.sqrt(2) / 2)
    with pytest.raises(ValueError, match="theta"):
        ensemble_spread(torch.zeros(1, 3))


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize(
    "kwargs,name,bad",
    [
        (dict(alpha=0.0), "alpha", "0.0"),
        (dict(alpha=-2.0), "alpha", "-2.0"),
        (dict(alpha=float("inf")), "alpha", "inf"),
        (dict(alpha=float("nan")), "alpha", "nan"),
        (dict(obs_var=0.0), "obs_var", "0.0"),
        (dict(obs_var=-1.0), "obs_var", "-1.0"),
        (dict(obs_var=torch.tensor([1.0, 1.0, -0.5, 1.0])), "obs_var", "-0.5"),
        (dict(obs_var=torch.ones(3)), "obs_var", "(3,)"),
        (dict(theta=torch.zeros(1, 6, dtype=torch.float64)), "theta", "Ne=1"),
        (dict(theta=torch.zeros(6, dtype=torch.float64)), "theta", "(6,)"),
        (dict(predictions=torch.zeros(4, 4, dtype=torch.float64)), "predictions", "(4, 4)"),
        (dict(observations=torch.zeros(5, dtype=torch.float64)), "observations", "(5,)"),
        (dict(noise=torch.zeros(5, 3, dtype=torch.float64)), "noise", "(5, 3)"),
    ],
)
def test_bad_inputs_raise_with_name(update, kwargs: dict, name: str, bad: str) -> None:
    theta, pred, obs, var, noise = random_problem(5, 6, 4, seed=0)
    args = dict(theta=theta, predictions=pred, observations=obs, obs_var=var, alpha=1.0, noise=noise)
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        update(**args)
    assert name in str(err.value) and bad in str(err.value)


@pytest.mark.parametrize("kind", ["constant", "geometric"])
def test_esmda_linear_regression_converges(kind: str) -> None:
    """ES-MDA on y = 2x - 0.5 with a [1, 1] network (one linear layer, identity output)."""
    sizes = [1, 1]
    true = torch.tensor([[2.0, -0.5]], dtype=torch.float64)  # (w, b) flattened like nn.Linear
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 40, dtype=torch.float64).unsqueeze(1)
    sigma = 0.05
    y = ensemble_forward(true, x, sizes)[0, :, 0] + sigma * torch.randn(40, generator=gen, dtype=torch.float64)

    theta = init_ensemble(sizes, 50, gen, std=1.0, dtype=torch.float64)
    assert num_params(sizes) == 2
    err0 = (theta.mean(0) - true[0]).norm().item()
    spread0 = ensemble_spread(theta)
    for alpha in inflation_schedule(4, kind):
        pred = ensemble_forward(theta, x, sizes)[..., 0]  # (Ne, Nd)
        noise = torch.randn(pred.shape, generator=gen, dtype=torch.float64)
        theta = analysis_update(theta, pred, y, sigma**2, alpha, noise)
    err = (theta.mean(0) - true[0]).norm().item()
    assert err < 0.05 < err0
    assert ensemble_spread(theta) < 0.1 * spread0


def test_esmda_tanh_mlp_fit_improves() -> None:
    """A small tanh MLP fitted to sin(x): the ensemble-mean prediction error drops."""
    sizes = [1, 10, 1]
    gen = torch.Generator().manual_seed(1)
    x = torch.linspace(-2, 2, 50, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(x[:, 0])
    theta = init_ensemble(sizes, 100, gen, dtype=torch.float64)

    def mse(th: torch.Tensor) -> float:
        return ((ensemble_forward(th, x, sizes)[..., 0].mean(0) - y) ** 2).mean().item()

    before = mse(theta)
    for _ in range(6):  # repeated ES-MDA rounds, as iterative training does (not monotone per round)
        for alpha in inflation_schedule(4):
            pred = ensemble_forward(theta, x, sizes)[..., 0]
            noise = torch.randn(pred.shape, generator=gen, dtype=torch.float64)
            theta = analysis_update(theta, pred, y, 1e-3, alpha, noise)
    assert mse(theta) < 0.1 * before
