"""The seven 2-D optimisation test functions of the paper's regression experiment (§4.1), with
analytic gradients, in the standard definitions and domains of the Virtual Library of Simulation
Experiments (Surjanovic & Bingham, https://www.sfu.ca/~ssurjano/optimization.html).

Every function is a pure torch function of ``x`` (N, 2) -> (N,), and its gradient a second pure
function (N, 2) -> (N, 2) written out by hand (tests compare it with autograd). Where a function
is not differentiable (Ackley at the origin, Bukin N.6 on the ridge x2 = 0.01 x1² and on
x1 = -10) the gradient returns the one-sided value ``sign(0) = 0`` gives; those sets have measure
zero and no grid or random point lands on them exactly.

**Standardised values (ours).** The functions take values of very different scales
(Rosenbrock reaches ~1e6 on [-5, 10]², McCormick ~40), so one learning rate cannot serve them raw
and errors would not be comparable across functions. The learning problem is therefore the
function with its values standardised by its own mean and standard deviation over the dense
evaluation grid (fixed constants of the function, the same for every method and seed), on its
own domain and in its own input coordinates:

    f̃(x) = (f(x) − μ_f) / σ_f,        ∇_x f̃(x) = ∇_x f(x) / σ_f.

The derivative targets stay the derivatives of the value targets, and the relative weight of the
value and derivative terms of the Sobolev loss is the one the raw function has (only divided by
σ_f² for both): rescaling the inputs too would multiply the derivative term by the squared domain
half-width (~1000 for Ackley) and change the method. (The network normalises its inputs with a
fixed affine map onto [-1, 1]², ``modeling_sobolev``; that is part of the model, not of the
problem.) Test errors are in these units: a value MSE of 1 is the error of predicting the
function's mean everywhere. The paper does not say how (or whether) it rescaled; its absolute
error numbers are not comparable with ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from repro.errors import unknown

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TestFunction:
    """One SFU test function: ``value(x)`` (N,), ``grad(x)`` (N, 2), the domain per input."""

    __test__ = False  # not a pytest class

    name: str
    title: str
    value: Fn
    grad: Fn
    domain: tuple[tuple[float, float], tuple[float, float]]
    url: str

    @property
    def centre(self) -> torch.Tensor:
        return torch.tensor([(lo + hi) / 2 for lo, hi in self.domain], dtype=torch.float64)

    @property
    def half_width(self) -> torch.Tensor:
        return torch.tensor([(hi - lo) / 2 for lo, hi in self.domain], dtype=torch.float64)

    def to_domain(self, u: torch.Tensor) -> torch.Tensor:
        """Normalised inputs u in [-1, 1]² -> points x of the domain."""
        return self.centre.to(u) + self.half_width.to(u) * u


# ---- the functions (SFU definitions, d = 2) -----------------------------------------------------

ACKLEY_A, ACKLEY_B, ACKLEY_C = 20.0, 0.2, 2 * math.pi  # SFU's recommended constants


def ackley(x: torch.Tensor) -> torch.Tensor:
    """-a exp(-b sqrt(mean x_i²)) - exp(mean cos(c x_i)) + a + e (a = 20, b = 0.2, c = 2π)."""
    r = torch.sqrt((x ** 2).mean(dim=1))
    return (-ACKLEY_A * torch.exp(-ACKLEY_B * r) - torch.exp(torch.cos(ACKLEY_C * x).mean(dim=1))
            + ACKLEY_A + math.e)


def ackley_grad(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    r = torch.sqrt((x ** 2).mean(dim=1, keepdim=True))
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    radial = torch.where(r > 0, ACKLEY_A * ACKLEY_B * torch.exp(-ACKLEY_B * r) * x / (d * safe_r),
                         torch.zeros_like(x))
    wave = torch.exp(torch.cos(ACKLEY_C * x).mean(dim=1, keepdim=True)) * ACKLEY_C * torch.sin(ACKLEY_C * x) / d
    return radial + wave


def beale(x: torch.Tensor) -> torch.Tensor:
    """(1.5 - x1 + x1 x2)² + (2.25 - x1 + x1 x2²)² + (2.625 - x1 + x1 x2³)²."""
    x1, x2 = x[:, 0], x[:, 1]
    return (1.5 - x1 + x1 * x2) ** 2 + (2.25 - x1 + x1 * x2 ** 2) ** 2 + (2.625 - x1 + x1 * x2 ** 3) ** 2


def beale_grad(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    a, b, c = 1.5 - x1 + x1 * x2, 2.25 - x1 + x1 * x2 ** 2, 2.625 - x1 + x1 * x2 ** 3
    g1 = 2 * a * (x2 - 1) + 2 * b * (x2 ** 2 - 1) + 2 * c * (x2 ** 3 - 1)
    g2 = 2 * a * x1 + 4 * b * x1 * x2 + 6 * c * x1 * x2 ** 2
    return torch.stack([g1, g2], dim=1)


def booth(x: torch.Tensor) -> torch.Tensor:
    """(x1 + 2 x2 - 7)² + (2 x1 + x2 - 5)²."""
    x1, x2 = x[:, 0], x[:, 1]
    return (x1 + 2 * x2 - 7) ** 2 + (2 * x1 + x2 - 5) ** 2


def booth_grad(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    p, q = x1 + 2 * x2 - 7, 2 * x1 + x2 - 5
    return torch.stack([2 * p + 4 * q, 4 * p + 2 * q], dim=1)


def bukin6(x: torch.Tensor) -> torch.Tensor:
    """100 sqrt(|x2 - 0.01 x1²|) + 0.01 |x1 + 10|."""
    x1, x2 = x[:, 0], x[:, 1]
    return 100 * torch.sqrt(torch.abs(x2 - 0.01 * x1 ** 2)) + 0.01 * torch.abs(x1 + 10)


def bukin6_grad(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    u = x2 - 0.01 * x1 ** 2
    au = torch.abs(u)
    # d/du 100 sqrt|u| = 50 sign(u) / sqrt|u| (infinite on the ridge u = 0; 0 there by convention)
    du = torch.where(au > 0, 50 * torch.sign(u) / torch.sqrt(torch.where(au > 0, au, torch.ones_like(au))),
                     torch.zeros_like(u))
    return torch.stack([du * (-0.02 * x1) + 0.01 * torch.sign(x1 + 10), du], dim=1)


def mccormick(x: torch.Tensor) -> torch.Tensor:
    """sin(x1 + x2) + (x1 - x2)² - 1.5 x1 + 2.5 x2 + 1."""
    x1, x2 = x[:, 0], x[:, 1]
    return torch.sin(x1 + x2) + (x1 - x2) ** 2 - 1.5 * x1 + 2.5 * x2 + 1


def mccormick_grad(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    c = torch.cos(x1 + x2)
    return torch.stack([c + 2 * (x1 - x2) - 1.5, c - 2 * (x1 - x2) + 2.5], dim=1)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """100 (x2 - x1²)² + (x1 - 1)²."""
    x1, x2 = x[:, 0], x[:, 1]
    return 100 * (x2 - x1 ** 2) ** 2 + (x1 - 1) ** 2


def rosenbrock_grad(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    return torch.stack([-400 * x1 * (x2 - x1 ** 2) + 2 * (x1 - 1), 200 * (x2 - x1 ** 2)], dim=1)


def styblinski_tang(x: torch.Tensor) -> torch.Tensor:
    """½ Σ (x_i⁴ - 16 x_i² + 5 x_i)."""
    return 0.5 * (x ** 4 - 16 * x ** 2 + 5 * x).sum(dim=1)


def styblinski_tang_grad(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (4 * x ** 3 - 32 * x + 5)


_SFU = "https://www.sfu.ca/~ssurjano/"

FUNCTIONS: dict[str, TestFunction] = {f.name: f for f in (
    TestFunction("ackley", "Ackley", ackley, ackley_grad, ((-32.768, 32.768), (-32.768, 32.768)),
                 _SFU + "ackley.html"),
    TestFunction("beale", "Beale", beale, beale_grad, ((-4.5, 4.5), (-4.5, 4.5)), _SFU + "beale.html"),
    TestFunction("booth", "Booth", booth, booth_grad, ((-10.0, 10.0), (-10.0, 10.0)), _SFU + "booth.html"),
    TestFunction("bukin6", "Bukin N.6", bukin6, bukin6_grad, ((-15.0, -5.0), (-3.0, 3.0)), _SFU + "bukin6.html"),
    TestFunction("mccormick", "McCormick", mccormick, mccormick_grad, ((-1.5, 4.0), (-3.0, 4.0)),
                 _SFU + "mccormick.html"),
    # SFU: "usually evaluated on the hypercube x_i in [-5, 10], although it may be restricted to
    # [-2.048, 2.048]"; the first is its standard domain.
    TestFunction("rosenbrock", "Rosenbrock", rosenbrock, rosenbrock_grad, ((-5.0, 10.0), (-5.0, 10.0)),
                 _SFU + "rosen.html"),
    TestFunction("styblinski_tang", "Styblinski–Tang", styblinski_tang, styblinski_tang_grad,
                 ((-5.0, 5.0), (-5.0, 5.0)), _SFU + "stybtang.html"),
)}
FUNCTION_NAMES = tuple(FUNCTIONS)


def get_function(name: str) -> TestFunction:
    if name not in FUNCTIONS:
        raise unknown("test function", name, FUNCTIONS)
    return FUNCTIONS[name]


# ---- the normalised learning problem ------------------------------------------------------------

def grid(points_per_side: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The dense evaluation grid of [-1, 1]²: G x G points (both ends included), (G², 2), row-major."""
    t = torch.linspace(-1.0, 1.0, points_per_side, dtype=dtype)
    a, b = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


@dataclass(frozen=True)
class Scaling:
    """μ_f and σ_f: the mean and standard deviation of f over the dense grid (see the module docstring)."""

    mean: float
    std: float


def scaling(fn: TestFunction, points_per_side: int) -> Scaling:
    values = fn.value(fn.to_domain(grid(points_per_side)))
    return Scaling(float(values.mean()), float(values.std()))


def standardised(fn: TestFunction, x: torch.Tensor, scale: Scaling) -> tuple[torch.Tensor, torch.Tensor]:
    """f̃(x) (N,) and ∇_x f̃(x) (N, 2) at domain points *x* (N, 2), computed in float64."""
    x = x.to(torch.float64)
    return (fn.value(x) - scale.mean) / scale.std, fn.grad(x) / scale.std
