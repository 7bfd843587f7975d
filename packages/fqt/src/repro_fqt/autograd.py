"""Quantized linear and conv2d as autograd Functions: forward quantizers (STE) and gradient bifurcation.

Forward (QAT and FQT alike): the layer's input is quantized per tensor to ``abits`` (nearest,
plain min/max), its weight per tensor to ``wbits`` (nearest, zero on a level); a linear layer's
bias to ``biasbits`` (the reference leaves conv biases unquantized). Backward is straight-through
for those quantizers (the gradient of the quantized tensor is used as the tensor's gradient).

Backward of FQT, **gradient bifurcation** (the reference's ``linear_biprec`` / ``conv2d_biprec``):
the output gradient g is quantized twice, independently,

* ``Q_b(g)`` (the gradient quantizer under study: PTQ / PSQ / BHQ at ``bbits``) -> the input gradient
  (g_x = Q_b(g) W for a linear layer), which back-propagates to the layers below;
* ``Q_bw(g)`` (``bwbits``, per tensor for PTQ, per column for PSQ/BHQ) -> the weight and bias
  gradients (g_W = Q_bw(g)^T X, g_b = sum of Q_bw(g)).

The reference gets this with two forward products (``out1 + out2 - out1.detach()``); here one
forward and the two products of the backward. QAT is the same Function with ``GradSpec(None)``:
g is not quantized, so FQT and QAT share their forward bit for bit and differ only in the
backward (the quantity the paper's analysis compares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from repro_fqt import kernels as K


@dataclass
class GradSpec:
    """The backward of a quantized layer; mutable and shared by the layers of one model, so a
    variance probe can switch the quantizer between backward passes of the same forward.

    Attributes:
        scheme: ``ptq`` | ``psq`` | ``bhq``; None: QAT (exact backward).
        bbits: bits of the activation-gradient quantizer.
        bwbits: bits of the weight-gradient quantizer.
        generator: torch generator of the rounding noise (None: torch's global RNG).
    """

    scheme: str | None = None
    bbits: int = 8
    bwbits: int = 8
    generator: torch.Generator | None = None

    @property
    def quantized(self) -> bool:
        return self.scheme is not None

    @property
    def persample(self) -> bool:
        return self.scheme in ("psq", "bhq")


@dataclass(frozen=True)
class ForwardSpec:
    """Bits of the forward quantizers (the reference's ``abits``, ``wbits``, ``biasbits``)."""

    abits: int = 8
    wbits: int = 8
    biasbits: int = 16


def quantize_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, fwd: ForwardSpec,
                     quantize_bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Quantized input (plain min/max), weight and bias (zero on a level), nearest rounding."""
    qx = K.quantize_tensor(x, fwd.abits, stochastic=False, align_zero=False)
    qw = K.quantize_tensor(w, fwd.wbits, stochastic=False, align_zero=True)
    qb = K.quantize_tensor(b, fwd.biasbits, stochastic=False, align_zero=True) if (b is not None and quantize_bias) else b
    return qx, qw, qb


def _split_gradient(g: torch.Tensor, spec: GradSpec, need_x: bool, need_w: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient for the input path, gradient for the weight path): Q_b(g), Q_bw(g) under FQT."""
    if not spec.quantized:
        return g, g
    gen = spec.generator
    gx = K.quantize_gradient(g, spec.scheme, spec.bbits, generator=gen) if need_x else g
    gw = K.quantize_weight_gradient(g, spec.persample, spec.bwbits, generator=gen) if need_w else g
    return gx, gw


class QuantizedLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                fwd: ForwardSpec, spec: GradSpec) -> torch.Tensor:
        qx, qw, qb = quantize_forward(x, weight, bias, fwd, quantize_bias=True)
        ctx.save_for_backward(qx, qw)
        ctx.spec, ctx.has_bias = spec, bias is not None
        return F.linear(qx, qw, qb)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):
        qx, qw = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw = _split_gradient(g, ctx.spec, need_x, need_w or need_b)  # rows: samples (first dim)
        grad_x = gx @ qw if need_x else None
        gw = gw.reshape(-1, gw.shape[-1])
        grad_w = gw.t() @ qx.reshape(-1, qx.shape[-1]) if need_w else None
        grad_b = gw.sum(0) if (need_b and ctx.has_bias) else None
        return grad_x, grad_w, grad_b, None, None


class QuantizedConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                fwd: ForwardSpec, spec: GradSpec, stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int], groups: int) -> torch.Tensor:
        qx, qw, qb = quantize_forward(x, weight, bias, fwd, quantize_bias=False)  # as the reference's QConv2d
        ctx.save_for_backward(qx, qw)
        ctx.spec, ctx.has_bias = spec, bias is not None
        ctx.conv = (stride, padding, dilation, groups)
        return F.conv2d(qx, qw, qb, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):
        qx, qw = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw = _split_gradient(g, ctx.spec, need_x, need_w or need_b)
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = torch.ops.aten.convolution_backward(
                gx, qx, qw, None, stride, padding, dilation, False, (0, 0), groups, (True, False, False))[0]
        if need_w or need_b:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                gw, qx, qw, [qw.shape[0]] if ctx.has_bias else None, stride, padding, dilation, False, (0, 0),
                groups, (False, need_w, need_b and ctx.has_bias))
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def quantized_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     fwd: ForwardSpec = ForwardSpec(), spec: GradSpec | None = None) -> torch.Tensor:
    """A QAT (``spec.scheme`` None) or FQT linear layer."""
    return QuantizedLinearFn.apply(x, weight, bias, fwd, spec or GradSpec())


def quantized_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     fwd: ForwardSpec = ForwardSpec(), spec: GradSpec | None = None, stride=(1, 1), padding=(0, 0),
                     dilation=(1, 1), groups: int = 1) -> torch.Tensor:
    """A QAT (``spec.scheme`` None) or FQT conv2d layer (explicit zero padding)."""
    return QuantizedConv2dFn.apply(x, weight, bias, fwd, spec or GradSpec(), tuple(stride), tuple(padding),
                                   tuple(dilation), groups)
