"""Sparsify the Linear / Conv2d layers of any model in place, N:M.

``sparsify_model(model, cfg, counter)`` replaces every ``nn.Linear`` and (groups = 1, explicit zero
padding) ``nn.Conv2d`` by an ``NMLinear`` / ``NMConv2d`` that holds *the same* weight and bias
``Parameter`` objects (the optimizer, the ``state_dict`` keys and checkpoints are unchanged).

A layer is N:M sparse when the method is sparse, it is not skipped (``skip_first`` /
``skip_last``) and its GEMM view splits into whole groups: K (in_features, or C_in kh kw) a
multiple of M, and for BDWP also O (out_features / out_channels) a multiple of M. Every other
layer is wrapped as dense, so the MAC counter sees the whole model.

The masks are recomputed from the current dense weights at every forward (SR-STE: "recomputed
every iteration"); evaluation runs the sparse network (W ⊙ M_f) — the model that is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repro_nm_sparse import autograd as ag
from repro_nm_sparse import semi_structured as ss
from repro_nm_sparse.accounting import MacCounter
from repro_nm_sparse.configuration_nm_sparse import NmSparseConfig
from repro_nm_sparse.kernels import nm_masks
from repro_nm_sparse.masks import can_mask, from_2d, weight_2d


@dataclass(frozen=True)
class LayerPlan:
    """What one wrapped layer does."""

    sparse: bool  # N:M masks in the forward pass
    bidirectional: bool  # a separate N:M mask along O in the activation-gradient pass (BDWP)
    semi_structured: str  # the 2:4 backend its sparse GEMMs use ("" = masked dense path)
    lowp: bool  # GEMMs in bf16 (the semi_structured backend, so the dense layers match the sparse ones)


class _NMLayer(nn.Module):
    cfg: NmSparseConfig
    counter: MacCounter
    plan: LayerPlan

    def _setup(self, layer: nn.Module, cfg: NmSparseConfig, counter: MacCounter, plan: LayerPlan) -> None:
        self.weight, self.bias = layer.weight, layer.bias
        self.cfg, self.counter, self.plan = cfg, counter, plan
        self.last_mask: torch.Tensor | None = None  # forward mask of the previous training step (flip rate)

    def _active(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def masks(self, backward: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Boolean forward mask and (if *backward*) the BDWP backward mask, in the weight's shape."""
        w2 = weight_2d(self.weight.detach())
        mf, mb = nm_masks(w2, self.cfg.n, self.cfg.m, backward, self.cfg.mask_kernel)
        shape = self.weight.shape
        return from_2d(mf, shape), (from_2d(mb, shape) if mb is not None else None)

    def _record(self, x: torch.Tensor, rows: int, mask_f: torch.Tensor | None) -> None:
        """MACs of this training step's three GEMMs, and the forward-mask flips since the last step."""
        p = self.plan
        macs = rows * self.weight[0].numel() * self.weight.shape[0]
        nm = (self.cfg.n, self.cfg.m)
        bgrad = None if not x.requires_grad else (nm if p.sparse and p.bidirectional else (1, 1))
        self.counter.add_layer_step(macs, nm if p.sparse else (1, 1), bgrad, p.sparse)
        if mask_f is not None:
            if self.last_mask is not None and self.last_mask.shape == mask_f.shape:
                self.counter.add_flips(int((self.last_mask != mask_f).sum()), mask_f.numel())
            self.last_mask = mask_f  # a fresh tensor every step, never written to


