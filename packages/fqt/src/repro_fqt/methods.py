"""Exact training, QAT and FQT as methods of the core: ``gradient_method`` plus one hook.

The hook quantizes the workload's model in place (``wrap.quantize_model``: same parameters, same
``state_dict`` keys) before the first epoch — and again after a resume, which starts with a fresh
model — and, if ``variance_draws`` > 0, runs the gradient-variance probe (``variance.py``) at the
end of training with the training clock paused, writing its numbers into ``ctx.extra`` (the
trial's summary, where the claims read them). The rounding noise of training comes from torch's
global generator, which the core seeds and checkpoints; the probe has its own seeded generators.
No method decides anything from evaluations.

Methods: ``exact`` (the baseline: plain layers), ``qat`` (8-bit forward, exact backward), and
``<q><b>`` for q in ptq / psq / bhq and b in 8 / 6 / 5 / 4 (FQT, the reference's ``--bbits``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from repro.paper import NotApplicable
from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

from repro_fqt.autograd import ForwardSpec, GradSpec
from repro_fqt.configuration_fqt import FQTConfig
from repro_fqt.quantizers import SCHEMES
from repro_fqt.variance import gradient_variance, summary_values
from repro_fqt.wrap import is_quantized, quantizable, quantize_model

BITS = (8, 6, 5, 4)
PROBE_SEED_OFFSET = 7919  # the probe's generators: seed + offset (independent of training's RNG)


class QuantizedTraining(Hook):
    """Installs the quantized layers (mode qat / fqt) and runs the variance probe at the end."""

    def __init__(self, cfg: FQTConfig, batch_size: int) -> None:
        self.cfg, self.batch_size = cfg, batch_size
        self.fwd = ForwardSpec(cfg.abits, cfg.wbits, cfg.biasbits)
        self.spec = GradSpec(cfg.grad_quantizer if cfg.mode == "fqt" else None, cfg.bbits, cfg.bwbits)
        self.layers: list[str] = []

    def _install(self, model: nn.Module) -> None:
        if self.cfg.mode != "exact" and not is_quantized(model):
            self.layers = quantize_model(model, self.fwd, self.spec)

    def fit_start(self, state: TrainState) -> None:
        self._install(state.model)

    def epoch_start(self, state: TrainState) -> None:
        self._install(state.model)  # a resumed run skips fit_start

    def fit_end(self, state: TrainState) -> None:
        self._install(state.model)
        if self.cfg.variance_draws == 0 or self.cfg.mode == "exact":
            return
        ctx = state.ctx
        with ctx.clock.paused():
            batches = probe_batches(ctx, self.batch_size, self.cfg.variance_batches)
            gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed + PROBE_SEED_OFFSET)
            stats = gradient_variance(state.model, batches, ctx.workload.loss_fn(), self.spec, SCHEMES,
                                      self.cfg.variance_bits, self.cfg.variance_draws, gen)
            ctx.extra.update(summary_values(stats))


def probe_batches(ctx: RunContext, batch_size: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """*n* training batches drawn with a generator of the trial's seed (the same for every method)."""
    g = torch.Generator().manual_seed(ctx.seed + PROBE_SEED_OFFSET)
    x, y = ctx.data.x_train, ctx.data.y_train
    order = torch.randperm(len(x), generator=g)[: batch_size * n].to(x.device)
    return [(x[order[i:i + batch_size]], y[order[i:i + batch_size]]) for i in range(0, len(order), batch_size)]


def _hooks(ctx: RunContext, cfg: FQTConfig, gd: GradientConfig) -> list[Hook]:
    if cfg.train_subset is not None:
        ctx.use_train_subset(cfg.train_subset)
    return [QuantizedTraining(cfg, gd.batch_size or ctx.workload.batch_size)]


def on_workload(workload: Workload) -> dict[str, Any]:
    """Any workload whose model has a linear or conv layer: the method's own defaults (8-bit
    forward, its fixed gradient quantizer and bits); NotApplicable otherwise."""
    model = workload.build_model()
    if not any(quantizable(m) for m in model.modules()):
        raise NotApplicable(f"model {workload.model!r} has no nn.Linear / nn.Conv2d layer to quantize")
    return {}


def _m(name: str, description: str, fixed: dict[str, Any], baseline: bool = False) -> Any:
    return gradient_method(name, description, config=FQTConfig, hooks=_hooks, fixed=fixed, is_baseline=baseline,
                           on_workload=on_workload)


_NAMES = {"ptq": "per-tensor (PTQ)", "psq": "per-sample (PSQ)", "bhq": "block Householder (BHQ)"}

METHODS = {
    "exact": _m("exact", "full-precision training: the workload's own layers, the core's SGD", {"mode": "exact"},
                baseline=True),
    "qat": _m("qat", "quantization-aware training: 8-bit activations and weights in the forward (STE), "
                     "exact backward; runs the gradient-variance probe when variance_draws > 0", {"mode": "qat"}),
    **{f"{q}{b}": _m(f"{q}{b}", f"FQT: QAT forward + {b}-bit {_NAMES[q]} stochastic-rounding activation-gradient "
                                f"quantizer, 8-bit weight-gradient path (gradient bifurcation)",
                     {"mode": "fqt", "grad_quantizer": q, "bbits": b})
       for q in SCHEMES for b in BITS},
}
