"""Approximate training as a method of the core: ``gradient_descent`` plus one hook.

The hook wraps the workload's model (``approximate_model``) at the start of every epoch if it is
not wrapped yet (so a resumed run is wrapped too; the wrappers keep the same parameters and
state_dict keys), applies an optional cosine learning-rate schedule, counts MACs, and writes
``macs_saved_fraction`` (and the raw counts) into ``ctx.extra`` at the end of training. ``exact``
is the same code at ratio 1.0, so methods differ only in the sampling.

Extra hyper-parameters: the ``ApproxConfig`` keys (ratio, minimal_k, strategy, mode, eps,
skip_first, layers), ``train_subset`` (train on a fixed subset of this many training samples —
the same subset for every method and seed — to keep smoke trials short) and ``lr_schedule``
("none" | "cosine").
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from repro.errors import ReproError, unknown
from repro.run import RunContext
from repro.trainer import Hook, TrainState, gradient_descent, split_gradient_hparams

from repro_approx.configuration_approx import APPROX_KEYS, ApproxConfig
from repro_approx.flops import MacCounter
from repro_approx.wrap import approximate_model, is_approximated

EXTRA_KEYS = {"train_subset", "lr_schedule"}
LR_SCHEDULES = ("none", "cosine")


class ApproxHook(Hook):
    def __init__(self, cfg: ApproxConfig, base_lr: float, total_epochs: int, lr_schedule: str = "none") -> None:
        self.cfg, self.base_lr, self.total_epochs, self.lr_schedule = cfg, base_lr, total_epochs, lr_schedule
        self.counter = MacCounter()

    def epoch_start(self, state: TrainState) -> None:
        if not is_approximated(state.model):
            approximate_model(state.model, self.cfg, self.counter)
        if self.lr_schedule == "cosine":
            lr = 0.5 * self.base_lr * (1 + math.cos(math.pi * state.epoch / self.total_epochs))
            for group in state.optimizer.param_groups:
                group["lr"] = lr

    def fit_end(self, state: TrainState) -> None:
        state.ctx.extra.update(macs_saved_fraction=self.counter.saved_fraction,
                               macs_performed=float(self.counter.performed), macs_dense=float(self.counter.dense))

    def state_dict(self) -> dict[str, Any]:
        return {"counter": self.counter.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter.load_state_dict(state["counter"])


def _split(hparams: dict[str, Any]) -> tuple[dict[str, Any], ApproxConfig, dict[str, Any]]:
    gd = split_gradient_hparams(hparams, APPROX_KEYS | EXTRA_KEYS, "approx")
    extra = {k: hparams[k] for k in EXTRA_KEYS if k in hparams}
    sub = extra.get("train_subset")
    if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub < 1):
        raise ReproError(f"approx hyper-parameter 'train_subset' must be an integer >= 1, got {sub!r}")
    if extra.get("lr_schedule", "none") not in LR_SCHEDULES:
        raise unknown("approx hyper-parameter 'lr_schedule'", extra["lr_schedule"], LR_SCHEDULES)
    return gd, ApproxConfig.from_hparams(hparams), extra


def subset(ctx: RunContext, n: int) -> None:
    """Restrict ``ctx.data``'s training split to a fixed subset of *n* samples (seed-independent)."""
    total = len(ctx.data.x_train)
    if n >= total:
        return
    keep = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values.to(ctx.device)
    ctx.data = dataclasses.replace(ctx.data, x_train=ctx.data.x_train[keep], y_train=ctx.data.y_train[keep])


def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
    gd, cfg, extra = _split(hparams)
    if "train_subset" in extra:
        subset(ctx, int(extra["train_subset"]))
    epochs = int(gd.get("epochs", ctx.workload.max_epochs))
    hook = ApproxHook(cfg, float(gd.get("lr", 1e-3)), epochs, extra.get("lr_schedule", "none"))
    gradient_descent(ctx, gd, hooks=[hook])


def validate(hparams: dict[str, Any]) -> None:
    _split(hparams)
