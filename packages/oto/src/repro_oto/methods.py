"""OTO as methods of the core: ``gradient_method`` + one hook (``OtoHook``) on the core Trainer.

* ``dense``: the same training (optimizer, schedule, epochs) with no regulariser; the baseline.
* ``prox_sg``: group-lasso proximal SGD: every step is followed by the group soft threshold
  x_g <- max(0, 1 - alpha lambda / ||x_g||) x_g on every zero-invariant group.
* ``hspg``: the paper's two stages: for ``n_p`` epochs subgradient steps on f + lambda Omega (v1
  ``sgd_step``; ``warmup: prox`` for the paper's Prox-SG wording), then half-space steps (v1
  ``half_space_step``): the trial point is projected to zero group by group.

The hook builds the ZIG partition from the model's graph (``repro_oto.zig``) on the first
training epoch (also after a resume), steps the grouped parameters as ``kernel`` says (see
``OtoConfig.kernel``; by default the core optimizer takes the step and the hook adds the
subgradient before it and projects after it, which with SGD is exactly the v1 step; over Adam
the subgradient step is decoupled, see ``repro_oto.hspg``), records the
group sparsity in every evaluation row, and at the end of training exports the slim network
(``repro_oto.slim``) and records, with the clock paused: zero / total groups, group sparsity,
FLOPs and parameters of the full and the slim model and the fractions remaining, the largest
|slim - full| output difference over the test split (``slim_max_abs_diff``, ``slim_exact`` =
1 when it is <= ``exact_tol``), and the slim model's own test metrics (``slim_test_*``). No
decision reads an evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

from repro_oto import hspg
from repro_oto.configuration_oto import OtoConfig
from repro_oto.kernels import ZigStep, triton
from repro_oto.slim import slim_report
from repro_oto.zig import ZigError, ZigPartition, build_zigs, group_sparsity


class OtoHook(Hook):
    def __init__(self, cfg: OtoConfig, gd: GradientConfig, epochs: int) -> None:
        if cfg.lr_decays and (gd.lr_schedule != "none" or gd.warmup_epochs):
            raise ReproError("oto hyper-parameter 'lr_decays' replaces the core's lr_schedule / warmup_epochs: "
                             f"set one of them (got lr_decays={list(cfg.lr_decays)}, lr_schedule={gd.lr_schedule!r}, "
                             f"warmup_epochs={gd.warmup_epochs})")
        self.cfg, self.gd, self.epochs = cfg, gd, epochs
        self.n_p = cfg.warmup_epochs(epochs)
        self.partition: ZigPartition | None = None
        self.sets: list[list[torch.Tensor]] = []
        self.eps: list[float] = []
        self.path = "optimizer"
        self.coupled = True  # optimizer path over SGD: the subgradient goes into the gradients (v1)
        self.zig_step: ZigStep | None = None
        self.mode: str | None = None
        self.lmbda = cfg.lmbda
        self._saved: list[list[torch.Tensor]] | None = None
        self.slim: torch.nn.Module | None = None  # the exported slim network, after fit_end

    # ---- set-up -------------------------------------------------------------------------------
    def _ensure(self, state: TrainState) -> None:
        if self.partition is not None:
            return
        self.partition = build_zigs(state.model, state.ctx.data.x_train[:2])
        prunable = self.partition.prunable_sets
        if not prunable and self.cfg.regulariser != "none":
            raise ReproError(f"oto: model {state.ctx.workload.model!r} has no prunable zero-invariant group:\n"
                             + self.partition.describe())
        self.sets = self.partition.grouped_parameters(state.model)
        self.eps = [self.cfg.eps_for(s.kind) for s in prunable]
        self.path = self._resolve_path(state.optimizer)
        if self.path in ("torch", "triton"):
            self.zig_step = ZigStep(self.sets, self.eps)
            if self.path == "triton" and not self.zig_step.triton:
                raise ReproError("oto: kernel 'triton' needs triton and fp32 parameters on a CUDA device "
                                 "(or TRITON_INTERPRET=1)")

    def _resolve_path(self, optimizer: torch.optim.Optimizer) -> str:
        self.coupled = isinstance(optimizer, torch.optim.SGD)
        sgd = self.coupled and all(not g.get("nesterov") and not g.get("dampening") for g in optimizer.param_groups)
        kernel = self.cfg.kernel
        if kernel == "auto":
            on_cuda = bool(self.sets) and self.sets[0][0].is_cuda and self.sets[0][0].dtype == torch.float32
            return "triton" if sgd and on_cuda and triton is not None else "optimizer"
        if kernel in ("torch", "triton") and not sgd:
            raise ReproError(f"oto: kernel {kernel!r} is an SGD step (momentum, weight decay; no nesterov or "
                             f"dampening); the optimizer is {type(optimizer).__name__}: use kernel 'optimizer'")
        return kernel

    def _mode(self, epoch: int) -> str | None:
        reg = self.cfg.regulariser
        if reg == "none":
            return None
        if reg == "prox_sg":
            return "prox"
        if epoch < self.n_p:
            return "prox" if self.cfg.warmup == "prox" else "subgradient"
        return "half_space"

    # ---- events -------------------------------------------------------------------------------
    def fit_start(self, state: TrainState) -> None:
        self._ensure(state)

    def epoch_start(self, state: TrainState) -> None:
        self._ensure(state)
        e = state.epoch
        if self.cfg.lr_decays:
            lr = self.gd.lr * 0.1 ** sum(e >= d for d in self.cfg.lr_decays)
            for group in state.optimizer.param_groups:
                group["lr"] = lr
        self.lmbda = self.cfg.lmbda_at(e)
        self.mode = self._mode(e)
        if self.cfg.regulariser == "hspg" and e == self.n_p and self.n_p > 0:
            # v1 keeps separate momentum buffers for the two stages: stage 2 starts a fresh one
            for members in self.sets:
                for p in members:
                    state.optimizer.state.get(p, {}).pop("momentum_buffer", None)

    def _grads(self) -> list[list[torch.Tensor]]:
        out = []
        for members in self.sets:
            gs = []
            for p in members:
                if p.grad is None:  # unused in this forward: the regulariser still acts on it
                    p.grad = torch.zeros_like(p)
                elif not p.grad.is_contiguous():
                    p.grad = p.grad.contiguous()
                gs.append(p.grad)
            out.append(gs)
        return out

    def before_optimizer_step(self, state: TrainState) -> None:
        if self.mode is None or state.skip_step:
            return
        grads = self._grads()
        if self.path == "optimizer":
            if self.mode in ("subgradient", "half_space") and self.coupled:
                for params, gs in zip(self.sets, grads):
                    hspg.subgradient_(params, gs, self.lmbda)
            if self.mode == "half_space" or (self.mode == "subgradient" and not self.coupled):
                self._saved = [[p.detach().clone() for p in params] for params in self.sets]
            return
        group = state.optimizer.param_groups[0]
        momentum, wd = float(group.get("momentum", 0.0)), float(group.get("weight_decay", 0.0))
        bufs = None
        if momentum:
            bufs = []
            for params in self.sets:
                row = []
                for p in params:
                    st = state.optimizer.state[p]
                    if st.get("momentum_buffer") is None:
                        st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    row.append(st["momentum_buffer"])
                bufs.append(row)
        assert self.zig_step is not None
        self.zig_step(grads, bufs, mode=self.mode, lr=float(group["lr"]), lmbda=self.lmbda, momentum=momentum,
                      weight_decay=wd, force_reference=self.path == "torch")
        for params in self.sets:  # stepped here: the core optimizer skips parameters without a gradient
            for p in params:
                p.grad = None

    def after_optimizer_step(self, state: TrainState) -> None:
        if self.mode is None or self.path != "optimizer" or state.skip_step:
            return
        lr = float(state.optimizer.param_groups[0]["lr"])
        if self.mode in ("subgradient", "half_space") and not self.coupled:
            assert self._saved is not None
            for params, saved in zip(self.sets, self._saved):
                hspg.subgradient_step_(params, saved, lr * self.lmbda)
        if self.mode == "half_space":
            assert self._saved is not None
            for params, saved, eps in zip(self.sets, self._saved, self.eps):
                hspg.half_space_project_(params, saved, eps)
            self._saved = None
        elif self.mode == "prox":
            for params in self.sets:
                hspg.group_prox_(params, lr * self.lmbda)
        self._saved = None

    def epoch_end(self, state: TrainState) -> None:
        history = state.ctx.history
        if state.evaluated and self.partition is not None and history and history[-1]["epoch"] == state.epoch:
            zero, total = group_sparsity(state.model, self.partition)
            history[-1]["group_sparsity"] = zero / total if total else 0.0

    def fit_end(self, state: TrainState) -> None:
        ctx = state.ctx
        with ctx.clock.paused():
            self._ensure(state)
            assert self.partition is not None

            def score(model: torch.nn.Module) -> dict[str, float]:
                return ctx.workload.evaluate(model, ctx.data, "test")

            self.slim, report = slim_report(state.model, self.partition, ctx.data.x_test, score)
            report["slim_exact"] = float(report["slim_max_abs_diff"] <= self.cfg.exact_tol)
            report["n_p"] = float(self.n_p if self.cfg.regulariser == "hspg" else 0)
            ctx.extra.update(report)


def _hooks(ctx: RunContext, cfg: OtoConfig, gd: GradientConfig) -> list[Hook]:
    return [OtoHook(cfg, gd, gd.epochs or ctx.workload.max_epochs)]


# ---- shared-workload (leaderboard) setup ---------------------------------------------------------------

# Input shapes of the registered datasets a ZIG partition is traced with (the board's workloads).
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "sine": (1,), "mexican_hat": (2,),
}
# Default lambda per dataset: the v1 CIFAR/ImageNet value 1e-3, except on digits (a few hundred
# steps per run: the regulariser's pull per run scales with the number of steps), where it is the
# smoke experiment's value, chosen there on the validation split.
SETUP_LAMBDA: dict[str, float] = {"digits": 0.085}


def check_workload(workload: Workload) -> ZigPartition:
    """The ZIG partition of *workload*'s model, or ``NotApplicable`` saying why there is none."""
    shape = INPUT_SHAPES.get(workload.dataset)
    if shape is None:
        raise NotApplicable(f"oto: the input shape of dataset {workload.dataset!r} is not known to its setup "
                            f"(known: {', '.join(INPUT_SHAPES)}), so no ZIG partition can be traced")
    model = workload.build_model()
    try:
        partition = build_zigs(model, torch.zeros(2, *shape))
    except ZigError as exc:
        raise NotApplicable(f"oto: no zero-invariant groups for workload {workload.name!r}: {exc}") from None
    if not partition.prunable_sets:
        reasons = sorted({r for s in partition.sets for r in s.reasons})
        raise NotApplicable(f"oto: model {workload.model!r} of workload {workload.name!r} has no prunable "
                            f"zero-invariant group ({'; '.join(reasons) or 'no conv/linear producer'})")
    return partition


def _setup(regularised: bool):
    def on_workload(workload: Workload) -> Mapping[str, Any]:
        check_workload(workload)
        if not regularised:
            return {}
        return {"lmbda": SETUP_LAMBDA.get(workload.dataset, 1e-3)}
    return on_workload


def _method(name: str, regulariser: str, description: str, baseline: bool = False):
    return gradient_method(name, description, config=OtoConfig, hooks=_hooks, fixed={"regulariser": regulariser},
                           is_baseline=baseline, on_workload=_setup(regulariser != "none"))


METHODS = {
    "dense": _method("dense", "none", "the same SGD schedule and budget without the group regulariser "
                                      "(the full model; its slim export is the full model)", baseline=True),
    "prox_sg": _method("prox_sg", "prox_sg", "group-lasso proximal SGD: group soft threshold after every step"),
    "hspg": _method("hspg", "hspg", "HSPG: n_p epochs of subgradient steps on f + lambda sum ||x_g||, then "
                                    "half-space projected steps (groups whose trial point leaves the half-space "
                                    "are set to exactly zero)"),
}
