"""Hyper-parameters of ES-MDA and EnKF training, documented and validated.

The paper (arXiv 2010.02626) does not give its ensemble sizes, iteration counts or noise
levels in the abstract; the defaults below are ours, chosen from the standard ES-MDA
literature (Emerick & Reynolds 2013) and listed in the package README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from repro.errors import ReproError, unknown

from repro_enkf.assimilation import INFLATION_KINDS


@dataclass(frozen=True)
class AssimilationConfig:
    """Shared by ES-MDA (offline) and EnKF (online).

    Attributes:
        ensemble_size: Ne, number of parameter vectors in the ensemble.
        n_assimilations: ES-MDA: N_a, assimilation steps over all observations.
            EnKF: passes over the observation stream.
        inflation: ES-MDA inflation schedule, "constant" (α_i = N_a) or "geometric";
            Σ 1/α_i = 1 either way. EnKF uses α = number of passes (α = 1 for one pass: the
            paper's online EnKF), so each observation carries unit total weight.
        obs_std: σ of the observation error (C_D = σ² I). None: the dataset's generator
            noise (params.yaml ``datasets.<name>.noise``), floored at ``min_obs_std``.
        min_obs_std: lower bound for σ (noise-free data would make C_D singular).
        init_std: None: LeCun-normal weights / small biases; else N(0, init_std²) for all.
        batch_size: EnKF only: observations per analysis step (samples per mini-batch).
        checkpoint_every: save a resumable checkpoint every this many steps (0: never).
    """

    ensemble_size: int = 100
    n_assimilations: int = 8
    inflation: str = "constant"
    obs_std: float | None = None
    min_obs_std: float = 0.01
    init_std: float | None = None
    batch_size: int = 20
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if self.ensemble_size < 2:
            raise ReproError(f"hyper-parameter 'ensemble_size' must be >= 2, got {self.ensemble_size}")
        if self.n_assimilations < 1:
            raise ReproError(f"hyper-parameter 'n_assimilations' must be >= 1, got {self.n_assimilations}")
        if self.inflation not in INFLATION_KINDS:
            raise unknown("inflation (hyper-parameter 'inflation')", self.inflation, INFLATION_KINDS)
        for key in ("obs_std", "init_std"):
            v = getattr(self, key)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ReproError(f"hyper-parameter {key!r} must be a positive finite number or null, got {v}")
        if not (math.isfinite(self.min_obs_std) and self.min_obs_std > 0):
            raise ReproError(f"hyper-parameter 'min_obs_std' must be positive, got {self.min_obs_std}")
        if self.batch_size < 1 or self.checkpoint_every < 0:
            raise ReproError(f"hyper-parameters 'batch_size' >= 1 and 'checkpoint_every' >= 0, "
                             f"got {self.batch_size}, {self.checkpoint_every}")

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "AssimilationConfig":
        names = {f.name for f in fields(cls)}
        for key in hparams:
            if key not in names:
                raise unknown("ES-MDA/EnKF hyper-parameter", key, names)
        return cls(**hparams)

    def forward_budget(self) -> int:
        """Full-data forward passes per member × members: what a GD baseline gets as epochs."""
        return self.ensemble_size * self.n_assimilations
