"""Hyper-parameters of ES-MDA and EnKF training, documented and validated.

The paper (arXiv 2010.02626) does not give its ensemble sizes, iteration counts or noise
levels in the abstract; the defaults below are ours, chosen from the standard ES-MDA
literature (Emerick & Reynolds 2013) and listed in the package README.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp

from repro_enkf.assimilation import INFLATION_KINDS


@dataclass(frozen=True)
class AssimilationConfig:
    """Shared by ES-MDA (offline) and EnKF (online)."""

    ensemble_size: int = hp(100, "Ne, number of parameter vectors in the ensemble", low=2)
    n_assimilations: int = hp(8, "ES-MDA: N_a, assimilation steps over all observations; EnKF: passes over "
                                 "the observation stream", low=1)
    inflation: str = hp("constant", "ES-MDA inflation schedule, \"constant\" (α_i = N_a) or \"geometric\"; "
                                    "Σ 1/α_i = 1 either way. EnKF uses α = number of passes (α = 1 for one pass: "
                                    "the paper's online EnKF), so each observation carries unit total weight",
                        choices=INFLATION_KINDS)
    obs_std: float | None = hp(None, "σ of the observation error (C_D = σ² I). None: the dataset's generator "
                                     "noise (params.yaml datasets.<name>.noise), floored at min_obs_std",
                               low=0, low_open=True)
    min_obs_std: float = hp(0.01, "lower bound for σ (noise-free data would make C_D singular)", low=0,
                            low_open=True)
    init_std: float | None = hp(None, "None: LeCun-normal weights / small biases; else N(0, init_std²) for all",
                                low=0, low_open=True)
    batch_size: int = hp(20, "EnKF only: observations per analysis step (samples per mini-batch)", low=1)
    checkpoint_every: int = hp(0, "also save a resumable checkpoint every this many passes (0: only the "
                               "time-based ones of the run's checkpoint_seconds)", low=0)

    def forward_budget(self) -> int:
        """Full-data forward passes per member × members: what a GD baseline gets as epochs."""
        return self.ensemble_size * self.n_assimilations
