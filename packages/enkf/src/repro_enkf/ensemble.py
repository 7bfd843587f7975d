"""Ensembles of MLP parameter vectors and their batched evaluation.

An ensemble is stored as a single tensor ``theta`` of shape ``(Ne, P)``: one row per
member, each row the flattened parameters of a fully connected network with layer
sizes ``sizes`` (e.g. ``[1, 10, 1]``).  The flattening order is the one used by
``torch.nn.utils.parameters_to_vector`` on
``nn.Sequential(nn.Linear, act, nn.Linear, ...)``: ``w0, b0, w1, b1, ...`` with each
weight stored ``(out, in)`` row-major, so any member can be loaded into such a model
with ``torch.nn.utils.vector_to_parameters`` and vice versa.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_BIAS_STD",
    "ensemble_forward",
    "ensemble_forward_reference",
    "init_ensemble",
    "layer_shapes",
    "num_params",
    "unflatten_parameters",
]

#: Hidden-layer nonlinearities understood by the forward functions.  The output layer
#: is always the identity (regression outputs, as in the paper).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
}

#: Standard deviation of the initial bias spread when ``init_ensemble(std=None)``.
DEFAULT_BIAS_STD = 0.1


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least an input and an output size, got {sizes!r}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"sizes must be positive integers, got {sizes!r}")
    return sizes


def _activation(activation: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        ) from None


def layer_shapes(sizes: Sequence[int]) -> list[tuple[tuple[int, int], tuple[int]]]:
    """Weight and bias shapes of each layer of an MLP with layer sizes ``sizes``.

    Weights are ``(out, in)`` like ``torch.nn.Linear.weight``; biases are ``(out,)``.

    >>> layer_shapes([1, 10, 1])
    [((10, 1), (10,)), ((1, 10), (1,))]
    """
    sizes = _check_sizes(sizes)
    return [((n_out, n_in), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def num_params(sizes: Sequence[int]) -> int:
    """Total number of parameters ``P`` of the MLP (weights and biases)."""
    return sum(o * i + o for (o, i), _ in layer_shapes(sizes))


def unflatten_parameters(theta: Tensor, sizes: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Split an ensemble ``theta`` of shape ``(Ne, P)`` into per-layer views.

    Returns a list with, per layer, ``(W, b)`` of shapes ``(Ne, out, in)`` and
    ``(Ne, out)``.  These are views (no copy) whenever ``theta`` is contiguous in its
    last dimension.
    """
    shapes = layer_shapes(sizes)
    if theta.dim() != 2:
        raise ValueError(f"theta must have shape (Ne, P), got shape {tuple(theta.shape)}")
    n_params = num_params(sizes)
    if theta.shape[1] != n_params:
        raise ValueError(
            f"theta has {theta.shape[1]} parameters per member but sizes {list(sizes)} "
            f"need {n_params}"
        )
    ne = theta.shape[0]
    layers = []
    offset = 0
    for (n_out, n_in), _ in shapes:
        w = theta[:, offset : offset + n_out * n_in].reshape(ne, n_out, n_in)
        offset += n_out * n_in
        b = theta[:, offset : offset + n_out]
        offset += n_out
        layers.append((w, b))
    return layers


def init_ensemble(
    sizes: Sequence[int],
    ensemble_size: int,
    generator: torch.Generator | None = None,
    std: float | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw an initial ensemble of MLP parameter vectors, shape ``(Ne, P)``.

    The initial ensemble is the prior of the data-assimilation problem, so its spread
    matters: it spans the subspace the ES-MDA/EnKF updates can move in.

    * ``std=None`` (default): weights of each layer ~ N(0, 1/fan_in) (LeCun-normal, so
      pre-activations start with unit variance and tanh units are neither saturated
      nor linear), biases ~ N(0, ``DEFAULT_BIAS_STD``**2) (small, zero mean, but
      non-zero so the biases also have ensemble spread and can be updated).
    * ``std=s``: every parameter ~ N(0, s**2).

    Samples are drawn on the generator's device (CPU when ``generator`` is None) and
    then moved to ``device``, so a seeded CPU generator gives the same ensemble on any
    device.
    """
    shapes = layer_shapes(sizes)
    if isinstance(ensemble_size, bool) or not isinstance(ensemble_size, int) or ensemble_size < 1:
        raise ValueError(f"ensemble_size must be a positive integer, got {ensemble_size!r}")
    if std is not None and not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite non-negative number or None, got {std!r}")
    gen_device = generator.device if generator is not None else torch.device("cpu")

    blocks = []
    for (n_out, n_in), _ in shapes:
        w_std = 1.0 / math.sqrt(n_in) if std is None else std
        b_std = DEFAULT_BIAS_STD if std is None else std
        w = torch.randn(ensemble_size, n_out * n_in, generator=generator, device=gen_device)
        b = torch.randn(ensemble_size, n_out, generator=generator, device=gen_device)
        blocks += [w * w_std, b * b_std]
    return torch.cat(blocks, dim=1).to(device=device, dtype=dtype)


def _check_inputs(x: Tensor, sizes: Sequence[int]) -> None:
    if x.dim() != 2 or x.shape[1] != sizes[0]:
        raise ValueError(
            f"x must have shape (N, {sizes[0]}) for sizes {list(sizes)}, got shape {tuple(x.shape)}"
        )


def ensemble_forward(
    theta: Tensor, x: Tensor, sizes: Sequence[int], activation: str = "tanh"
) -> Tensor:
    """Evaluate every ensemble member on the inputs ``x`` in one batched computation.

    Args:
        theta: ensemble of flattened parameters, ``(Ne, P)``.
        x: inputs shared by all members, ``(N, sizes[0])``.
        sizes: layer sizes of the MLP.
        activation: hidden-layer nonlinearity, one of ``ACTIVATIONS``; the output
            layer is linear.

    Returns:
        Outputs of shape ``(Ne, N, sizes[-1])``.

    Each layer is a single ``baddbmm`` over the member dimension: ``h <- b + h @ W^T``
    with ``h`` ``(Ne, N, in)``, ``W`` ``(Ne, out, in)``; no Python loop over members.
    """
    act = _activation(activation)
    layers = unflatten_parameters(theta, sizes)
    _check_inputs(x, sizes)
    ne = theta.shape[0]
    # expand() is free (stride 0): the first bmm reads the shared inputs for every member.
    h = x.to(theta.dtype).unsqueeze(0).expand(ne, -1, -1)
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        # (Ne, 1, out) bias broadcasts over the N samples.
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < last:
            h = act(h)
    return h


def ensemble_forward_reference(
    theta: Tensor, x: Tensor, sizes: Sequence[int], activation: str = "tanh"
) -> Tensor:
    """Per-member loop equivalent of :func:`ensemble_forward` (for tests/benchmarks).

    Same arguments and result ``(Ne, N, sizes[-1])``.
    """
    act = _activation(activation)
    layers = unflatten_parameters(theta, sizes)
    _check_inputs(x, sizes)
    x = x.to(theta.dtype)
    last = len(layers) - 1
    outputs = []
    for j in range(theta.shape[0]):
        h = x
        for i, (w, b) in enumerate(layers):
            h = F.linear(h, w[j], b[j])
            if i < last:
                h = act(h)
        outputs.append(h)
    return torch.stack(outputs)
