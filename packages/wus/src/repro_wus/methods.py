"""WUS / WUS+LR and their baselines as methods of the core: the core's gradient descent plus one hook.

Every method is ``repro.trainer.gradient_descent`` (the one training loop) with a
``WeightUpdateSkipping`` hook; the four differ only in two switches — skipping on/off and the
learning-rate schedule — so each WUS method is compared with a baseline identical but for skipping.
"""

from __future__ import annotations

from typing import Any

from repro.errors import unknown
from repro.run import RunContext
from repro.trainer import GD_KEYS, gradient_descent, validate_gradient_hparams

from repro_wus.configuration_wus import WUS_KEYS, WUSConfig
from repro_wus.wus import WeightUpdateSkipping


def _split(hparams: dict[str, Any]) -> tuple[dict[str, Any], WUSConfig]:
    for key in hparams:
        if key not in GD_KEYS and key not in WUS_KEYS:
            raise unknown("WUS hyper-parameter", key, sorted(GD_KEYS | WUS_KEYS))
    gd = {k: v for k, v in hparams.items() if k in GD_KEYS}
    validate_gradient_hparams(gd)
    return gd, WUSConfig.from_hparams(hparams)


def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
    """Train with the core's gradient descent; the hook applies the lr schedule and, if on, skipping."""
    gd, cfg = _split(hparams)
    epochs = int(gd.get("epochs", ctx.workload.max_epochs))
    hook = WeightUpdateSkipping(cfg, base_lr=float(gd.get("lr", 1e-3)), total_epochs=epochs)
    gradient_descent(ctx, gd, hooks=[hook])


def validate(hparams: dict[str, Any]) -> None:
    _split(hparams)
