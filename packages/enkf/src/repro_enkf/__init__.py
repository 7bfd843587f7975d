"""Gradient-free training of feed-forward networks by data assimilation (ES-MDA and EnKF).

Paper: Chen, Xing, Ding, Xue, Zhong, "A Novel Neural Network Training Framework with Data
Assimilation", arXiv 2010.02626 (2020); J. Supercomputing 78 (2022).

The math is in pure functions (``ensemble``, ``assimilation``); ``methods`` adapts them to the
core's run contract and ``paper`` declares experiments and claims for the core.
"""

from repro_enkf.assimilation import analysis_update, ensemble_spread, inflation_schedule
from repro_enkf.ensemble import ensemble_forward, init_ensemble

__all__ = ["analysis_update", "ensemble_forward", "ensemble_spread", "inflation_schedule", "init_ensemble"]
