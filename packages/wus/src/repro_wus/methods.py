"""WUS / WUS+LR and their baselines as methods of the core: the core's gradient descent plus one hook.

Every method is ``repro.trainer.gradient_descent`` (the one training loop) with a
``WeightUpdateSkipping`` hook; the four differ only in two switches — skipping on/off and the
learning-rate schedule — so each WUS method is compared with a baseline identical but for skipping.
"""

from __future__ import annotations

from typing import Any

from repro.run import RunContext
from repro.trainer import gradient_descent, split_gradient_hparams

from repro_wus.configuration_wus import WUS_KEYS, WUSConfig
from repro_wus.wus import WeightUpdateSkipping


def _split(hparams: dict[str, Any]) -> tuple[dict[str, Any], WUSConfig]:
    gd = split_gradient_hparams(hparams, WUS_KEYS, "WUS")
    return gd, WUSConfig.from_hparams(hparams)


def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
    """Train with the core's gradient descent; the hook applies the lr schedule and, if on, skipping."""
    gd, cfg = _split(hparams)
    epochs = int(gd.get("epochs", ctx.workload.max_epochs))
    hook = WeightUpdateSkipping(cfg, base_lr=float(gd.get("lr", 1e-3)), total_epochs=epochs)
    gradient_descent(ctx, gd, hooks=[hook])


def validate(hparams: dict[str, Any]) -> None:
    _split(hparams)
