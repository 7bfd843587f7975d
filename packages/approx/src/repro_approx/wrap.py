"""Approximate a chosen set of layers of any model, in place.

``approximate_model(model, cfg)`` replaces each chosen ``nn.Linear`` / ``nn.Conv2d`` by an
``ApproxLinear`` / ``ApproxConv2d`` that holds *the same* weight and bias ``Parameter`` objects
(so the optimizer, the ``state_dict`` keys and checkpoints are unchanged). The wrappers sample only
in training mode with gradients enabled; evaluation runs the exact layer (as in the paper). Every
Linear/Conv2d not chosen is wrapped too, as exact (ratio 1), so that the MAC counter sees the
whole model. Grouped / non-zero-padded / string-padded convs and every other layer type cannot be
approximated: naming one in ``cfg.layers`` raises ``ReproError`` naming the layer.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError

from repro_approx.autograd import approx_conv2d, approx_linear
from repro_approx.configuration_approx import ApproxConfig
from repro_approx.flops import MacCounter

EXACT = ApproxConfig(ratio=1.0)


class _Approx(nn.Module):
    cfg: ApproxConfig
    counter: MacCounter

    def _active(self) -> bool:
        return self.training and torch.is_grad_enabled()


class ApproxLinear(_Approx):
    def __init__(self, layer: nn.Linear, cfg: ApproxConfig, counter: MacCounter) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.weight, self.bias = layer.weight, layer.bias
        self.cfg, self.counter = cfg, counter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._active():
            return F.linear(x, self.weight, self.bias)
        if self.cfg.exact:
            dense = x.numel() // x.shape[-1] * self.in_features * self.out_features
            self.counter.add(*(2 * [dense * (1 + self.weight.requires_grad + x.requires_grad)]))
            return F.linear(x, self.weight, self.bias)
        return approx_linear(x, self.weight, self.bias, self.cfg, self.counter)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.cfg}"


class ApproxConv2d(_Approx):
    def __init__(self, layer: nn.Conv2d, cfg: ApproxConfig, counter: MacCounter) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.weight, self.bias = layer.weight, layer.bias
        self.cfg, self.counter = cfg, counter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._active():
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        if self.cfg.exact:
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
            dense = out.numel() * self.in_channels * self.weight.shape[2] * self.weight.shape[3]
            self.counter.add(*(2 * [dense * (1 + self.weight.requires_grad + x.requires_grad)]))
            return out
        return approx_conv2d(x, self.weight, self.bias, self.cfg, self.counter, self.stride, self.padding,
                             self.dilation)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, {self.cfg}"


def _unsupported(name: str, module: nn.Module) -> str | None:
    """Why *module* cannot be approximated, or None."""
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return f"grouped convolution (groups={module.groups})"
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return f"padding {module.padding!r} / padding_mode {module.padding_mode!r} (only explicit zero padding)"
        return None
    return f"type {type(module).__name__} (only nn.Linear and nn.Conv2d)"


def _check_minimal_k(name: str, module: nn.Module, cfg: ApproxConfig) -> None:
    dims = {}
    n_in = module.in_features if isinstance(module, nn.Linear) else module.in_channels
    n_out = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    if cfg.mode in ("forward", "both"):
        dims["input features/channels"] = n_in
    if cfg.mode in ("backward", "both"):
        dims["output features/channels"] = n_out
    for what, n in dims.items():
        if cfg.minimal_k > n:
            raise ReproError(f"layer {name!r}: minimal_k={cfg.minimal_k} is larger than its {what} ({n})")


def approximate_model(model: nn.Module, cfg: ApproxConfig, counter: MacCounter | None = None
                      ) -> tuple[nn.Module, list[str]]:
    """Wrap *model*'s layers in place; returns the model and the names of the approximated layers."""
    counter = counter if counter is not None else MacCounter()
    modules = dict(model.named_modules())
    if any(isinstance(m, _Approx) for m in modules.values()):
        raise ReproError("model is already approximated (approximate_model was called twice)")
    candidates = [n for n, m in modules.items() if n and isinstance(m, (nn.Linear, nn.Conv2d))]
    if cfg.layers:
        for name in cfg.layers:
            if name not in modules or name == "":
                raise ReproError(f"layer {name!r} is not a module of the model; layers: {', '.join(candidates)}")
            why = _unsupported(name, modules[name])
            if why:
                raise ReproError(f"layer {name!r} cannot be approximated: {why}")
        chosen = list(cfg.layers)
    else:
        chosen = [n for n in candidates if _unsupported(n, modules[n]) is None]
        if cfg.skip_first and candidates and candidates[0] in chosen:
            chosen.remove(candidates[0])
    if not cfg.exact:
        for name in chosen:
            _check_minimal_k(name, modules[name], cfg)
    wrapped = []
    for name in candidates:
        module = modules[name]
        if _unsupported(name, module):
            continue  # left as is (exact, not counted)
        layer_cfg = cfg if name in chosen else EXACT
        layer_cfg = replace(layer_cfg, layers=())
        cls = ApproxLinear if isinstance(module, nn.Linear) else ApproxConv2d
        parent_name, _, attr = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, attr, cls(module, layer_cfg, counter))
        if name in chosen and not cfg.exact:
            wrapped.append(name)
    return model, wrapped


def is_approximated(model: nn.Module) -> bool:
    return any(isinstance(m, _Approx) for m in model.modules())
