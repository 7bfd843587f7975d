"""Weight Update Skipping (WUS, WUS+LR): skip weight updates while accuracy stalls.

Paper: Safayenikoo & Akturk, "Weight Update Skipping: Reducing Training Time for Artificial
Neural Networks", arXiv 2012.02792 (2020), https://arxiv.org/abs/2012.02792.

The mechanics are pure functions in ``wus`` (which parameters freeze, the trigger, the lr
schedule) plus one ``repro.trainer.Hook``; ``methods`` runs them through the core's gradient
descent and ``paper`` declares experiments and claims.
"""

from repro_wus.configuration_wus import WUSConfig
from repro_wus.wus import (
    TriggerState,
    WeightUpdateSkipping,
    scheduled_lr,
    set_weight_updates,
    skip_schedule,
    trigger_step,
    weight_parameters,
)

__all__ = ["TriggerState", "WUSConfig", "WeightUpdateSkipping", "scheduled_lr", "set_weight_updates",
           "skip_schedule", "trigger_step", "weight_parameters"]
