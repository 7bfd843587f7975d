"""Column-row sampling for C = A B (A: N x n, B: n x m): pure functions, no modules.

k = min(max(floor(n * ratio), minimal_k), n) of the n column-row pairs are kept, chosen by the
score s_i = ||A[:, i]|| * ||B[i, :]||:

* ``topk``: the k largest scores, no rescaling (biased, deterministic; the paper's default for
  conv forward sampling).
* ``crs``: k draws with replacement, p_i = (1 - eps) s_i / sum(s) + eps / n, each kept pair
  scaled by 1 / (k p_i) (unbiased).
* ``bernoulli``: pair i kept independently with p_i = clamp(k s_i / sum(s), 0, 1), mixed with the
  uniform probability k / n: p_i <- (1 - eps) p_i + eps k / n; kept pairs scaled by 1 / p_i
  (unbiased; the expected number kept stays about k).

Every function returns ``(idx, scale)``: the kept indices (int64) and their per-index scales, so
``sampled_matmul(A, B, idx, scale) = sum_j scale_j A[:, idx_j] B[idx_j, :]``.

Bernoulli-CRS can keep *no* pair (every coin comes up tails). Then ``idx`` is empty and the
estimate is the empty sum, exactly zero: that is the unbiased estimator's value for this draw
(E[sum_i keep_i / p_i A_i B_i] = A B only if the empty draw contributes 0). Every consumer
(``sampled_matmul``, the autograd functions, the Triton wrappers) returns zeros of the right shape
for an empty ``idx``. The reference code instead falls back to the first k indices (biased); see
the package README.

The random draws go through ``_uniforms`` (Bernoulli) and ``_draw_with_replacement`` (CRS) so that
tests can force a draw; both call the torch RNG exactly as before (same streams).
"""

from __future__ import annotations

import math

import torch

from repro.errors import ReproError, unknown

STRATEGIES = ("topk", "crs", "bernoulli")
DEFAULT_EPS = 0.1


def num_kept(n: int, ratio: float, minimal_k: int = 1) -> int:
    """k = min(max(floor(n * ratio), minimal_k), n)."""
    if not 0 < ratio <= 1:
        raise ReproError(f"sample ratio must be in (0, 1], got {ratio!r}")
    return min(max(math.floor(n * ratio), int(minimal_k)), n)


def pair_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """s_i = ||A[:, i]||_2 * ||B[i, :]||_2 for A (N x n), B (n x m)."""
    return torch.linalg.vector_norm(a, dim=0) * torch.linalg.vector_norm(b, dim=1)


def keep_probabilities(scores: torch.Tensor, k: int, strategy: str, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The sampling probabilities of the n pairs (fp32), for k < n.

    * ``crs``: the distribution of each of the k draws, p_i = (1 - eps) s_i / sum(s) + eps / n
      (uniform 1/n where sum(s) = 0); sums to 1. Kept pairs are scaled by 1 / (k p_i).
    * ``bernoulli``: the keep probability of pair i, p_i = (1 - eps) clamp(k s_i / sum(s), 0, 1)
      + eps k / n (k / n where sum(s) = 0); sums to about k. Kept pairs are scaled by 1 / p_i.
    """
    n = scores.numel()
    s = scores.detach().float()
    if n == 0:
        return s
    total = s.sum()
    if strategy == "crs":
        p = s / total if total > 0 else torch.full_like(s, 1.0 / n)
        return (1 - eps) * p + eps / n
    if strategy == "bernoulli":
        p = (k * s / total).clamp(0, 1) if total > 0 else torch.full_like(s, k / n)
        return (1 - eps) * p + eps * k / n
    raise unknown("randomised sampling strategy", strategy, ("crs", "bernoulli"))


def _uniforms(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """n U[0, 1) draws for the Bernoulli coins (pair i kept iff u_i < p_i)."""
    if generator is not None:
        return torch.rand(n, generator=generator).to(device)
    return torch.rand(n, device=device)


def _draw_with_replacement(p: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k indices drawn i.i.d. from the distribution p (CRS)."""
    return torch.multinomial(p, k, replacement=True, generator=generator)


def select(scores: torch.Tensor, k: int, strategy: str, eps: float = DEFAULT_EPS,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices to keep and their scales for *strategy*, given the n scores (1-D).

    k >= n keeps everything with scale 1 (the exact product). Bernoulli may return an empty
    ``idx`` (nothing kept): the estimate is then exactly zero.
    """
    n = scores.numel()
    s = scores.detach().float()
    if strategy not in STRATEGIES:
        raise unknown("sampling strategy", strategy, STRATEGIES)
    if k >= n:
        return torch.arange(n, device=s.device), torch.ones(n, device=s.device)
    if strategy == "topk":
        idx = torch.topk(s, k, sorted=False).indices.sort().values
        return idx, torch.ones(k, device=s.device)
    p = keep_probabilities(s, k, strategy, eps)
    if strategy == "crs":
        idx = _draw_with_replacement(p, k, generator)
        return idx, 1.0 / (k * p[idx])
    idx = torch.nonzero(_uniforms(n, s.device, generator) < p).flatten()
    return idx, 1.0 / p[idx]


def sample_pairs(a: torch.Tensor, b: torch.Tensor, ratio: float, minimal_k: int, strategy: str,
                 eps: float = DEFAULT_EPS, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores + selection for C = A B over the shared dimension."""
    k = num_kept(a.shape[1], ratio, minimal_k)
    return select(pair_scores(a, b), k, strategy, eps, generator)


def sampled_matmul(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Reference: (A[:, idx] * scale) @ B[idx, :] (gather copies + dense product); zeros (N x m)
    for an empty *idx*."""
    return (a.index_select(1, idx) * scale.to(a.dtype)) @ b.index_select(0, idx)


def approx_matmul(a: torch.Tensor, b: torch.Tensor, ratio: float, minimal_k: int = 1, strategy: str = "topk",
                  eps: float = DEFAULT_EPS, generator: torch.Generator | None = None) -> torch.Tensor:
    """A B approximated by sampling; exact when k = n."""
    k = num_kept(a.shape[1], ratio, minimal_k)
    if k >= a.shape[1]:
        return a @ b
    idx, scale = select(pair_scores(a, b), k, strategy, eps, generator)
    return sampled_matmul(a, b, idx, scale)
