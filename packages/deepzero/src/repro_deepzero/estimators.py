"""Zeroth-order gradient estimators on a flat parameter vector (pure functions).

A loss is given as ``f(thetas) -> losses``: it evaluates a batch of Q parameter vectors (Q, d) at
once (one batched computation, never a Python loop per query). Both estimators are forward
differences with step μ (DeepZero eq. 1-2; the official ``algorithm/zoo/gradient_estimate.py``):

* CGE, coordinate-wise: ĝ_i = [f(θ + μ e_i) − f(θ)] / μ for each active coordinate i (0 elsewhere);
  1 + |active| queries. Its error is O(μ): ĝ_i = ∂_i f + (μ/2) ∂²_ii f + O(μ²).
* RGE, randomised: ĝ = (1/q) Σ_j [f(θ + μ u_j) − f(θ)] / μ · u_j over directions u_j;
  1 + q queries. With u ~ N(0, I) it is unbiased for the gradient of the Gaussian-smoothed f.

``repro_deepzero.engine`` computes the same estimates on a network's parameter tensors (with
feature reuse); the tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

BatchedLoss = Callable[[torch.Tensor], torch.Tensor]


def cge(f: BatchedLoss, theta: torch.Tensor, mu: float, idx: torch.Tensor | None = None) -> torch.Tensor:
    """Coordinate-wise estimate at *theta* (d,) over the coordinates *idx* (all if None)."""
    d = theta.numel()
    idx = torch.arange(d, device=theta.device) if idx is None else idx
    points = theta.unsqueeze(0).repeat(len(idx) + 1, 1)
    points[torch.arange(1, len(idx) + 1, device=theta.device), idx] += mu
    losses = f(points)
    g = torch.zeros_like(theta)
    g[idx] = (losses[1:] - losses[0]) / mu
    return g


def rge(f: BatchedLoss, theta: torch.Tensor, mu: float, directions: torch.Tensor) -> torch.Tensor:
    """Randomised estimate at *theta* (d,) along *directions* (q, d)."""
    points = torch.cat([theta.unsqueeze(0), theta.unsqueeze(0) + mu * directions])
    losses = f(points)
    dd = (losses[1:] - losses[0]) / mu
    return dd @ directions / directions.shape[0]


def gaussian_directions(shapes: Mapping[str, Sequence[int]], q: int, generator: torch.Generator,
                        device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                        ) -> dict[str, torch.Tensor]:
    """q standard-normal directions per parameter tensor: name -> (q, *shape) (E[u uᵀ] = I)."""
    return {n: torch.randn((q, *s), generator=generator, dtype=dtype).to(device) for n, s in shapes.items()}


def reference_directions(shapes: Mapping[str, Sequence[int]], q: int, generator: torch.Generator,
                         device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                         ) -> dict[str, torch.Tensor]:
    """The official ``rge()`` directions: for each of the q samples, for each tensor in order, a
    standard-normal draw divided by (its norm + 1e-8) — unit length *per tensor*. Drawn in the same
    order as the official loop (sample-major), so a generator seeded like the official global RNG
    reproduces its directions."""
    out: dict[str, list[torch.Tensor]] = {n: [] for n in shapes}
    for _ in range(q):
        for n, s in shapes.items():
            u = torch.randn(tuple(s), generator=generator, dtype=dtype)
            out[n].append(u / (torch.norm(u) + 1e-8))
    return {n: torch.stack(v).to(device) for n, v in out.items()}