class NMLinear(_NMLayer):
    def __init__(self, layer: nn.Linear, cfg: NmSparseConfig, counter: MacCounter, plan: LayerPlan) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._setup(layer, cfg, counter, plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, active = self.plan, self._active()
        if not p.sparse:
            if active:
                self._record(x, x.numel() // self.in_features, None)
            if p.lowp and active:
                return F.linear(x.to(ss.DTYPE), self.weight.to(ss.DTYPE),
                                None if self.bias is None else self.bias.to(ss.DTYPE)).to(x.dtype)
            return F.linear(x, self.weight, self.bias)
        if not active:  # evaluation: the sparse network
            mf, _ = self.masks(False)
            return F.linear(x, self.weight * mf.to(self.weight.dtype), self.bias)
        # BDWP's backward mask only where the activation gradient is computed (not for the first layer)
        bidir = p.bidirectional and x.requires_grad
        mf, mb = self.masks(bidir)
        self._record(x, x.numel() // self.in_features, mf)
        mb = mb if bidir else mf
        if p.semi_structured:
            return ag.semi_structured_linear(x, self.weight, self.bias, mf, mb, self.cfg.decay, p.semi_structured,
                                             bidir)
        return ag.nm_linear(x, self.weight, self.bias, mf, mb, self.cfg.decay)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {_describe(self.plan, self.cfg)}"


class NMConv2d(_NMLayer):
    def __init__(self, layer: nn.Conv2d, cfg: NmSparseConfig, counter: MacCounter, plan: LayerPlan) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self._setup(layer, cfg, counter, plan)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, active = self.plan, self._active()
        if not p.sparse:
            out = (self._conv(x.to(ss.DTYPE), self.weight.to(ss.DTYPE),
                              None if self.bias is None else self.bias.to(ss.DTYPE)).to(x.dtype)
                   if p.lowp and active else self._conv(x, self.weight, self.bias))
            if active:
                self._record(x, out.shape[0] * out.shape[2] * out.shape[3], None)
            return out
        if not active:
            mf, _ = self.masks(False)
            return self._conv(x, self.weight * mf.to(self.weight.dtype), self.bias)
        bidir = p.bidirectional and x.requires_grad
        mf, mb = self.masks(bidir)
        mb = mb if bidir else mf
        if p.semi_structured:
            out = ag.semi_structured_conv2d(x, self.weight, self.bias, mf, mb, self.cfg.decay, p.semi_structured,
                                            bidir, self.stride, self.padding, self.dilation)
        else:
            out = ag.nm_conv2d(x, self.weight, self.bias, mf, mb, self.cfg.decay, self.stride, self.padding,
                               self.dilation)
        self._record(x, out.shape[0] * out.shape[2] * out.shape[3], mf)
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, {_describe(self.plan, self.cfg)}"


def _describe(plan: LayerPlan, cfg: NmSparseConfig) -> str:
    if not plan.sparse:
        return "dense"
    kind = "bidirectional" if plan.bidirectional else "forward"
    return f"{cfg.n}:{cfg.m} {kind}" + (f", {plan.semi_structured}" if plan.semi_structured else "")


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def plan_layers(model: nn.Module, cfg: NmSparseConfig, device: torch.device | None = None) -> dict[str, LayerPlan]:
    """The plan of every supported layer (named_modules order); nothing is changed."""
    modules = dict(model.named_modules())
    names = [n for n, mod in modules.items() if n and _supported(mod)]
    sparse_method = cfg.sparsity != "dense"
    bidir = cfg.sparsity == "bidirectional"
    skip = set()
    if names and cfg.skip_first:
        skip.add(names[0])
    if names and cfg.skip_last:
        skip.add(names[-1])
    backend = ""
    if cfg.backend == "semi_structured":
        dev = device or next(model.parameters()).device
        st = ss.status(str(dev)) if dev.type == "cuda" else ss.status("cpu")
        backend = st.backend if st.available else ""
    plans = {}
    for name in names:
        w = modules[name].weight
        ok = (sparse_method and name not in skip and can_mask(w, cfg.m, "forward")
              and (not bidir or can_mask(w, cfg.m, "backward")))
        o, k = w.shape[0], w[0].numel()
        semi = backend if ok and backend and ss.shape_ok(o, k, backend) and \
            (not bidir or ss.shape_ok(k, o, backend)) else ""
        plans[name] = LayerPlan(sparse=ok, bidirectional=ok and bidir, semi_structured=semi, lowp=bool(backend))
    return plans


def sparsify_model(model: nn.Module, cfg: NmSparseConfig, counter: MacCounter | None = None,
                   device: torch.device | None = None) -> tuple[nn.Module, dict[str, LayerPlan]]:
    """Wrap every supported layer of *model* in place; returns the model and the per-layer plans."""
    from repro.errors import ReproError

    if is_sparsified(model):
        raise ReproError("model is already sparsified (sparsify_model was called twice)")
    counter = counter if counter is not None else MacCounter()
    plans = plan_layers(model, cfg, device)
    modules = dict(model.named_modules())
    for name, plan in plans.items():
        module = modules[name]
        cls = NMLinear if isinstance(module, nn.Linear) else NMConv2d
        parent, _, attr = name.rpartition(".")
        setattr(modules[parent] if parent else model, attr, cls(module, cfg, counter, plan))
    return model, plans


def is_sparsified(model: nn.Module) -> bool:
    return any(isinstance(m, _NMLayer) for m in model.modules())


def nm_layers(model: nn.Module) -> dict[str, _NMLayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, _NMLayer)}
