"""N:M sparse Linear / Conv2d products with the three GEMMs written out.

Every sparse method shares one autograd function per layer type; the masks say what it is:

* forward      Y  = X (W ⊙ M_f)ᵀ (+ b)
* act. grad.   dX = dY (W ⊙ M_b)         STE / SR-STE: M_b = M_f (what autograd through W ⊙ M_f
                                          gives, as the official SR-STE code); BDWP: M_b = the N:M
                                          mask along the output dimension (a separate mask)
* weight grad. dW = dYᵀ X + λ_w (1 − M_f) ⊙ W   dense (straight-through); λ_w = 0 is plain STE

Two implementations: the *masked* one (dense GEMMs on masked weights, any device, fp32: the
reference and the CPU path) and the *semi-structured* one (CUDA: bf16 2:4 sparse GEMMs through
``torch.sparse`` for the forward and — for BDWP — the activation gradient; see
``semi_structured.py``). Conv2d runs the masked path through cuDNN / the CPU convolution; the
semi-structured conv is an explicit im2col (``F.unfold``, NHWC reduction order, matching the
mask's grouping) + sparse GEMM + ``F.fold`` for the input gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from repro_nm_sparse import semi_structured as ss
from repro_nm_sparse.masks import from_2d, srste_gradient, weight_2d


def _pair(v: Any) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [int(v), int(v)]


class NMLinearFunction(torch.autograd.Function):
    """Masked-dense N:M Linear (see the module docstring); ``mask_b is mask_f`` for STE / SR-STE."""

    @staticmethod
    def forward(ctx, x, weight, bias, mask_f, mask_b, decay):  # type: ignore[override]
        ctx.save_for_backward(x, weight, mask_f, mask_b)
        ctx.decay = float(decay)
        ctx.has_bias = bias is not None
        return F.linear(x, weight * mask_f, bias)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, weight, mask_f, mask_b = ctx.saved_tensors
        gx = gw = gb = None
        gy2 = gy.reshape(-1, gy.shape[-1])
        if ctx.needs_input_grad[0]:
            gx = gy.matmul(weight * mask_b)
        if ctx.needs_input_grad[1]:
            gw = srste_gradient(gy2.t().mm(x.reshape(-1, x.shape[-1])), weight, mask_f, ctx.decay)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy2.sum(0)
        return gx, gw, gb, None, None, None


class NMConv2dFunction(torch.autograd.Function):
    """Masked-dense N:M Conv2d (groups = 1): cuDNN / CPU convolutions on W ⊙ M_f and W ⊙ M_b."""

    @staticmethod
    def forward(ctx, x, weight, bias, mask_f, mask_b, decay, stride, padding, dilation):  # type: ignore[override]
        ctx.save_for_backward(x, weight, mask_f, mask_b)
        ctx.decay = float(decay)
        ctx.has_bias = bias is not None
        ctx.same_mask = mask_b is mask_f
        ctx.conv = (_pair(stride), _pair(padding), _pair(dilation))
        return F.conv2d(x, weight * mask_f, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        x, weight, mask_f, mask_b = ctx.saved_tensors
        stride, padding, dilation = ctx.conv
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None

        def conv_bwd(w, mask3):
            return torch.ops.aten.convolution_backward(gy, x, w, bias_sizes, stride, padding, dilation, False,
                                                       [0, 0], 1, mask3)

        if ctx.same_mask:  # one call, exactly what autograd through conv2d(x, W ⊙ M_f) computes
            gx, gw, gb = conv_bwd(weight * mask_f, [need_x, need_w, need_b])
        else:  # BDWP: the input gradient through W ⊙ M_b, the weight gradient dense
            gx = conv_bwd(weight * mask_b, [need_x, False, False])[0] if need_x else None
            _, gw, gb = conv_bwd(weight, [False, need_w, need_b])
        if need_w:
            gw = srste_gradient(gw, weight, mask_f, ctx.decay)
        return (gx if need_x else None, gw if need_w else None, gb if need_b else None,
                None, None, None, None, None, None)


def nm_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask_f: torch.Tensor,
              mask_b: torch.Tensor, decay: float) -> torch.Tensor:
    """Masked-dense N:M linear layer (keep masks in the weight's shape, 0/1 in its dtype — boolean
    ones are cast; ``mask_b is mask_f`` for STE / SR-STE)."""
    mf, mb = _float_masks(mask_f, mask_b, weight.dtype)
    return NMLinearFunction.apply(x, weight, bias, mf, mb, decay)


def nm_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask_f: torch.Tensor,
              mask_b: torch.Tensor, decay: float, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> torch.Tensor:
    """Masked-dense N:M conv2d (groups = 1, explicit zero padding; masks as in :func:`nm_linear`)."""
    mf, mb = _float_masks(mask_f, mask_b, weight.dtype)
    return NMConv2dFunction.apply(x, weight, bias, mf, mb, decay, stride, padding, dilation)


def _float_masks(mask_f: torch.Tensor, mask_b: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 masks in the weight's dtype (CPU kernels mixing float and bool are slow), keeping
    "M_b is M_f" visible to the backward (one convolution call)."""
    mf = mask_f.to(dtype) if mask_f.dtype == torch.bool else mask_f
    if mask_b is mask_f:
        return mf, mf
    return mf, (mask_b.to(dtype) if mask_b.dtype == torch.bool else mask_b)


# ---- 2:4 semi-structured (CUDA) ------------------------------------------------------------------

