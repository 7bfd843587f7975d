"""The HSPG math as pure functions (Chen et al. 2021, Algorithm 1 and §3.3; v1 ``optimizer/hspg.py``).

Problem: min_x f(x) + lambda sum_g ||x_g||_2 over the zero-invariant groups g (``repro_oto.zig``).
For one ZIG set, write X (n x D) for the concatenated member rows (group k = row k) and G for the
stochastic gradient; with momentum mu and weight decay wd (both 0 in every v1 config):

* ``subgradient`` step (HSPG stage 1, the v1 code's ``sgd_step``): psi = G + wd X + lambda
  X_k / (||X_k|| + 1e-6) (the group-lasso subgradient, 0 on a zero group), B <- mu B + psi,
  X <- X - alpha B.
* ``half_space`` step (stage 2, ``half_space_step``): the same trial point X^ = X - alpha B, then
  the half-space projection: group k is set to 0 if <X^_k, X_k> < eps ||X_k||^2 (its trial point
  left the half-space around X_k) or if X_k is already 0 (zero groups stay fixed).
* ``prox`` step (Prox-SG, the baseline; also the paper's description of stage 1):
  Z = X - alpha B with psi = G + wd X, then the group soft threshold
  X_k <- max(0, 1 - alpha lambda / ||Z_k||) Z_k.

``step_reference`` is that step written plainly for one set (concatenate the member rows, norms,
trial point, mask, split back) — the PyTorch reference of the fused Triton kernel
(``repro_oto.kernels``) and the "unfused" side of its benchmark.

The Trainer's own optimizer can make the same step (``subgradient_`` adds the regulariser's
subgradient to the gradients before ``optimizer.step()``, ``half_space_project_`` /
``group_prox_`` act on the result): with ``torch.optim.SGD`` that is exactly the step above (SGD
adds wd X and keeps B). Over an adaptive optimizer (Adam) the subgradient is not fed through its
per-coordinate normalisation (which would make lambda's pull as large as the loss's, whatever
lambda is); it is applied after the optimizer's step, with its step size (``subgradient_step_``),
and the half-space test / soft threshold act on that trial point — our extension, v1 is SGD only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DELTA = 1e-6  # v1 ``mixed_l1_l2_subgrad_psi``: X_k / (||X_k|| + 1e-6)
MODES = ("subgradient", "half_space", "prox")


def rows(t: torch.Tensor) -> torch.Tensor:
    """*t* as (groups, elements per group), a view (dim 0 is the channel / neuron): writes reach *t*.
    Parameters, gradients and buffers are contiguous (the callers make sure)."""
    return t.view(t.shape[0], -1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise inner products of two (n, d) views in fp32, without a temporary product tensor."""
    return torch.linalg.vecdot(a.float(), b.float(), dim=1)


def sq_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-group squared norm over the member tensors of one set (fp32)."""
    return sum(_dot(rows(t), rows(t)) for t in tensors)


@torch.no_grad()
def subgradient_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lmbda: float) -> None:
    """grads += lambda X_k / (||X_k|| + 1e-6) for every group k of one set (0 on a zero group)."""
    coef = lmbda / (sq_norms(params).sqrt() + DELTA)
    for p, g in zip(params, grads):
        rows(g).add_(rows(p) * coef[:, None].to(p.dtype))


@torch.no_grad()
def subgradient_step_(params: Sequence[torch.Tensor], x_prev: Sequence[torch.Tensor], step: float) -> None:
    """params -= step * X_k / (||X_k|| + 1e-6) with X the iterate before the base optimizer's step: the
    regulariser's subgradient step decoupled from an adaptive optimizer (as AdamW decouples weight decay)."""
    coef = step / (sq_norms(x_prev).sqrt() + DELTA)
    for p, x in zip(params, x_prev):
        rows(p).sub_(rows(x) * coef[:, None].to(p.dtype))


@torch.no_grad()
def half_space_mask(x_hat: Sequence[torch.Tensor], x: Sequence[torch.Tensor], eps: float) -> torch.Tensor:
    """Groups to set to zero: <X^_k, X_k> < eps ||X_k||^2, or X_k = 0."""
    dot = sum(_dot(rows(a), rows(b)) for a, b in zip(x_hat, x))
    xx = sq_norms(x)
    return (dot < eps * xx) | (xx == 0)


@torch.no_grad()
def zero_rows_(tensors: Sequence[torch.Tensor], mask: torch.Tensor) -> None:
    """Rows *mask* of every member set to exactly 0 (only those rows are written)."""
    idx = mask.nonzero().flatten()
    if idx.numel():
        for t in tensors:
            rows(t).index_fill_(0, idx.to(t.device), 0)


@torch.no_grad()
def half_space_project_(x_hat: Sequence[torch.Tensor], x: Sequence[torch.Tensor], eps: float) -> torch.Tensor:
    """Project the trial point *x_hat* (in place) given the previous iterate *x*; returns the zeroed mask."""
    mask = half_space_mask(x_hat, x, eps)
    zero_rows_(x_hat, mask)
    return mask


@torch.no_grad()
def group_prox_(tensors: Sequence[torch.Tensor], threshold: float) -> None:
    """Group soft threshold in place: Z_k <- max(0, 1 - threshold / ||Z_k||) Z_k (0 stays 0)."""
    norm = sq_norms(tensors).sqrt()
    scale = torch.where(norm > 0, (1 - threshold / norm.clamp_min(1e-30)).clamp_min(0), torch.zeros_like(norm))
    for t in tensors:
        rows(t).mul_(scale[:, None].to(t.dtype))


@torch.no_grad()
def step_reference(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                   bufs: Sequence[torch.Tensor] | None, *, mode: str, lr: float, lmbda: float,
                   eps: float = 0.0, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
    """One HSPG / Prox-SG step on one ZIG set, in place (see the module docstring).

    *params* are the member tensors (dim 0 = groups), *grads* their gradients, *bufs* their
    momentum buffers (updated in place; None when ``momentum == 0``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    widths = [rows(p).shape[1] for p in params]
    x = torch.cat([rows(p) for p in params], 1)
    g = torch.cat([rows(t) for t in grads], 1)
    psi = g + weight_decay * x if weight_decay else g.clone()
    xx = (x * x).sum(1)
    if mode != "prox":
        psi += lmbda * x / (xx.sqrt() + DELTA)[:, None]
    if momentum:
        b = torch.cat([rows(t) for t in bufs], 1)
        b = momentum * b + psi
        psi = b
        for t, part in zip(bufs, b.split(widths, 1)):
            rows(t).copy_(part)
    x_hat = x - lr * psi
    if mode == "half_space":
        kill = ((x_hat * x).sum(1) < eps * xx) | (xx == 0)
        x_hat[kill] = 0
    elif mode == "prox":
        zn = x_hat.norm(dim=1)
        scale = torch.where(zn > 0, (1 - lr * lmbda / zn.clamp_min(1e-30)).clamp_min(0), torch.zeros_like(zn))
        x_hat *= scale[:, None]
    for p, part in zip(params, x_hat.split(widths, 1)):
        rows(p).copy_(part)
