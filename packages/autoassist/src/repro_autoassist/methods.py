"""sgd / loss_is / autoassist as methods of the core: ``gradient_descent`` plus one selection hook.

All three run the same ``InstanceShrinking`` hook (``selection`` = all / loss_is / autoassist), so
they share the optimizer, the data order and the instance accounting and differ only in which
instances of each mini-batch are back-propagated.
"""

from __future__ import annotations

from typing import Any

from repro.errors import unknown
from repro.run import RunContext
from repro.trainer import GD_KEYS, gradient_descent, validate_gradient_hparams

from repro_autoassist.configuration_autoassist import AA_KEYS, AutoAssistConfig
from repro_autoassist.shrinking import InstanceShrinking


def _split(hparams: dict[str, Any]) -> tuple[dict[str, Any], AutoAssistConfig]:
    for key in hparams:
        if key not in GD_KEYS and key not in AA_KEYS:
            raise unknown("AutoAssist hyper-parameter", key, sorted(GD_KEYS | AA_KEYS))
    gd = {k: v for k, v in hparams.items() if k in GD_KEYS}
    validate_gradient_hparams(gd)
    return gd, AutoAssistConfig.from_hparams(hparams)


def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
    gd, cfg = _split(hparams)
    gradient_descent(ctx, gd, hooks=[InstanceShrinking(cfg)])


def validate(hparams: dict[str, Any]) -> None:
    _split(hparams)
