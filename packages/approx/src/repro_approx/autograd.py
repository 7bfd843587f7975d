"""Sampled linear and conv2d as autograd functions.

``mode`` (see ``ApproxConfig``):

* forward: Y = (X[:, idx] * s) W[:, idx]^T — sample input features/channels by
  ||X[:, i]|| ||W[:, i]||; backprop only through the kept pairs (the gradients of the dropped
  input columns and weight columns are zero).
* backward: exact forward. dX = dY W approximated by sampling *output* features/channels
  (scores ||dY[:, o]|| ||W[o]||); dW = dY^T X approximated by sampling *batch rows* (scores
  ||dY[b]|| ||X[b]||).
* both: forward sampling, and the two backward products of the kept pairs sampled as above.

Every product records its performed and dense MACs in a ``MacCounter``. Ratio 1.0 never
reaches these functions (the wrapper calls the plain ``F.linear`` / ``F.conv2d``).

An empty kept set (Bernoulli-CRS can keep no pair) gives the empty sum, exactly zero, on every
path: the forward output is the bias alone, the gradient of a product sampled to nothing is zero
(and costs no MACs); the bias gradient stays exact. ``F.conv2d`` / ``conv2d_input`` /
``conv2d_weight`` cannot take zero channels or zero batch rows, so the conv paths build those
zeros themselves.

Kernels (``ApproxConfig.kernel``, chosen by ``kernels.triton_path``): on CUDA the linear layers'
sampled products — the forward product and, where the mode samples them, the two backward
products — run the fused Triton sampled GEMM (``kernels.sampled_gemm``: the kept columns/rows are
gathered inside the kernel's K loop) and their scores the fused norm kernel
(``kernels.pair_scores``); on CPU, and with ``kernel="reference"``, the PyTorch reference
(``index_select`` copies + matmul). The selection itself (``sampling.select``) is the same code on
both paths, so both keep the same pairs. Under autocast the Triton path casts the two operands to
the autocast dtype, as ``matmul`` would. Sampled convolutions are cuDNN convolutions of the kept
channels on every path (the package has no Triton convolution).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from repro_approx import kernels
from repro_approx.configuration_approx import ApproxConfig
from repro_approx.flops import MacCounter
from repro_approx.sampling import num_kept, select


def _norms(t: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norm of every slice of *t* along *dim* (over all other dims; 0 for empty slices)."""
    return torch.linalg.vector_norm(t.transpose(0, dim).flatten(1), dim=1)


