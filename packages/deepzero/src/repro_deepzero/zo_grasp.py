"""ZO-GraSP pruning at initialisation -> layer-wise pruning ratios -> random sparse CGE masks.

DeepZero §4 / the official ``algorithm/prune/importance_scores.py:zoo_grasp_importance_score``:
on a class-balanced batch (25 samples per class), with RGE over the conv/linear weights only,

    g0 = RGE(θ),   g1 = RGE(θ + μ g0),   Hg = (g1 − g0) / μ,   score = −θ ⊙ Hg

(q = 192 directions per estimate, μ = 5e-3). The official RGE normalises each direction per
tensor and returns μ times the usual estimate (``perturb = μ u / ||u||`` is both the step and the
multiplier); we keep that convention here. Global magnitude pruning of |score| at the target
sparsity (the official ``prune.global_unstructured(L1Unstructured)``) then fixes the pruned
fraction of each layer — the layer-wise pruning ratios (LPR). Training draws, every few epochs,
a uniformly random mask per layer with exactly that many pruned coordinates (the official
``layer_wise_random``: ``prune.random_unstructured``) and estimates the gradient by CGE on the
unpruned weights plus every bias / batch-norm parameter ("sparse gradient, dense model").

**A quirk of the official code** (measured, ``tests/golden``): its loss ``f()`` restores the
network from ``network.state_dict()``, whose tensors share storage with the parameters, so the
restore is a no-op and the network keeps each query's weights. Inside ``rge(params=live
weights)`` the queries therefore accumulate (query j is evaluated at θ + μ Σ_{k≤j} u_k), θ + μ g0
starts from the drifted weights, and the score multiplies the weights left by the last query.
``official_quirks=True`` reproduces this exactly (the golden test checks it against the
official function); the default computes the algorithm as written in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from repro.errors import ReproError

from repro_deepzero.engine import Program, directional_losses, rge
from repro_deepzero.estimators import reference_directions


def class_balanced_sample(y: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of up to *per_class* random samples of every class of *y* (sorted)."""
    order = torch.randperm(len(y), generator=generator).to(y.device)
    picked = []
    for c in torch.unique(y):
        members = order[y[order] == c]
        picked.append(members[:per_class])
    return torch.cat(picked).sort().values


@torch.no_grad()
def zo_grasp_scores(prog: Program, x: torch.Tensor, y: torch.Tensor, q: int, mu: float,
                    generator: torch.Generator, official_quirks: bool = False,
                    directions: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
                    budget_elements: int = 1 << 24) -> tuple[dict[str, torch.Tensor], int]:
    """−θ ⊙ Hg per conv/linear weight (see the module docstring) and the number of queries (2 + 2q).

    *directions*: the two sets of (q, *shape) unit-per-tensor directions (default: drawn from
    *generator* in the official order, ``estimators.reference_directions``)."""
    names = prog.weight_names
    theta = {n: prog.params[n].detach() for n in names}
    shapes = {n: tuple(theta[n].shape) for n in names}
    dev, dt = x.device, next(iter(theta.values())).dtype
    if directions is None:
        u0 = reference_directions(shapes, q, generator, dev, dt)
        u1 = reference_directions(shapes, q, generator, dev, dt)
    else:
        u0, u1 = ({n: d[n].to(dev, dt) for n in names} for d in directions)
        q = next(iter(u0.values())).shape[0]
    all_params = {n: p.detach() for n, p in prog.params.items()}
    base0 = prog.loss(prog.base(x, all_params).logits, y)[0]
    if official_quirks:  # queries accumulate: the k-th is evaluated at θ + μ Σ_{j<=k} u_j
        points = {n: theta[n].unsqueeze(0) + mu * torch.cumsum(u0[n], 0) for n in names}
        dd = (directional_losses(prog, x, y, points, budget_elements, all_params) - base0) / mu
        g0 = {n: mu * torch.einsum("q,q...->...", dd, u0[n]) / q for n in names}
        start = {n: points[n][-1] for n in names}  # the weights the last query left behind
    else:
        g0, _ = rge(prog, x, y, u0, mu, budget_elements, all_params, base0)
        g0 = {n: mu * g for n, g in g0.items()}
        start = theta
    moved = {n: start[n] + mu * g0[n] for n in names}
    params1 = {**all_params, **moved}
    g1, _ = rge(prog, x, y, u1, mu, budget_elements, params1)
    g1 = {n: mu * g for n, g in g1.items()}
    final = {n: moved[n] + mu * u1[n][-1] for n in names} if official_quirks else theta
    scores = {n: -final[n] * (g1[n] - g0[n]) / mu for n in names}
    return scores, 2 * (1 + q)


def layer_sparsities(scores: Mapping[str, torch.Tensor], sparsity: float) -> dict[str, float]:
    """Pruned fraction per layer after global magnitude pruning of |score| at *sparsity*
    (round(sparsity · N) smallest |score| over all N weights are pruned, as torch's
    ``global_unstructured(L1Unstructured)``)."""
    if not 0 <= sparsity < 1:
        raise ReproError(f"sparsity must be in [0, 1), got {sparsity}")
    names = list(scores)
    flat = torch.cat([scores[n].abs().flatten().float() for n in names])
    k = round(sparsity * flat.numel())
    pruned = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k:
        pruned[torch.topk(flat, k, largest=False).indices] = True
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = float(pruned[start:start + size].sum()) / size
        start += size
    return out


def uniform_sparsities(sizes: Mapping[str, int], sparsity: float) -> dict[str, float]:
    """The same pruned fraction in every layer (the ablation without ZO-GraSP)."""
    return {n: float(sparsity) for n in sizes}


def active_counts(sizes: Mapping[str, int], sparsities: Mapping[str, float]) -> dict[str, int]:
    """Unpruned coordinates per layer: n − round(s · n) (torch prune's count rule)."""
    return {n: sizes[n] - round(sparsities[n] * sizes[n]) for n in sizes}


def random_masks(sizes: Mapping[str, int], sparsities: Mapping[str, float],
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per layer, the sorted flat indices of a uniformly random set of exactly
    ``active_counts`` coordinates (a fresh draw of the official ``layer_wise_random`` masks)."""
    counts = active_counts(sizes, sparsities)
    return {n: torch.randperm(sizes[n], generator=generator)[:counts[n]].sort().values for n in sizes}
