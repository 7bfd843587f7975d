"""Quantize the linear and conv layers of any model, in place.

``quantize_model(model, fwd, spec)`` replaces every ``nn.Linear`` and ``nn.Conv2d`` (with explicit
zero padding) by a ``QLinear`` / ``QConv2d`` holding *the same* weight and bias ``Parameter``
objects, so the optimizer, the ``state_dict`` keys and checkpoints are unchanged. All layers share
one ``GradSpec``: switching its scheme switches the backward of the whole model (QAT <-> FQT), which
is what the variance probe does between backward passes. The quantized forward runs in training
and in evaluation alike (a quantized model is evaluated quantized, as in the reference). As in the
reference every conv/linear is quantized, the first and the last included; batch norm is not (the
reference's ``QBatchNorm2D`` quantizes its input but normalises the unquantized one).
"""

from __future__ import annotations

import torch
from torch import nn

from repro_fqt.autograd import ForwardSpec, GradSpec, quantized_conv2d, quantized_linear


class QLinear(nn.Module):
    def __init__(self, layer: nn.Linear, fwd: ForwardSpec, spec: GradSpec) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.weight, self.bias = layer.weight, layer.bias
        self.fwd, self.spec = fwd, spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantized_linear(x, self.weight, self.bias, self.fwd, self.spec)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.fwd}, {self.spec.scheme or 'qat'}"


class QConv2d(nn.Module):
    def __init__(self, layer: nn.Conv2d, fwd: ForwardSpec, spec: GradSpec) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.stride, self.padding, self.dilation, self.groups = layer.stride, layer.padding, layer.dilation, layer.groups
        self.weight, self.bias = layer.weight, layer.bias
        self.fwd, self.spec = fwd, spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantized_conv2d(x, self.weight, self.bias, self.fwd, self.spec, self.stride, self.padding,
                                self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, {self.fwd}, {self.spec.scheme or 'qat'}"


QUANTIZED = (QLinear, QConv2d)


def quantizable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def quantize_model(model: nn.Module, fwd: ForwardSpec, spec: GradSpec) -> list[str]:
    """Wrap every quantizable layer of *model* in place; returns the wrapped layers' names."""
    if is_quantized(model):
        raise ValueError("model is already quantized (quantize_model was called twice)")
    names = [n for n, m in model.named_modules() if n and quantizable(m)]
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        parent_name, _, attr = name.rpartition(".")
        cls = QLinear if isinstance(module, nn.Linear) else QConv2d
        setattr(modules[parent_name] if parent_name else model, attr, cls(module, fwd, spec))
    return names


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QUANTIZED) for m in model.modules())


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANTIZED)}
