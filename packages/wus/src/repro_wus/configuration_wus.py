"""Hyper-parameters of Weight Update Skipping (WUS) and its learning-rate schedule, validated.

The paper (arXiv 2012.02792) has no public code and its method section gives no numbers we
could verify; every default below is ours and is listed in the package README ("Choices").
Accuracies are fractions in [0, 1] (0.005 = half a percentage point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from repro.errors import ReproError, unknown

LR_SCHEDULES = ("none", "step", "cosine")


@dataclass(frozen=True)
class WUSConfig:
    """When to skip weight updates, for how long, and the learning-rate schedule.

    Attributes:
        skip: False = never skip (the baselines run the same hook with skipping off, so the
            comparison isolates skipping).
        monitor: the evaluated metric whose epoch-to-epoch change drives the trigger
            (a key of the evaluation row, default the workload's test accuracy).
        threshold: τ. An epoch is "calm" when |Δ monitor| < τ (absolute, fraction; 0.005 = 0.5 pp).
        patience: P. Consecutive calm epochs of full training needed to open a skip window.
        window: W. Epochs in a skip window: conv/linear weights frozen, biases and norm-layer
            affine parameters keep training.
        warmup: no window opens before this many epochs of full training (early accuracy jumps
            around; freezing a random network is useless).
        lr_schedule: "none" (constant lr), "step" (× ``lr_gamma`` every ``lr_step`` epochs) or
            "cosine" (cosine decay from lr to 0 over the run's epochs).
        lr_step: epochs between step decays ("step" only).
        lr_gamma: multiplicative decay per step ("step" only), in (0, 1].
    """

    skip: bool = True
    monitor: str = "test_accuracy"
    threshold: float = 0.005
    patience: int = 2
    window: int = 3
    warmup: int = 3
    lr_schedule: str = "none"
    lr_step: int = 10
    lr_gamma: float = 0.1

    def __post_init__(self) -> None:
        for key in ("threshold", "lr_gamma"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ReproError(f"WUS hyper-parameter {key!r} must be a finite number >= 0, got {v!r}")
        if not 0 < self.lr_gamma <= 1:
            raise ReproError(f"WUS hyper-parameter 'lr_gamma' must be in (0, 1], got {self.lr_gamma!r}")
        for key in ("patience", "window", "lr_step"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ReproError(f"WUS hyper-parameter {key!r} must be an integer >= 1, got {v!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ReproError(f"WUS hyper-parameter 'warmup' must be an integer >= 0, got {self.warmup!r}")
        if not isinstance(self.skip, bool):
            raise ReproError(f"WUS hyper-parameter 'skip' must be true or false, got {self.skip!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise unknown("learning-rate schedule (WUS hyper-parameter 'lr_schedule')", self.lr_schedule,
                          LR_SCHEDULES)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ReproError(f"WUS hyper-parameter 'monitor' must be a metric name, got {self.monitor!r}")

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "WUSConfig":
        """Build from the WUS keys of *hparams* (other keys are ignored: they go to the optimizer)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in hparams.items() if k in names})


WUS_KEYS = frozenset(f.name for f in fields(WUSConfig))
