"""sgd / loss_is / autoassist as methods of the core: ``gradient_descent`` plus one selection hook.

All three run the same ``InstanceShrinking`` hook (``selection`` = all / loss_is / autoassist), so
they share the optimizer, the data order and the instance accounting and differ only in which
instances of each mini-batch are back-propagated.
"""

from __future__ import annotations

from typing import Any

from repro.run import RunContext
from repro.trainer import gradient_descent, split_gradient_hparams

from repro_autoassist.configuration_autoassist import AA_KEYS, AutoAssistConfig
from repro_autoassist.shrinking import InstanceShrinking


def _split(hparams: dict[str, Any]) -> tuple[dict[str, Any], AutoAssistConfig]:
    gd = split_gradient_hparams(hparams, AA_KEYS, "AutoAssist")
    return gd, AutoAssistConfig.from_hparams(hparams)


def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
    gd, cfg = _split(hparams)
    gradient_descent(ctx, gd, hooks=[InstanceShrinking(cfg)])


def validate(hparams: dict[str, Any]) -> None:
    _split(hparams)
