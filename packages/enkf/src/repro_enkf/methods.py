"""ES-MDA and EnKF as training methods of the core: same timing, checkpoint and results contracts.

They are not gradient descent, so they bring their own fit procedure instead of the core's
Trainer, but every evaluation goes through ``ctx.evaluate`` (the workload's metric code, the
clock paused) and every forward evaluation is counted in ``ctx.forward_evals`` — the budget
the gradient-descent baseline is matched to.
"""

from __future__ import annotations

from typing import Any

import torch

from repro import hparams as H
from repro.errors import ReproError
from repro.paper import Method
from repro.run import RunContext
from repro.trainer import gradient_method

from repro_enkf.assimilation import analysis_update, ensemble_spread, inflation_schedule
from repro_enkf.configuration_enkf import AssimilationConfig
from repro_enkf.ensemble import ensemble_forward, init_ensemble


def _network(ctx: RunContext) -> tuple[list[int], str]:
    wl = ctx.workload
    if wl.model != "mlp" or wl.loss != "mse":
        raise ReproError(f"ES-MDA/EnKF train MLP regressions; workload {wl.name!r} has model {wl.model!r}, "
                         f"loss {wl.loss!r}")
    return list(wl.model_kwargs["sizes"]), wl.model_kwargs.get("activation", "tanh")


def _obs_var(ctx: RunContext, cfg: AssimilationConfig) -> float:
    std = cfg.obs_std if cfg.obs_std is not None else float(ctx.data.params.get("noise", 0.0))
    return max(std, cfg.min_obs_std) ** 2


def _predictor(theta: torch.Tensor, sizes: list[int], activation: str):
    # The ensemble-mean prediction (not the output of the mean parameters: the net is non-linear).
    return lambda x: ensemble_forward(theta, x, sizes, activation).mean(dim=0)


def _assimilate(ctx: RunContext, hparams: dict[str, Any], online: bool) -> None:
    cfg = H.parse(AssimilationConfig, hparams, "ES-MDA/EnKF")
    sizes, act = _network(ctx)
    x, y = ctx.data.x_train, ctx.data.y_train
    var = _obs_var(ctx, cfg)
    if online:
        # Each pass is one sweep of the observation stream; α = passes keeps Σ 1/α = 1 over passes.
        alphas = [float(cfg.n_assimilations)] * cfg.n_assimilations
    else:
        alphas = inflation_schedule(cfg.n_assimilations, cfg.inflation)

    saved = ctx.load_checkpoint()
    if saved is None:
        with ctx.clock.measuring():
            theta = init_ensemble(sizes, cfg.ensemble_size, ctx.generator, cfg.init_std, device=ctx.device)
        ctx.extra["initial_spread"] = ensemble_spread(theta)
        ctx.evaluate(_predictor(theta, sizes, act), epoch=0, step=0, ensemble_spread=ctx.extra["initial_spread"])
        start, step = 0, 0
    else:
        theta, start, step = saved["theta"].to(ctx.device), int(saved["done"]), int(saved["step"])

    for i in range(start, cfg.n_assimilations):
        with ctx.clock.measuring():
            if online:
                order = torch.randperm(len(x), generator=ctx.generator).to(ctx.device)
                batches = [order[j:j + cfg.batch_size] for j in range(0, len(x), cfg.batch_size)]
            else:
                batches = [None]  # all observations at once
            for idx in batches:
                xb, yb = (x, y) if idx is None else (x[idx], y[idx])
                preds = ensemble_forward(theta, xb, sizes, act).reshape(cfg.ensemble_size, -1)
                ctx.count_forward(cfg.ensemble_size * len(xb))
                # drawn on the device on CUDA (no host-to-device copy per update); the run's generator on the CPU
                gen = ctx.step_generator
                noise = torch.randn(preds.shape, generator=gen, device=gen.device).to(ctx.device)
                theta = analysis_update(theta, preds, yb.reshape(-1), var, alphas[i], noise)
                step += 1
        spread = ensemble_spread(theta)
        ctx.evaluate(_predictor(theta, sizes, act), epoch=i + 1, step=step, ensemble_spread=spread)
        if i + 1 < cfg.n_assimilations and ctx.checkpoint_due(i + 1, cfg.checkpoint_every):
            ctx.save_checkpoint({"theta": theta.cpu(), "done": i + 1, "step": step})
    ctx.extra["final_spread"] = ensemble_spread(theta)
    ctx.extra["spread_ratio"] = ctx.extra["final_spread"] / ctx.extra["initial_spread"]


def fit_esmda(ctx: RunContext, hparams: dict[str, Any]) -> None:
    """ES-MDA (offline): N_a updates, each with all observations and inflation α_i."""
    _assimilate(ctx, hparams, online=False)


def fit_enkf(ctx: RunContext, hparams: dict[str, Any]) -> None:
    """EnKF (online): the same update applied as mini-batches of observations arrive."""
    _assimilate(ctx, hparams, online=True)


def validate(hparams: dict[str, Any]) -> None:
    H.parse(AssimilationConfig, hparams, "ES-MDA/EnKF")


_DOC = H.document(AssimilationConfig)

METHODS = {
    "esmda": Method("esmda", fit_esmda, "ES-MDA: offline, N_a inflated updates with all observations",
                    validate=validate, hparams_doc=_DOC),
    "enkf": Method("enkf", fit_enkf, "EnKF: online, sequential updates on mini-batches of observations",
                   validate=validate, hparams_doc=_DOC),
    "gd_equal_budget": gradient_method(
        "gd_equal_budget", "Gradient descent (Adam, backprop) with as many forward evaluations as ES-MDA",
        is_baseline=True),
    "gd_converged": gradient_method(
        "gd_converged", "Gradient descent (Adam, backprop) run until the validation RMSE stops improving",
        is_baseline=True),
}
