"""The method as a Hook of the core Trainer, and ``METHODS``."""

from __future__ import annotations

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method

from repro_nm_sparse.configuration_nm_sparse import NmSparseConfig


class NmSparseHook(Hook):
    """TODO: the method's events (select_batch, before_optimizer_step, ...)."""

    def __init__(self, cfg: NmSparseConfig) -> None:
        self.cfg = cfg

    def after_optimizer_step(self, state: TrainState) -> None:
        return None


def _hooks(ctx: RunContext, cfg: NmSparseConfig, gd: GradientConfig) -> list[Hook]:
    return [NmSparseHook(cfg)]


METHODS = {
    "baseline": gradient_method("baseline", "the core's gradient descent through the same hook, switched off",
                                config=NmSparseConfig, hooks=_hooks, fixed={"enabled": False}, is_baseline=True),
    "method": gradient_method("method", "TODO: the paper's method", config=NmSparseConfig, hooks=_hooks,
                              fixed={"enabled": True}),
}
