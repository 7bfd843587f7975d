"""The slim network: remove every zero group, count FLOPs and parameters, check the outputs agree.

``export_slim(model, partition)`` returns a deep copy of *model* whose conv / linear / batch-norm
layers are really smaller (new weight tensors, updated ``out_channels`` / ``in_features`` / ...):
for every prunable ZIG set the channels whose group is entirely zero are dropped from its
producers (rows), its batch norms (gamma, beta, running mean and variance) and its consumers
(input columns; ``factor`` columns per channel after a flatten). The model's own ``forward`` runs
unchanged on the smaller layers. A set whose groups are all zero keeps one (zero) channel, so no
layer becomes empty; its output is the same zeros either way.

FLOPs are counted as the v1 code does (``utils/flops.py``): multiply-accumulates of conv and
linear layers for one input sample, in * out * k_h * k_w * output area / groups for a conv and
in * out for a linear layer; parameters are all ``nn.Parameter`` elements.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from repro_oto.zig import ZigPartition, group_sq_norms


def keep_masks(model: nn.Module, partition: ZigPartition) -> dict[int, torch.Tensor]:
    """Per prunable set index: the boolean mask of groups that are not entirely zero (at least one kept)."""
    out = {}
    for s in partition.prunable_sets:
        keep = group_sq_norms(s.members(model)) != 0
        if not bool(keep.any()):
            keep = keep.clone()
            keep[0] = True
        out[s.index] = keep.cpu()
    return out


def _slice_param(module: nn.Module, name: str, idx: torch.Tensor, dim: int) -> None:
    t = getattr(module, name, None)
    if t is None:
        return
    new = t.detach().index_select(dim, idx.to(t.device)).clone()
    if isinstance(t, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        setattr(module, name, new)  # a registered buffer is replaced in place of the old one


def export_slim(model: nn.Module, partition: ZigPartition,
                masks: dict[int, torch.Tensor] | None = None) -> nn.Module:
    """A deep copy of *model* without its zero groups (see the module docstring).

    *masks* (per prunable set index, the groups to keep) overrides ``keep_masks(model, partition)``;
    the tests use it to show that removing a group that is not zero changes the output.
    """
    slim = copy.deepcopy(model)
    masks = keep_masks(model, partition) if masks is None else masks
    for s in partition.prunable_sets:
        keep = masks[s.index]
        if bool(keep.all()):
            continue
        idx = keep.nonzero().flatten()
        for name in s.producers:
            m = slim.get_submodule(name)
            _slice_param(m, "weight", idx, 0)
            _slice_param(m, "bias", idx, 0)
            if isinstance(m, nn.Conv2d):
                m.out_channels = len(idx)
            else:
                m.out_features = len(idx)
        for name in s.norms:
            m = slim.get_submodule(name)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                _slice_param(m, attr, idx, 0)
            m.num_features = len(idx)
        for c in s.consumers:
            m = slim.get_submodule(c.module)
            cols = (idx[:, None] * c.factor + torch.arange(c.factor)[None, :]).flatten()
            _slice_param(m, "weight", cols, 1)
            if isinstance(m, nn.Conv2d):
                m.in_channels = len(idx)
            else:
                m.in_features = len(cols)
    return slim


def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Conv + linear multiply-accumulates of *model* per input sample (the v1 ``utils/flops.py`` count)."""
    total = 0

    def conv_hook(m: nn.Conv2d, inputs, out: torch.Tensor) -> None:
        nonlocal total
        area = out.shape[-1] * out.shape[-2]
        total += m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * area // m.groups

    def linear_hook(m: nn.Linear, inputs, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features * (out.numel() // (out.shape[0] * out.shape[-1]))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def max_abs_diff(full: nn.Module, slim: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> float:
    """max |full(x) - slim(x)| over every sample and output, both in eval mode (the exactness check)."""
    modes = (full.training, slim.training)
    full.eval()
    slim.eval()
    worst = 0.0
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            worst = max(worst, float((full(xb) - slim(xb)).abs().max()))
    finally:
        full.train(modes[0])
        slim.train(modes[1])
    return worst


def slim_report(model: nn.Module, partition: ZigPartition, x: torch.Tensor,
                score: Callable[[nn.Module], dict[str, float]] | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Export the slim model and measure it against *model* on inputs *x* (e.g. the test split).

    Returns the slim model and: zero / total groups, group sparsity, FLOPs and parameters of both
    models and the fractions remaining, the largest output difference, and (``score``) the slim
    model's metrics prefixed ``slim_``.
    """
    slim = export_slim(model, partition)
    zero = total = 0
    for members in partition.grouped_parameters(model):
        sq = group_sq_norms(members)
        zero += int((sq == 0).sum())
        total += sq.numel()
    flops_full, flops_slim = count_macs(model, x), count_macs(slim, x)
    params_full, params_slim = count_params(model), count_params(slim)
    out = {
        "zero_groups": float(zero), "total_groups": float(total),
        "group_sparsity": zero / total if total else 0.0,
        "flops_full": float(flops_full), "flops_slim": float(flops_slim),
        "flops_remaining": flops_slim / flops_full if flops_full else 1.0,
        "params_full": float(params_full), "params_slim": float(params_slim),
        "params_remaining": params_slim / params_full if params_full else 1.0,
        "slim_max_abs_diff": max_abs_diff(model, slim, x),
    }
    if score is not None:
        out.update({f"slim_{k}": v for k, v in score(slim).items()})
    return slim, out
