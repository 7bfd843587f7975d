"""sgd / loss_is / autoassist as methods of the core: ``gradient_method`` plus one selection hook.

All three run the same ``InstanceShrinking`` hook (the fixed switch ``selection`` = all /
loss_is / autoassist), so they share the optimizer, the data order and the instance accounting
and differ only in which instances of each mini-batch are back-propagated. None of them decides
anything from evaluations: every evaluation is off the training clock.
"""

from __future__ import annotations

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, gradient_method

from repro_autoassist.configuration_autoassist import AutoAssistConfig
from repro_autoassist.shrinking import InstanceShrinking


def _hooks(ctx: RunContext, cfg: AutoAssistConfig, gd: GradientConfig) -> list[Hook]:
    return [InstanceShrinking(cfg)]


METHODS = {
    "sgd": gradient_method(
        "sgd", "Plain SGD (momentum) on the full stream: every instance back-propagated",
        config=AutoAssistConfig, hooks=_hooks, fixed={"selection": "all"}, is_baseline=True),
    "loss_is": gradient_method(
        "loss_is", "Loss-based selection baseline: a no-grad Boss forward scores the batch, instance i kept "
                   "with prob b + (1-b) * loss_i / max_j loss_j (unweighted)",
        config=AutoAssistConfig, hooks=_hooks, fixed={"selection": "loss_is"}, is_baseline=True),
    "autoassist": gradient_method(
        "autoassist", "AutoAssist: instance kept with prob b + (1-b) * sigmoid(w.x + u_y); the linear Assistant "
                      "learns 1[loss > EMA mean loss] from the Boss's reported losses",
        config=AutoAssistConfig, hooks=_hooks, fixed={"selection": "autoassist"}),
}
