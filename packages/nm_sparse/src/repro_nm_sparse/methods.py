"""N:M sparse training as methods of the core: ``gradient_method`` plus one hook.

The hook wraps the workload's model (``wrap.sparsify_model``) at the start of every epoch if it is
not wrapped yet (so a resumed run is wrapped too; the wrappers keep the same parameters and
state_dict keys), and at the end writes the MAC accounting (``accounting.MacCounter``: per pass,
total, sparse layers), the mask flip rate and the 2:4-path use into ``ctx.extra``. No method
decides anything from evaluations, so every evaluation is off the training clock.

The four methods differ only in fixed switches:

* ``dense``  — the baseline: every layer dense, through the same wrappers (bit-identical to the
  plain layers; tested).
* ``ste``    — forward W ⊙ M_f, straight-through gradient to the dense W (λ_w fixed to 0).
* ``srste``  — SR-STE: ``ste`` + λ_w (1 − M_f) ⊙ W in the weight gradient (λ_w tunable, 2e-4).
* ``bdwp``   — BDWP: forward W ⊙ M_f, activation gradient through W ⊙ M_b (N:M along the output
  dimension), weight gradient dense (+ the SR-STE term; λ_w tunable, 2e-4).

N:M (``n``, ``m``; default 2:8) is a tunable hyper-parameter of every sparse method.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.paper import NotApplicable
from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

from repro_nm_sparse import semi_structured as ss
from repro_nm_sparse.accounting import MacCounter, ideal_ratio
from repro_nm_sparse.configuration_nm_sparse import NmSparseConfig
from repro_nm_sparse.wrap import is_sparsified, nm_layers, plan_layers, sparsify_model

DEFAULT_PATTERN = {"n": 2, "m": 8}  # the BDWP abstract's setting; SR-STE's 2:8 row


class NMSparseHook(Hook):
    def __init__(self, cfg: NmSparseConfig) -> None:
        self.cfg = cfg
        self.counter = MacCounter()
        self.plans: dict[str, Any] = {}
        self._pending_masks: dict[str, torch.Tensor] = {}
        self._model: torch.nn.Module | None = None

    def epoch_start(self, state: TrainState) -> None:
        self._model = state.model
        if not is_sparsified(state.model):
            _, self.plans = sparsify_model(state.model, self.cfg, self.counter, state.ctx.device)
            for name, layer in nm_layers(state.model).items():  # a resumed run continues the flip count
                if name in self._pending_masks:
                    layer.last_mask = self._pending_masks[name].to(state.ctx.device)
            self._pending_masks = {}

    def fit_end(self, state: TrainState) -> None:
        cfg, plans = self.cfg, self.plans
        sparse = [p for p in plans.values() if p.sparse]
        extra = state.ctx.extra
        extra.update(self.counter.summary())
        extra.update(
            n_sparse_layers=float(len(sparse)), n_layers=float(len(plans)),
            macs_ratio_ideal=ideal_ratio(cfg.n, cfg.m, bool(sparse), cfg.sparsity == "bidirectional" and bool(sparse)),
            semi_structured_used=(sum(bool(p.semi_structured) for p in sparse) / len(sparse)) if sparse else 0.0,
        )
        if cfg.backend == "semi_structured":
            extra["semi_structured_available"] = float(ss.status(str(state.ctx.device)).available)

    def state_dict(self) -> dict[str, Any]:
        masks = {}
        if self._model is not None:
            masks = {n: layer.last_mask for n, layer in nm_layers(self._model).items() if layer.last_mask is not None}
        return {"counter": self.counter.state_dict(), "last_masks": masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter.load_state_dict(state["counter"])
        self._pending_masks = dict(state.get("last_masks", {}))


def _hooks(ctx: RunContext, cfg: NmSparseConfig, gd: GradientConfig) -> list[Hook]:
    if cfg.train_subset is not None:
        ctx.use_train_subset(cfg.train_subset)
    return [NMSparseHook(cfg)]


def _on_workload(sparsity: str):
    """Setup on a shared workload: the method's default N:M (2:8), if any layer of the workload's
    model can be N:M sparsified; ``NotApplicable`` otherwise (e.g. a 1-10-1 regression MLP)."""
    def setup(workload: Workload) -> dict[str, Any]:
        if sparsity == "dense":
            return {}
        cfg = NmSparseConfig(sparsity=sparsity, **DEFAULT_PATTERN)
        plans = plan_layers(workload.build_model(), cfg, torch.device("cpu"))
        if not any(p.sparse for p in plans.values()):
            raise NotApplicable(f"no Linear/Conv2d layer of {workload.model!r} (classifier left dense) has sizes "
                                f"that are multiples of M={cfg.m}, so nothing would be N:M sparse")
        return dict(DEFAULT_PATTERN)
    return setup


def _m(name: str, description: str, fixed: dict[str, Any], baseline: bool = False) -> Any:
    return gradient_method(name, description, config=NmSparseConfig, hooks=_hooks, fixed=fixed, is_baseline=baseline,
                           on_workload=_on_workload(fixed["sparsity"]))


METHODS = {
    "dense": _m("dense", "dense training through the same wrappers (the baseline)", {"sparsity": "dense"}, True),
    "ste": _m("ste", "N:M forward weights, plain straight-through gradient to the dense weights (λ_w = 0)",
              {"sparsity": "forward", "decay": 0.0}),
    "srste": _m("srste", "SR-STE: N:M forward weights, straight-through gradient + λ_w (1 − M) ⊙ W",
                {"sparsity": "forward"}),
    "bdwp": _m("bdwp", "BDWP: N:M weights in the forward pass (along the input dimension) and in the "
                       "activation-gradient pass (a separate mask along the output dimension); dense weight "
                       "gradient and master weights (+ the SR-STE term)", {"sparsity": "bidirectional"}),
}
