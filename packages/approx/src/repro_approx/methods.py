"""Approximate training as a method of the core: ``gradient_method`` plus one hook.

The hook wraps the workload's model (``approximate_model``) at the start of every epoch if it is
not wrapped yet (so a resumed run is wrapped too; the wrappers keep the same parameters and
state_dict keys), counts MACs, and writes ``macs_saved_fraction`` (and the raw counts) into
``ctx.extra`` at the end of training. ``exact`` is the same code at ratio 1.0, so methods differ
only in their fixed switches: keep ratio, strategy and mode. The learning-rate schedule is the
core's (``lr_schedule``). No method decides anything from evaluations.

Extra hyper-parameters: the ``ApproxTrainConfig`` keys (``ApproxConfig``'s plus ``train_subset``:
train on a fixed subset of this many training samples — the same subset for every method and
seed — to keep smoke trials short).
"""

from __future__ import annotations

from typing import Any

import torch

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method

from repro_approx.configuration_approx import ApproxTrainConfig
from repro_approx.flops import MacCounter
from repro_approx.kernels import check_kernel
from repro_approx.wrap import approximate_model, is_approximated


class ApproxHook(Hook):
    def __init__(self, cfg: ApproxTrainConfig) -> None:
        self.cfg = cfg
        self.counter = MacCounter()

    def epoch_start(self, state: TrainState) -> None:
        if not is_approximated(state.model):
            approximate_model(state.model, self.cfg, self.counter)

    def fit_end(self, state: TrainState) -> None:
        state.ctx.extra.update(macs_saved_fraction=self.counter.saved_fraction,
                               macs_performed=float(self.counter.performed), macs_dense=float(self.counter.dense))

    def state_dict(self) -> dict[str, Any]:
        return {"counter": self.counter.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter.load_state_dict(state["counter"])


def _hooks(ctx: RunContext, cfg: ApproxTrainConfig, gd: GradientConfig) -> list[Hook]:
    check_kernel(cfg.kernel, torch.device(ctx.device))
    if cfg.train_subset is not None:
        ctx.use_train_subset(cfg.train_subset)
    return [ApproxHook(cfg)]


def _m(name: str, description: str, ratio: float, strategy: str = "topk", mode: str = "forward",
       baseline: bool = False) -> Any:
    return gradient_method(name, description, config=ApproxTrainConfig, hooks=_hooks, is_baseline=baseline,
                           fixed={"ratio": ratio, "strategy": strategy, "mode": mode})


METHODS = {
    "exact": _m("exact", "exact products (ratio 1.0): plain SGD through the same wrapper", 1.0, baseline=True),
    "topk70": _m("topk70", "forward sampling, top-k column-row pairs, keep ratio 0.7", 0.7),
    "topk50": _m("topk50", "forward sampling, top-k column-row pairs, keep ratio 0.5", 0.5),
    "topk30": _m("topk30", "forward sampling, top-k column-row pairs, keep ratio 0.3", 0.3),
    "bern50": _m("bern50", "forward sampling, Bernoulli-CRS (unbiased, 1/p scaling), keep ratio 0.5", 0.5,
                 "bernoulli"),
    "bwd50": _m("bwd50", "backward sampling (exact forward; dX samples output channels, dW batch rows), "
                         "Bernoulli-CRS, keep ratio 0.5", 0.5, "bernoulli", "backward"),
}
