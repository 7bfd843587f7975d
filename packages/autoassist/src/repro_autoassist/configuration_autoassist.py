"""Hyper-parameters of AutoAssist and its baselines, validated (bad value -> ReproError naming the key).

Defaults follow the reference code (zhangjiong724/autoassist-exp, ``image_classification``):
base_prob b = 0.3, EMA factor 0.75, assistant lr 0.01 (per batch), L2 1e-3, target "mean".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from repro.errors import ReproError, unknown

SELECTIONS = ("all", "loss_is", "autoassist")
MODES = ("sync", "async")


@dataclass(frozen=True)
class AutoAssistConfig:
    """How the batch stream is shrunk.

    Attributes:
        selection: "all" (plain SGD: every instance is back-propagated), "loss_is" (baseline:
            a no-grad forward of the Boss scores the batch, instance i is kept with probability
            b + (1 − b)·ℓ_i / max_j ℓ_j), "autoassist" (kept with b + (1 − b)·σ(wᵀx_i + u_{y_i})).
        base_prob: b, the floor on the acceptance probability, in [0, 1].
        mode: "sync" (the Assistant is updated in the Boss's thread right after each step:
            deterministic) or "async" (a background thread trains it from a queue of the Boss's
            reported losses; the Boss never waits).
        assistant_lr: SGD step size of the Assistant (logistic regression), per batch.
        assistant_l2: L2 penalty λ of the Assistant.
        ema: α of the exponential moving average of the loss (the Assistant's target threshold).
        queue_size: async only: reports the Boss may have in flight; when full, a report is
            dropped (counted) instead of blocking the Boss.
        assistant_seed_offset: the acceptance coin flips use their own generator seeded with
            ``ctx.seed + offset`` (so selection does not perturb the Trainer's shuffling stream).
    """

    selection: str = "autoassist"
    base_prob: float = 0.3
    mode: str = "sync"
    assistant_lr: float = 0.01
    assistant_l2: float = 1e-3
    ema: float = 0.75
    queue_size: int = 16
    assistant_seed_offset: int = 1_000_003

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise unknown("selection (AutoAssist hyper-parameter 'selection')", self.selection, SELECTIONS)
        if self.mode not in MODES:
            raise unknown("mode (AutoAssist hyper-parameter 'mode')", self.mode, MODES)
        _number(self, "base_prob")
        if not 0.0 <= self.base_prob <= 1.0:
            raise ReproError(f"AutoAssist hyper-parameter 'base_prob' (b) must be in [0, 1], got {self.base_prob!r}")
        for key in ("assistant_lr", "assistant_l2"):
            if _number(self, key) < 0:
                raise ReproError(f"AutoAssist hyper-parameter {key!r} must be >= 0, got {getattr(self, key)!r}")
        if not 0.0 <= _number(self, "ema") < 1.0:
            raise ReproError(f"AutoAssist hyper-parameter 'ema' must be in [0, 1), got {self.ema!r}")
        for key in ("queue_size", "assistant_seed_offset"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "queue_size" else 0):
                raise ReproError(f"AutoAssist hyper-parameter {key!r} must be an integer "
                                 f">= {1 if key == 'queue_size' else 0}, got {v!r}")

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "AutoAssistConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in hparams.items() if k in names})


def _number(cfg: AutoAssistConfig, key: str) -> float:
    v = getattr(cfg, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ReproError(f"AutoAssist hyper-parameter {key!r} must be a finite number, got {v!r}")
    return float(v)


AA_KEYS = frozenset(f.name for f in fields(AutoAssistConfig))
