"""WUS / WUS+LR and their baselines as methods of the core: the core's gradient descent plus one hook.

Every method is ``repro.trainer.gradient_method`` (the one training loop) with the
``WeightUpdateSkipping`` hook; the four differ only in two fixed switches — skipping on/off and
the step learning-rate schedule (the core's) — so each WUS method is compared with a baseline
identical but for skipping.

Evaluations: the WUS methods read the validation accuracy after every epoch to decide when to
skip, so those validation evaluations count as their training time; the baselines decide
nothing from evaluations, so theirs are off the clock.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method

from repro_wus.configuration_wus import WUSConfig
from repro_wus.wus import TriggerState, set_weight_updates, trigger_step


class WeightUpdateSkipping(Hook):
    """Trainer hook: freezes conv/linear weights inside skip windows and runs the trigger.

    With ``cfg.skip = False`` it does nothing (the baselines), so the baselines may train in several
    processes (DDP); skipping freezes parameters mid-run, which DDP cannot follow.
    """

    def __init__(self, cfg: WUSConfig) -> None:
        self.cfg = cfg
        self.decides_on_validation = cfg.skip
        self.distributed = not cfg.skip
        self.trigger = TriggerState()
        self.skipping = False

    def epoch_start(self, state: TrainState) -> None:
        # Applied every epoch (not only at window edges) so a resumed run re-freezes correctly.
        self.skipping = self.cfg.skip and self.trigger.skip_left > 0
        set_weight_updates(state.model, not self.skipping)

    def epoch_end(self, state: TrainState) -> None:
        value = state.last_eval.get(self.cfg.monitor) if state.evaluated else None
        self.trigger = trigger_step(self.trigger, value, state.epoch, self.skipping, self.cfg)
        state.ctx.extra["skipped_epochs"] = float(self.trigger.skipped_epochs)
        state.ctx.extra["skip_windows"] = float(self.trigger.windows)

    def fit_end(self, state: TrainState) -> None:
        set_weight_updates(state.model, True)
        self.skipping = False
        extra = state.ctx.extra
        extra["skipped_epochs"] = float(self.trigger.skipped_epochs)
        extra["skip_windows"] = float(self.trigger.windows)
        extra["skipped_fraction"] = self.trigger.skipped_epochs / max(state.epoch, 1)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self.trigger)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trigger = TriggerState(**state)


def _hooks(ctx: RunContext, cfg: WUSConfig, gd: GradientConfig) -> list[Hook]:
    return [WeightUpdateSkipping(cfg)]


def _method(name: str, description: str, skip: bool, lr: bool) -> Any:
    fixed = {"skip": skip, **({"lr_schedule": "step"} if lr else {})}
    return gradient_method(name, description, config=WUSConfig, hooks=_hooks, fixed=fixed, is_baseline=not skip,
                           distributed=not skip)


METHODS = {
    "baseline": _method("baseline", "SGD with momentum, constant learning rate, no skipping", False, False),
    "wus": _method("wus", "WUS: baseline + weight-update skipping windows when validation accuracy stalls",
                   True, False),
    "baseline_lr": _method("baseline_lr", "SGD with momentum and a step learning-rate schedule, no skipping",
                           False, True),
    "wus_lr": _method("wus_lr", "WUS+LR: baseline_lr + weight-update skipping windows", True, True),
}