class SemiStructuredGemmFunction(torch.autograd.Function):
    """Y2 = X2 (W2 ⊙ M_f)ᵀ on 2:4 sparse tensor cores (bf16); backward: dX2 on the compressed
    (W2 ⊙ M_b)ᵀ when ``sparse_bgrad`` (BDWP), else a dense bf16 GEMM with W2 ⊙ M_f; dW2 dense.

    X2: R x K, W2: O x K (the GEMM view), masks in the O x K view; returns R x O in X2's dtype.
    """

    @staticmethod
    def forward(ctx, x2, w2, mask_f, mask_b, decay, backend, sparse_bgrad):  # type: ignore[override]
        xl = x2.to(ss.DTYPE)
        ws = ss.compress(w2 * mask_f, backend)
        y = ss.sparse_linear(xl, ws)
        ctx.save_for_backward(xl, w2, mask_f, mask_b)
        ctx.decay, ctx.backend, ctx.sparse_bgrad, ctx.out_dtype = float(decay), backend, sparse_bgrad, x2.dtype
        return y.to(x2.dtype)

    @staticmethod
    def backward(ctx, gy2):  # type: ignore[override]
        xl, w2, mask_f, mask_b = ctx.saved_tensors
        gl = gy2.to(ss.DTYPE)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            if ctx.sparse_bgrad:  # dX2 = dY2 (W2 ⊙ M_b) = F.linear(dY2, ((W2 ⊙ M_b)ᵀ) compressed along O)
                gx = ss.sparse_linear(gl, ss.compress((w2 * mask_b).t(), ctx.backend))
            else:
                gx = gl.mm((w2 * mask_b).to(ss.DTYPE))
            gx = gx.to(ctx.out_dtype)
        if ctx.needs_input_grad[1]:
            gw = srste_gradient(gl.t().mm(xl).to(w2.dtype), w2, mask_f.bool(), ctx.decay)
        return gx, gw, None, None, None, None, None


def semi_structured_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask_f: torch.Tensor,
                           mask_b: torch.Tensor, decay: float, backend: str, sparse_bgrad: bool) -> torch.Tensor:
    lead = x.shape[:-1]
    y2 = SemiStructuredGemmFunction.apply(x.reshape(-1, x.shape[-1]), weight, mask_f.to(weight.dtype),
                                          mask_b.to(weight.dtype), decay, backend, sparse_bgrad)
    y = y2.reshape(*lead, weight.shape[0])
    return y + bias if bias is not None else y


def _unfold_nhwc(x: torch.Tensor, k: tuple[int, int], stride: Any, padding: Any, dilation: Any) -> torch.Tensor:
    """im2col rows in the NHWC reduction order (kh, kw, C) of ``masks.weight_2d``: (B L) x (kh kw C)."""
    b, c = x.shape[:2]
    cols = F.unfold(x, k, dilation=dilation, padding=padding, stride=stride)  # B x (C kh kw) x L
    l_out = cols.shape[-1]
    return cols.reshape(b, c, k[0] * k[1], l_out).permute(0, 3, 2, 1).reshape(b * l_out, k[0] * k[1] * c)


class _FoldNHWC(torch.autograd.Function):
    """Differentiable NHWC im2col whose backward is ``F.fold`` (the input-gradient scatter)."""

    @staticmethod
    def forward(ctx, x, k, stride, padding, dilation):  # type: ignore[override]
        ctx.meta = (x.shape, k, stride, padding, dilation)
        return _unfold_nhwc(x, k, stride, padding, dilation)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        shape, k, stride, padding, dilation = ctx.meta
        b, c, h, w = shape
        l_out = g.shape[0] // b
        cols = g.reshape(b, l_out, k[0] * k[1], c).permute(0, 3, 2, 1).reshape(b, c * k[0] * k[1], l_out)
        return F.fold(cols, (h, w), k, dilation=dilation, padding=padding, stride=stride), None, None, None, None


def semi_structured_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask_f: torch.Tensor,
                           mask_b: torch.Tensor, decay: float, backend: str, sparse_bgrad: bool,
                           stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> torch.Tensor:
    """im2col (NHWC order) + 2:4 sparse GEMM; the output back in NCHW."""
    o, c, kh, kw = weight.shape
    b, _, h, w = x.shape
    st, pa, di = _pair(stride), _pair(padding), _pair(dilation)
    ho = (h + 2 * pa[0] - di[0] * (kh - 1) - 1) // st[0] + 1
    wo = (w + 2 * pa[1] - di[1] * (kw - 1) - 1) // st[1] + 1
    x2 = _FoldNHWC.apply(x, (kh, kw), st, pa, di)
    w2 = _Weight2D.apply(weight)
    y2 = SemiStructuredGemmFunction.apply(x2, w2, weight_2d(mask_f.to(weight.dtype)).contiguous(),
                                          weight_2d(mask_b.to(weight.dtype)).contiguous(), decay, backend, sparse_bgrad)
    y = y2.reshape(b, ho, wo, o).permute(0, 3, 1, 2)
    return y + bias.reshape(1, -1, 1, 1) if bias is not None else y


class _Weight2D(torch.autograd.Function):
    """The NHWC GEMM view of a conv weight as a contiguous O x K tensor, gradient mapped back."""

    @staticmethod
    def forward(ctx, weight):  # type: ignore[override]
        ctx.shape = weight.shape
        return weight_2d(weight).contiguous()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return from_2d(g, ctx.shape).contiguous()
