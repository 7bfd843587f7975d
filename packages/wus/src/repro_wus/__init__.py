"""Weight Update Skipping (WUS, WUS+LR): skip weight updates while accuracy stalls.

Paper: Safayenikoo & Akturk, "Weight Update Skipping: Reducing Training Time for Artificial
Neural Networks", arXiv 2012.02792 (2020), https://arxiv.org/abs/2012.02792.

The mechanics are pure functions in ``wus`` (which parameters freeze, the trigger); ``methods``
holds the ``repro.trainer.Hook`` and ``METHODS`` (the core's gradient descent plus the hook) and
``paper`` declares experiments and claims.
"""

from repro_wus.configuration_wus import WUSConfig
from repro_wus.methods import METHODS, WeightUpdateSkipping
from repro_wus.wus import TriggerState, set_weight_updates, skip_schedule, trigger_step, weight_parameters

__all__ = ["METHODS", "TriggerState", "WUSConfig", "WeightUpdateSkipping", "set_weight_updates",
           "skip_schedule", "trigger_step", "weight_parameters"]