def _conv_out_shape(x_shape: torch.Size, w_shape: torch.Size, stride: tuple[int, int], padding: tuple[int, int],
                    dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """Output shape of ``F.conv2d(x, w)`` (groups = 1), also when no input channel is kept."""
    hw = [(x_shape[2 + d] + 2 * padding[d] - dilation[d] * (w_shape[2 + d] - 1) - 1) // stride[d] + 1 for d in (0, 1)]
    return x_shape[0], w_shape[0], hw[0], hw[1]


def _pick(scores: torch.Tensor, cfg: ApproxConfig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(idx, scale) or None when k = n (exact)."""
    n = scores.numel()
    k = num_kept(n, cfg.ratio, cfg.minimal_k)
    if k >= n:
        return None
    return select(scores, k, cfg.strategy, cfg.eps)


def _autocast_state(t: torch.Tensor) -> tuple[str, bool, torch.dtype]:
    """The forward's autocast state on *t*'s device, to re-enter in backward (autograd runs a
    Function's backward with autocast off; the matmuls must compute in the forward's dtype)."""
    dev = t.device.type
    return dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev)


def _operands(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) in the dtype ``A @ B`` would compute in: the autocast dtype where autocast is on."""
    if torch.is_autocast_enabled(a.device.type):
        dtype = torch.get_autocast_dtype(a.device.type)
        return a.to(dtype), b.to(dtype)
    return a, b


def _scores(a: torch.Tensor, b: torch.Tensor, cfg: ApproxConfig) -> torch.Tensor:
    """||A[:, i]|| ||B[i, :]|| for the product A B: the fused kernel on the Triton path."""
    if kernels.triton_path(cfg.kernel, a, b):
        return kernels.pair_scores(a, b)
    return _norms(a, 1) * _norms(b, 0)


def _sampled(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor, scale: torch.Tensor,
             cfg: ApproxConfig) -> torch.Tensor:
    """sum_j scale_j A[:, idx_j] B[idx_j, :]: the fused Triton sampled GEMM on the Triton path, the
    reference (gather copies + matmul) otherwise; zeros for an empty *idx* (the empty sum)."""
    a, b = _operands(a, b)
    if kernels.triton_path(cfg.kernel, a, b):
        return kernels.sampled_gemm(a, b, idx, scale)
    return kernels.sampled_gemm_reference(a, b, idx, scale)


def _mm(a: torch.Tensor, b: torch.Tensor, sample: bool, cfg: ApproxConfig, counter: MacCounter,
        full: int) -> torch.Tensor:
    """A @ B, sampled over the shared dimension when *sample*; MACs recorded against the dense
    product of the full layer (*full*: the layer's MACs for this product without any sampling)."""
    dense = full
    if not sample or a.numel() == 0 or b.numel() == 0:  # nothing to sample (e.g. no forward pair kept)
        counter.add(a.shape[0] * a.shape[1] * b.shape[1], dense)
        return a @ b
    pick = _pick(_scores(a, b, cfg), cfg)
    if pick is None:
        counter.add(a.shape[0] * a.shape[1] * b.shape[1], dense)
        return a @ b
    idx, scale = pick
    counter.add(a.shape[0] * idx.numel() * b.shape[1], dense)
    return _sampled(a, b, idx, scale, cfg)


class ApproxLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                cfg: ApproxConfig, counter: MacCounter) -> torch.Tensor:
        n, n_in = x.shape
        n_out = weight.shape[0]
        idx = scale = None
        if cfg.mode in ("forward", "both"):
            pick = _pick(_scores(x, weight.t(), cfg), cfg)
            if pick is not None:
                idx, scale = pick
        if idx is None:
            out = x @ weight.t()
            counter.add(n * n_in * n_out, n * n_in * n_out)
        else:  # the kept pairs only; the gathered copies the backward needs are made there
            out = _sampled(x, weight.t(), idx, scale, cfg)
            counter.add(n * idx.numel() * n_out, n * n_in * n_out)
        if bias is not None:
            out = out + bias
        ctx.cfg, ctx.counter, ctx.has_bias = cfg, counter, bias is not None
        ctx.autocast = _autocast_state(x)
        ctx.save_for_backward(x, weight, idx if idx is not None else torch.empty(0, dtype=torch.long),
                              scale if scale is not None else torch.empty(0))
        ctx.sampled = idx is not None
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        dev, enabled, dtype = ctx.autocast
        with torch.autocast(dev, dtype=dtype, enabled=enabled):
            return ApproxLinearFunction._backward(ctx, g)

    @staticmethod
    def _backward(ctx: Any, g: torch.Tensor):
        x, weight, idx, scale = ctx.saved_tensors
        cfg, counter = ctx.cfg, ctx.counter
        bwd = cfg.mode in ("backward", "both")
        if ctx.sampled:
            xs = x.index_select(1, idx) * scale.to(x.dtype)
            ws = weight.index_select(1, idx)
        else:
            xs, ws = x, weight
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx_eff = _mm(g, ws, bwd, cfg, counter, x.numel() * weight.shape[0])  # (N, k): sample output features
            if ctx.sampled:
                gx = torch.zeros_like(x).index_add_(1, idx, (gx_eff * scale.to(gx_eff.dtype)).to(x.dtype))
            else:
                gx = gx_eff
        if ctx.needs_input_grad[1]:
            gw_eff = _mm(g.t(), xs, bwd, cfg, counter, x.numel() * weight.shape[0])  # (out, k): sample batch rows
            gw = torch.zeros_like(weight).index_add_(1, idx, gw_eff.to(weight.dtype)) if ctx.sampled else gw_eff
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None, None


class ApproxConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                cfg: ApproxConfig, counter: MacCounter, stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int]) -> torch.Tensor:
        idx = scale = None
        if cfg.mode in ("forward", "both"):
            pick = _pick(_norms(x, 1) * _norms(weight, 1), cfg)  # input channels
            if pick is not None:
                idx, scale = pick
        if idx is None:
            xs, ws = x, weight
        else:
            xs = x.index_select(1, idx) * scale.to(x.dtype).view(1, -1, 1, 1)
            ws = weight.index_select(1, idx)
        if xs.shape[1] == 0:  # no input channel kept: F.conv2d would return zero *output* channels
            out = x.new_zeros(_conv_out_shape(x.shape, weight.shape, stride, padding, dilation))
            if bias is not None:
                out = out + bias.view(1, -1, 1, 1)
        else:
            out = F.conv2d(xs, ws, bias, stride, padding, dilation)
        per_in = out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3] * weight.shape[2] * weight.shape[3]
        counter.add(per_in * xs.shape[1], per_in * x.shape[1])
        ctx.cfg, ctx.counter, ctx.has_bias = cfg, counter, bias is not None
        ctx.conv = (stride, padding, dilation)
        ctx.autocast = _autocast_state(x)
        ctx.sampled = idx is not None
        ctx.save_for_backward(x, weight, xs, ws, idx if idx is not None else torch.empty(0, dtype=torch.long),
                              scale if scale is not None else torch.empty(0))
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        dev, enabled, dtype = ctx.autocast
        with torch.autocast(dev, dtype=dtype, enabled=enabled):
            return ApproxConv2dFunction._backward(ctx, g)

    @staticmethod
    def _backward(ctx: Any, g: torch.Tensor):
        x, weight, xs, ws, idx, scale = ctx.saved_tensors
        cfg, counter = ctx.cfg, ctx.counter
        stride, padding, dilation = ctx.conv
        bwd = cfg.mode in ("backward", "both")
        khw = ws.shape[2] * ws.shape[3]
        gx = gw = gb = None
        dense = g.numel() * x.shape[1] * khw  # N*Hout*Wout*Cout*Cin*kh*kw: the unsampled layer
        done = g.numel() * ws.shape[1] * khw  # with the kept input channels only
        per_out = g.shape[0] * g.shape[2] * g.shape[3] * ws.shape[1] * khw  # MACs per kept output channel
        per_row = g[0].numel() * ws.shape[1] * khw if g.shape[0] else 0  # MACs per kept batch row
        empty = ws.shape[1] == 0 or g.numel() == 0  # no input channel kept in forward: nothing to compute
        if ctx.needs_input_grad[0]:
            pick = _pick(_norms(g, 1) * _norms(ws, 0), cfg) if bwd and not empty else None  # output channels
            if empty:
                gx_eff = xs.new_zeros(xs.shape)
                counter.add(0, dense)
            elif pick is None:
                gx_eff = conv2d_input(xs.shape, ws, g, stride, padding, dilation)
                counter.add(done, dense)
            else:
                o, s = pick
                if o.numel() == 0:  # no output channel kept: the empty sum
                    gx_eff = xs.new_zeros(xs.shape)
                else:
                    gx_eff = conv2d_input(xs.shape, ws.index_select(0, o) * s.to(ws.dtype).view(-1, 1, 1, 1),
                                          g.index_select(1, o), stride, padding, dilation)
                counter.add(per_out * o.numel(), dense)
            if ctx.sampled:
                gx = torch.zeros_like(x).index_add_(1, idx, (gx_eff * scale.to(gx_eff.dtype).view(1, -1, 1, 1)
                                                             ).to(x.dtype))
            else:
                gx = gx_eff
        if ctx.needs_input_grad[1]:
            pick = _pick(_norms(g, 0) * _norms(xs, 0), cfg) if bwd and not empty else None  # batch rows
            if empty:
                gw_eff = ws.new_zeros(ws.shape)
                counter.add(0, dense)
            elif pick is None:
                gw_eff = conv2d_weight(xs, ws.shape, g, stride, padding, dilation)
                counter.add(done, dense)
            else:
                b, s = pick
                if b.numel() == 0:  # no batch row kept: the empty sum
                    gw_eff = ws.new_zeros(ws.shape)
                else:
                    gw_eff = conv2d_weight(xs.index_select(0, b) * s.to(xs.dtype).view(-1, 1, 1, 1), ws.shape,
                                           g.index_select(0, b), stride, padding, dilation)
                counter.add(per_row * b.numel(), dense)
            gw = torch.zeros_like(weight).index_add_(1, idx, gw_eff.to(weight.dtype)) if ctx.sampled else gw_eff
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


def approx_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cfg: ApproxConfig,
                  counter: MacCounter | None = None) -> torch.Tensor:
    """Sampled ``F.linear`` for inputs of any leading shape."""
    counter = counter if counter is not None else MacCounter()
    lead = x.shape[:-1]
    out = ApproxLinearFunction.apply(x.reshape(-1, x.shape[-1]), weight, bias, cfg, counter)
    return out.reshape(*lead, weight.shape[0])


def approx_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cfg: ApproxConfig,
                  counter: MacCounter | None = None, stride: tuple[int, int] = (1, 1),
                  padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Sampled ``F.conv2d`` (groups=1, zero padding)."""
    counter = counter if counter is not None else MacCounter()
    return ApproxConv2dFunction.apply(x, weight, bias, cfg, counter, tuple(stride), tuple(padding), tuple(dilation))
