"""The seven SFU test functions: analytic gradients vs autograd, published minima, domains."""

from __future__ import annotations

import math

import pytest
import torch

from repro.errors import ReproError

from repro_sobolev.functions import FUNCTION_NAMES, FUNCTIONS, get_function, grid, scaling, standardised

# Global minima published on the SFU pages (https://www.sfu.ca/~ssurjano/<name>.html), d = 2.
SFU_MINIMA = {
    "ackley": ((0.0, 0.0), 0.0),
    "beale": ((3.0, 0.5), 0.0),
    "booth": ((1.0, 3.0), 0.0),
    "bukin6": ((-10.0, 1.0), 0.0),
    "mccormick": ((-0.54719, -1.54719), -1.9133),
    "rosenbrock": ((1.0, 1.0), 0.0),
    "styblinski_tang": ((-2.903534, -2.903534), -39.16599 * 2),
}
# Where the gradient exists at the minimum it is zero (Ackley and Bukin N.6 are not differentiable there).
SMOOTH_MINIMA = ("beale", "booth", "mccormick", "rosenbrock", "styblinski_tang")
# Domains as SFU gives them; the third-party reference code of Kissel & Diepold (ECML-PKDD 2019,
# MatthiasKi/SobolevTrainingApproxDerivatives, function_definitions.py get_sample_space) uses the
# same for the five functions it has.
SFU_DOMAINS = {
    "ackley": ((-32.768, 32.768), (-32.768, 32.768)),
    "beale": ((-4.5, 4.5), (-4.5, 4.5)),
    "booth": ((-10.0, 10.0), (-10.0, 10.0)),
    "bukin6": ((-15.0, -5.0), (-3.0, 3.0)),
    "mccormick": ((-1.5, 4.0), (-3.0, 4.0)),
    "rosenbrock": ((-5.0, 10.0), (-5.0, 10.0)),
    "styblinski_tang": ((-5.0, 5.0), (-5.0, 5.0)),
}


def test_the_papers_seven_functions_with_sfu_domains():
    assert set(FUNCTION_NAMES) == set(SFU_DOMAINS)
    for name, dom in SFU_DOMAINS.items():
        assert FUNCTIONS[name].domain == dom
    with pytest.raises(ReproError, match="valid choices"):
        get_function("branin")


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_analytic_gradient_matches_autograd(name):
    fn = get_function(name)
    g = torch.Generator().manual_seed(1)
    u = 2 * torch.rand(500, 2, generator=g, dtype=torch.float64) - 1
    x = fn.to_domain(u).requires_grad_(True)
    (auto,) = torch.autograd.grad(fn.value(x).sum(), x)
    analytic = fn.grad(x.detach())
    assert torch.allclose(analytic, auto, rtol=1e-10, atol=1e-10 * float(auto.abs().max()))


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_published_global_minimum(name):
    point, value = SFU_MINIMA[name]
    fn = get_function(name)
    x = torch.tensor([point], dtype=torch.float64)
    tol = 1e-4 * max(1.0, abs(value))  # SFU rounds (Styblinski-Tang: -39.16599 d; -39.16617 d exactly)
    assert float(fn.value(x)) == pytest.approx(value, abs=tol)
    if name in SMOOTH_MINIMA:
        assert float(fn.grad(x).abs().max()) < 1e-2 * max(1.0, abs(value))
    # every point of the dense grid is at least the minimum
    assert float(fn.value(fn.to_domain(grid(50))).min()) >= value - tol


def test_non_differentiable_sets_get_a_finite_gradient():
    assert torch.equal(get_function("ackley").grad(torch.zeros(1, 2, dtype=torch.float64))[0, 0], torch.tensor(0.0,
                       dtype=torch.float64))
    ridge = torch.tensor([[-10.0, 1.0], [-12.0, 1.44]], dtype=torch.float64)
    assert torch.isfinite(get_function("bukin6").grad(ridge)).all()


def test_grid_covers_the_square_with_both_ends():
    pts = grid(5)
    assert pts.shape == (25, 2)
    assert float(pts.min()) == -1.0 and float(pts.max()) == 1.0
    assert len({tuple(p) for p in pts.tolist()}) == 25


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_standardised_problem_has_unit_variance_and_consistent_gradients(name):
    fn = get_function(name)
    sc = scaling(fn, 100)
    values, _ = standardised(fn, fn.to_domain(grid(100)), sc)
    assert abs(float(values.mean())) < 1e-9 and float(values.std()) == pytest.approx(1.0)
    # the derivative targets are the derivatives of the value targets (central differences)
    g = torch.Generator().manual_seed(2)
    x = fn.to_domain(1.6 * torch.rand(50, 2, generator=g, dtype=torch.float64) - 0.8)
    if name == "bukin6":  # keep away from the ridge, where the derivative is unbounded
        x = x[(x[:, 1] - 0.01 * x[:, 0] ** 2).abs() > 0.05]
    _, grad = standardised(fn, x, sc)
    h = 1e-6 * fn.half_width
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h[i]
        fd = (standardised(fn, x + e, sc)[0] - standardised(fn, x - e, sc)[0]) / (2 * h[i])
        assert torch.allclose(fd, grad[:, i], rtol=1e-5, atol=1e-6 * max(1.0, float(grad.abs().max())))
    assert math.isfinite(sc.std) and sc.std > 0
