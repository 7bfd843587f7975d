"""The DeepZero methods as the core's gradient descent with one hook that replaces the backward.

Every method is ``repro.trainer.gradient_method``: the core's Trainer, optimizer (SGD with
momentum and weight decay, as the official code), learning-rate schedule, evaluation and
checkpoints. For the zeroth-order methods the :class:`ZerothOrderGradient` hook

1. switches autograd off for the Trainer's forward (it only reports the loss and updates the
   batch-norm running statistics, as the official main process does),
2. in ``before_backward`` computes the ZO estimate of the batch's gradient with the engine
   (``repro_deepzero.engine``: batched perturbed forwards) and hands the Trainer a trivial
   leaf in place of the loss, so ``loss.backward()`` runs no backward pass,
3. in ``after_backward`` writes the estimate into every parameter's ``.grad``; the core optimizer
   then takes its normal step ("sparse gradient, dense model": weight decay and momentum act on
   every weight, the estimate only on the active coordinates).

Queries are counted exactly: every forward evaluation (the Trainer's, the engine's unperturbed
cache pass, each perturbed query, ZO-GraSP's) goes through ``ctx.count_forward`` in samples;
``ctx.extra`` reports the estimator's queries per step and in total.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

from repro_deepzero import engine
from repro_deepzero.configuration_deepzero import DeepZeroConfig, SparseCGEConfig
from repro_deepzero.estimators import gaussian_directions
from repro_deepzero.zo_grasp import (active_counts, class_balanced_sample, layer_sparsities, random_masks,
                                     uniform_sparsities, zo_grasp_scores)

# Shared (leaderboard) workloads: the ZO methods refuse models above a size at which one CPU run
# of a shared workload's default budget (digits_mlp: 30 epochs, ~570 steps) stops taking seconds.
# A step costs (queries) x (cost of one query on the batch): sparse CGE with feature reuse and the
# rank-one path spends ~0.1 d cheap partial queries (10k parameters: a few seconds); full CGE
# spends d + 1, and RGE / sparse CGE without reuse ~0.1 d *full* forward passes, so their cost
# grows like d^2 (digits_mlp's 4.8k parameters: half a minute and more). The paper's own ResNet-20
# runs are this package's GPU experiments, not the board's.
ZO_MAX_PARAMS = 10_000  # cge_sparse_reuse
ZO_MAX_PARAMS_QUADRATIC = 2_000  # cge, cge_sparse, rge


def matched_rge_queries(prog: engine.Program, sparsity: float) -> int:
    """Queries per step of sparse CGE at *sparsity* under ZO-GraSP's count rule: the unpruned
    conv/linear weights, N_w − round(s · N_w), plus every other parameter (the equal-query q of RGE)."""
    n_w = sum(prog.params[n].numel() for n in prog.weight_names)
    others = prog.n_params - n_w
    return n_w - round(sparsity * n_w) + others


class ZerothOrderGradient(Hook):
    """Replaces the backward pass by a CGE or RGE estimate (see the module docstring)."""

    def __init__(self, cfg: DeepZeroConfig, loss: str) -> None:
        if cfg.estimator not in ("rge", "cge"):
            raise ReproError(f"ZerothOrderGradient: estimator must be 'rge' or 'cge', got {cfg.estimator!r}")
        self.cfg, self.loss_name = cfg, loss
        self.prog: engine.Program | None = None
        self.sparsities: dict[str, float] | None = None
        self.masks: dict[str, torch.Tensor] | None = None
        self.queries = 0  # estimator queries (function evaluations) so far, ZO-GraSP excluded
        self.steps = 0
        self.grasp_queries = 0
        self._grad_mode = True
        self._grads: dict[str, torch.Tensor] = {}
        self._loss: torch.Tensor | None = None

    @property
    def sparse(self) -> bool:
        return self.cfg.estimator == "cge" and self.cfg.sparsity > 0

    def _program(self, state: TrainState) -> engine.Program:
        if self.prog is None:
            self.prog = engine.Program(state.model, self.loss_name)
        return self.prog

    # -- set-up: layer-wise ratios (ZO-GraSP) once, masks on schedule --------------------------------

    def fit_start(self, state: TrainState) -> None:
        prog, ctx, cfg = self._program(state), state.ctx, self.cfg
        if not self.sparse:
            return
        sizes = {n: prog.params[n].numel() for n in prog.weight_names}
        if cfg.layer_ratios == "uniform":
            self.sparsities = uniform_sparsities(sizes, cfg.sparsity)
            return
        idx = class_balanced_sample(ctx.data.y_train, cfg.grasp_per_class, ctx.generator)
        xg, yg = ctx.data.x_train[idx], ctx.data.y_train[idx]
        scores, queries = zo_grasp_scores(prog, xg, yg, cfg.grasp_queries, cfg.mu, ctx.generator,
                                          cfg.grasp_official_quirks, budget_elements=cfg.budget_elements)
        self.sparsities = layer_sparsities(scores, cfg.sparsity)
        self.grasp_queries = queries
        ctx.count_forward(queries * len(idx))

    def epoch_start(self, state: TrainState) -> None:
        if self.sparse and (self.masks is None or state.epoch % self.cfg.mask_interval == 0):
            prog = self._program(state)
            sizes = {n: prog.params[n].numel() for n in prog.weight_names}
            assert self.sparsities is not None, "fit_start (or a checkpoint) sets the layer ratios"
            self.masks = {n: m.to(state.ctx.device) for n, m in
                          random_masks(sizes, self.sparsities, state.ctx.generator).items()}

    def coordinates(self) -> dict[str, torch.Tensor]:
        """Active flat indices per parameter: the masks' for conv/linear weights, all for the rest."""
        prog = self.prog
        assert prog is not None
        dev = next(iter(prog.params.values())).device
        coords = {n: torch.arange(p.numel(), device=dev) for n, p in prog.params.items()}
        if self.sparse and self.masks is not None:
            coords.update(self.masks)
        return coords

    # -- the step: no autograd, the estimate written into .grad ---------------------------------------

    def before_forward(self, state: TrainState) -> None:
        self._grad_mode = torch.is_grad_enabled()
        torch.set_grad_enabled(False)

    def after_forward(self, state: TrainState) -> None:
        torch.set_grad_enabled(self._grad_mode)

    def before_backward(self, state: TrainState) -> None:
        prog, cfg, ctx = self._program(state), self.cfg, state.ctx
        x, y = state.x, state.y
        if cfg.estimator == "cge":
            grads, queries = engine.cge(prog, x, y, self.coordinates(), cfg.mu, cfg.forward_mode,
                                        cfg.budget_elements)
        else:
            q = cfg.rge_queries or matched_rge_queries(prog, cfg.rge_match_sparsity)
            shapes = {n: tuple(p.shape) for n, p in prog.params.items()}
            dirs = gaussian_directions(shapes, q, ctx.generator, x.device, next(iter(prog.params.values())).dtype)
            grads, queries = engine.rge(prog, x, y, dirs, cfg.mu, cfg.budget_elements)
        ctx.count_forward(queries * len(x))
        self.queries += queries
        self.steps += 1
        self._grads = grads
        self._loss = state.loss
        state.loss = torch.zeros((), device=x.device, requires_grad=True)  # backward() of a leaf: no graph

    def after_backward(self, state: TrainState) -> None:
        for name, p in state.model.named_parameters():
            p.grad = self._grads[name].to(p.dtype)
        self._grads = {}

    def after_optimizer_step(self, state: TrainState) -> None:
        if self._loss is not None:
            state.loss = self._loss.detach()
            self._loss = None

    def fit_end(self, state: TrainState) -> None:
        extra = state.ctx.extra
        prog = self._program(state)
        extra["zo_queries"] = float(self.queries)
        extra["zo_queries_per_step"] = self.queries / max(self.steps, 1)
        extra["grasp_queries"] = float(self.grasp_queries)
        extra["n_params"] = float(prog.n_params)
        if self.sparse and self.sparsities is not None:
            sizes = {n: prog.params[n].numel() for n in prog.weight_names}
            counts = active_counts(sizes, self.sparsities)
            extra["weight_sparsity"] = 1 - sum(counts.values()) / sum(sizes.values())

    def state_dict(self) -> dict[str, Any]:
        return {"sparsities": self.sparsities, "masks": self.masks, "queries": self.queries, "steps": self.steps,
                "grasp_queries": self.grasp_queries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sparsities = state["sparsities"]
        self.masks = state["masks"]
        self.queries, self.steps = int(state["queries"]), int(state["steps"])
        self.grasp_queries = int(state["grasp_queries"])


def _hooks(ctx: RunContext, cfg: DeepZeroConfig, gd: GradientConfig) -> list[Hook]:
    if cfg.train_subset is not None:
        ctx.use_train_subset(cfg.train_subset)
    if cfg.estimator == "fo":
        return []
    return [ZerothOrderGradient(cfg, ctx.workload.loss)]


def _zo_setup(extra: dict[str, Any], max_params: int, why: str):
    """on_workload of a ZO method: its own settings, or NotApplicable (too many parameters for its
    query cost, or a model/loss the engine cannot evaluate)."""
    def setup(workload: Workload) -> dict[str, Any]:
        model = workload.build_model()
        n = sum(p.numel() for p in model.parameters())
        if n > max_params:
            raise NotApplicable(f"{workload.name!r} has {n} parameters > {max_params}: {why}, too slow for a "
                                f"shared CPU budget")
        try:
            engine.Program(model, workload.loss)
        except ReproError as exc:
            raise NotApplicable(f"{workload.name!r}: {exc}") from None
        return dict(extra)
    return setup


def _fo_setup(workload: Workload) -> dict[str, Any]:
    return {}


METHODS = {
    "fo_sgd": gradient_method(
        "fo_sgd", "first-order baseline: the same SGD on autograd gradients", config=DeepZeroConfig,
        hooks=_hooks, fixed={"estimator": "fo"}, is_baseline=True, on_workload=_fo_setup,
        distributed=True),  # no hook (plain gradient descent): may train in several processes
    "rge": gradient_method(
        "rge", "randomised gradient estimate, q Gaussian directions per step (default: the query count of "
               "sparse CGE at 90%)", config=DeepZeroConfig, hooks=_hooks, fixed={"estimator": "rge"},
        on_workload=_zo_setup({}, ZO_MAX_PARAMS_QUADRATIC, "RGE spends ~0.1 d full forward passes per step")),
    "cge": gradient_method(
        "cge", "coordinate-wise gradient estimate on every coordinate (d + 1 queries per step)",
        config=DeepZeroConfig, hooks=_hooks, fixed={"estimator": "cge", "sparsity": 0.0},
        on_workload=_zo_setup({"rank_one": True}, ZO_MAX_PARAMS_QUADRATIC, "full CGE spends d + 1 queries per step")),
    "cge_sparse": gradient_method(
        "cge_sparse", "sparse CGE: ZO-GraSP layer ratios, random masks redrawn every mask_interval epochs; "
                      "each query a full forward pass (no feature reuse)", config=SparseCGEConfig, hooks=_hooks,
        fixed={"estimator": "cge", "feature_reuse": False},
        on_workload=_zo_setup({}, ZO_MAX_PARAMS_QUADRATIC, "without feature reuse each of its ~0.1 d queries is a "
                                                          "full forward pass")),
    "cge_sparse_reuse": gradient_method(
        "cge_sparse_reuse", "DeepZero: sparse CGE with feature reuse (a perturbed forward restarts at the "
                            "perturbed layer's cached input)", config=SparseCGEConfig, hooks=_hooks,
        fixed={"estimator": "cge", "feature_reuse": True},
        # on a shared workload (15-20 epochs): masks redrawn every 2 epochs, about the paper's 10 draws per run
        on_workload=_zo_setup({"rank_one": True, "mask_interval": 2}, ZO_MAX_PARAMS,
                              "sparse CGE spends ~0.1 d queries per step")),
}
