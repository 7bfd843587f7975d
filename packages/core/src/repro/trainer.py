"""The one gradient training loop. Methods change it only through hooks.

Hook points, in the order they fire::

    fit_start
    per epoch:  epoch_start
                per batch:  select_batch -> before_forward -> after_forward
                            -> before_backward -> after_backward
                            -> before_optimizer_step -> after_optimizer_step
                (scheduler step, evaluation)
                epoch_end
    fit_end

A hook sees the mutable ``TrainState``; it may replace the batch in ``select_batch``, set
``state.skip_step`` to skip an optimizer step, or ``state.stop`` to end training early.
Everything a hook does counts as training time. Evaluation does not — except where a hook
decides on it: a hook with ``decides_on_validation = True`` (WUS's trigger, a plateau stop)
makes the validation part of every evaluation run on the training clock, because the method
needs it and its baseline does not. The test split is scored with the clock paused and never
reaches a decision.

Gradient methods are built with :func:`gradient_method`: the core's hyper-parameters
(:class:`GradientConfig`: optimizer, learning rate and its schedule, budget, evaluation,
checkpoints, plateau stop) plus the method's own typed dataclass, validated once by
``repro.hparams``, and a function that builds the method's hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from repro import distributed as D
from repro import hparams as H
from repro import metrics as M
from repro import performance as P
from repro.errors import ReproError, unknown
from repro.hparams import hp
from repro.paper import Method
from repro.run import RunContext
from repro.workloads import Workload, augment_batch

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
LR_SCHEDULES = ("none", "step", "cosine")


@dataclass(frozen=True)
class GradientConfig:
    """The core's gradient-descent hyper-parameters, shared by every gradient method."""

    optimizer: str = hp("adam", "torch optimizer", choices=tuple(OPTIMIZERS))
    lr: float = hp(1e-3, "base learning rate (per mean-reduced mini-batch loss)", low=0, low_open=True)
    epochs: int | None = hp(None, "epochs to train (default: the workload's max_epochs)", low=1)
    batch_size: int | None = hp(None, "mini-batch size (default: the workload's)", low=1)
    weight_decay: float | None = hp(None, "L2 weight decay (default: the optimizer's own)", low=0)
    momentum: float | None = hp(None, "SGD momentum (sgd only; default 0)", low=0, high=1)
    eval_every: int = hp(1, "evaluate every this many epochs (and after the last)", low=1)
    checkpoint_every: int = hp(0, "also save a resumable checkpoint every this many epochs (0: only the "
                               "time-based ones of the run's checkpoint_seconds)", low=0)
    plateau_patience: int | None = hp(None, "stop after this many evaluations without a validation "
                                            "improvement (None: no plateau stop)", low=1)
    plateau_min_delta: float = hp(1e-4, "relative improvement that counts for the plateau stop", low=0)
    lr_schedule: str = hp("none", "per-epoch learning-rate schedule", choices=LR_SCHEDULES)
    lr_step: int = hp(10, "step schedule: epochs between decays", low=1)
    lr_gamma: float = hp(0.1, "step schedule: decay factor", low=0, high=1, low_open=True)
    warmup_epochs: int = hp(0, "linear warm-up of the learning rate over this many epochs", low=0)
    # GPU switches (repro.performance; None: the default of the scale; all but warmup_steps are
    # ignored on the CPU)
    precision: str | None = hp(None, "training forward and loss precision on CUDA: fp32, or bf16 autocast "
                                     "(None: fp32)", choices=P.PRECISIONS)
    tf32: bool | None = hp(None, "TF32 matmuls and convolutions on CUDA (None: on at paper scale)")
    channels_last: bool | None = hp(None, "channels_last model and 4-D batches on CUDA (None: on at paper scale)")
    compile: bool | None = hp(None, "torch.compile the training forward on CUDA (None: off)")
    deterministic: bool | None = hp(None, "deterministic CUDA algorithms, cudnn.benchmark off; False: the fast "
                                          "mode for timing (None: on at smoke scale, off at paper scale)")
    warmup_steps: int | None = hp(None, "first optimizer steps of a process run off the training clock, timed "
                                        "apart as warmup_time_s (None: 0 on the CPU, 5 on CUDA)", low=0)


GD_KEYS = H.keys(GradientConfig)


def scheduled_lr(cfg: GradientConfig, epoch: int, total_epochs: int) -> float:
    """Learning rate for 0-based *epoch*: constant, step (× gamma every lr_step epochs) or cosine
    (from lr to 0 over the run), times a linear warm-up ((epoch + 1) / warmup_epochs) at the start."""
    if cfg.lr_schedule == "step":
        lr = cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step)
    elif cfg.lr_schedule == "cosine":
        lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * epoch / max(total_epochs, 1)))
    else:
        lr = cfg.lr
    if epoch < cfg.warmup_epochs:
        lr *= (epoch + 1) / cfg.warmup_epochs
    return lr


@dataclass
class TrainState:
    ctx: RunContext
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken (or skipped) so far
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    skip_step: bool = False
    stop: bool = False
    evaluated: bool = False  # an evaluation ran at the end of this epoch (last_eval is fresh)
    last_eval: dict[str, float] = field(default_factory=dict)
    # Several processes: the DistributedDataParallel wrapper of ``model`` that the training forward
    # runs through (a hook may register a DDP communication hook on it); None in one process.
    distributed_model: nn.Module | None = None


class Hook:
    """Base class: override the events you need; ``state_dict`` is saved in checkpoints.

    ``decides_on_validation``: the hook reads validation metrics to steer training, so the
    validation evaluations run on the training clock (see the module docstring).

    ``distributed``: the hook trains the same in several processes (``repro.distributed``): it
    sees only its process's slice of each batch, and neither selects or skips samples or steps,
    nor changes which parameters get gradients, nor keeps per-process counts. A Trainer in
    several processes refuses every hook that does not declare it.
    """

    decides_on_validation: bool = False
    distributed: bool = False

    def fit_start(self, state: TrainState) -> None: ...
    def epoch_start(self, state: TrainState) -> None: ...

    def select_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def before_forward(self, state: TrainState) -> None: ...
    def after_forward(self, state: TrainState) -> None: ...
    def before_backward(self, state: TrainState) -> None: ...
    def after_backward(self, state: TrainState) -> None: ...
    def before_optimizer_step(self, state: TrainState) -> None: ...
    def after_optimizer_step(self, state: TrainState) -> None: ...
    def epoch_end(self, state: TrainState) -> None: ...
    def fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PlateauStop(Hook):
    """Stop when the validation quality (``workload.target_metric``) has not improved by
    ``min_delta`` (relative) for ``patience`` evaluations. Used for "run to convergence" baselines."""

    decides_on_validation = True
    distributed = True  # every process holds the same (gathered) validation metrics

    def __init__(self, patience: int = 20, min_delta: float = 1e-4, monitor: str | None = None) -> None:
        if patience < 1 or not min_delta >= 0:
            raise ReproError(f"PlateauStop: patience must be >= 1 and min_delta >= 0, got {patience}, {min_delta}")
        self.patience, self.min_delta, self.monitor = patience, min_delta, monitor
        self.best: float | None = None
        self.bad = 0

    def epoch_end(self, state: TrainState) -> None:
        metric = self.monitor or state.ctx.workload.target_metric
        value = state.last_eval.get(metric)
        if not state.evaluated or value is None:
            return
        sign = 1.0 if M.higher_is_better(metric) else -1.0
        score = sign * value  # higher is better
        if self.best is None or score > self.best + self.min_delta * abs(self.best):
            self.best, self.bad = score, 0
        else:
            self.bad += 1
            state.stop = self.bad >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = None if state["best"] is None else float(state["best"])
        self.bad = int(state["bad"])


class LRSchedule(Hook):
    """Sets each epoch's learning rate from :func:`scheduled_lr` (a no-op for a constant schedule)."""

    distributed = True

    def __init__(self, cfg: GradientConfig, total_epochs: int) -> None:
        self.cfg, self.total_epochs = cfg, total_epochs

    def epoch_start(self, state: TrainState) -> None:
        lr = scheduled_lr(self.cfg, state.epoch, self.total_epochs)
        for group in state.optimizer.param_groups:
            group["lr"] = lr


def build_optimizer(name: str, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name](params, **kwargs)


class Trainer:
    """Mini-batch training of ``model`` on ``ctx.workload`` for ``epochs`` epochs.

    In several processes (``repro run --processes N``, see ``repro.distributed``) the training
    forward runs through ``DistributedDataParallel``; every process draws the same batches and
    trains on its slice of each (the loss weighted by the slice's share, so the averaged gradient
    is the whole batch's mean-loss gradient even when the slices differ in size); the epoch's
    training loss and forward count are summed over the processes; evaluations score the gathered
    predictions, so every process records the same history. Only rank 0 saves checkpoints.

    Args:
        eval_every: evaluate every this many epochs (and always after the last one).
        checkpoint_every: save a resumable checkpoint every this many epochs (0: never); the
            trial's ``checkpoint_seconds`` adds time-based ones (``RunContext.checkpoint_due``).
        hooks: the method's plug-ins, called in order at every hook point.
    """

    def __init__(self, ctx: RunContext, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 epochs: int, batch_size: int, scheduler: Any = None, hooks: Sequence[Hook] = (),
                 eval_every: int = 1, checkpoint_every: int = 0,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 performance: P.Performance | None = None) -> None:
        if epochs < 1 or batch_size < 1 or eval_every < 1 or checkpoint_every < 0:
            raise ReproError(
                f"Trainer: epochs, batch_size, eval_every must be >= 1 and checkpoint_every >= 0 "
                f"(got epochs={epochs}, batch_size={batch_size}, eval_every={eval_every}, "
                f"checkpoint_every={checkpoint_every})"
            )
        self.ctx, self.epochs, self.batch_size = ctx, epochs, batch_size
        self.hooks = list(hooks)
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.loss_fn = loss_fn or ctx.workload.loss_fn()
        # GPU switches (default: those of the trial's scale and device; see repro.performance)
        self.perf = performance or P.resolve(ctx.device, ctx.scale)
        ctx.performance = self.perf.record()
        model = P.apply(self.perf, ctx.device, model.to(ctx.device))
        self.state = TrainState(ctx=ctx, model=model, optimizer=optimizer, scheduler=scheduler)
        self.warmup = P.Warmup(ctx.clock, self.perf.warmup_steps, ctx.device)
        self.decides_on_validation = any(h.decides_on_validation for h in self.hooks)
        self.world = D.world_size()
        if self.world > 1:
            D.check_hooks(self.hooks, ctx.method)
            self.state.distributed_model = D.wrap(self.state.model, ctx.device)
        # the training forward: the model, its DDP wrapper in several processes, compiled if asked
        self._forward = P.training_forward(self.perf,
            self.state.model if self.state.distributed_model is None else self.state.distributed_model)

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self.state)

    def _checkpoint_state(self) -> dict[str, Any]:
        s = self.state
        return {
            "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "scheduler": s.scheduler.state_dict() if s.scheduler is not None else {},
            "epoch": s.epoch,
            "step": s.step,
            "hooks": [h.state_dict() for h in self.hooks],
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        s = self.state
        s.model.load_state_dict(saved["model"])
        s.optimizer.load_state_dict(saved["optimizer"])
        if s.scheduler is not None:
            s.scheduler.load_state_dict(saved["scheduler"])
        s.epoch, s.step = int(saved["epoch"]), int(saved["step"])
        for hook, hs in zip(self.hooks, saved["hooks"]):
            hook.load_state_dict(hs)

    def _run_epoch(self) -> torch.Tensor:
        s, ctx = self.state, self.ctx
        x_all, y_all = ctx.data.x_train, ctx.data.y_train
        gen = ctx.step_generator  # on the device on CUDA: no host-to-device copy (the run's generator on the CPU)
        order = torch.randperm(len(x_all), generator=gen, device=gen.device).to(ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        seen, forwards = 0, ctx.forward_evals
        s.model.train()
        forward = self._forward
        for start in range(0, len(order), self.batch_size):
            self.warmup.before_step()  # the first steps of the process: off the clock
            idx = order[start:start + self.batch_size]
            x, y = x_all[idx], y_all[idx]
            if ctx.workload.augment:  # training batches only; default off
                x = augment_batch(ctx.workload.augment, x, gen)  # whole batch: same draws
            x = P.prepare_batch(self.perf, x)
            n_batch = len(x)
            if self.world > 1:  # this process's slice of the global batch
                x, y = D.shard(x), D.shard(y)
            for hook in self.hooks:
                x, y = hook.select_batch(s, x, y)
            if len(x) == 0 and self.world == 1:  # a selection hook may drop a whole batch
                continue
            s.x, s.y, s.skip_step = x, y, False
            self._call("before_forward")
            with P.autocast(self.perf, ctx.device):
                s.outputs = forward(x)
                # (an empty slice — a last batch smaller than the number of processes — has loss 0)
                s.loss = self.loss_fn(s.outputs, y) if len(x) else s.outputs.sum() * 0.0
            ctx.count_forward(len(x))
            self._call("after_forward")
            self._call("before_backward")
            s.optimizer.zero_grad(set_to_none=True)
            if self.world > 1:  # DDP averages over processes: weight each slice's mean by its share
                (s.loss * (len(x) * self.world / n_batch)).backward()
            else:
                s.loss.backward()
            self._call("after_backward")
            self._call("before_optimizer_step")
            if not s.skip_step:
                s.optimizer.step()
            self._call("after_optimizer_step")
            loss_sum += s.loss.detach() * len(x)
            seen += len(x)
            s.step += 1
            self.warmup.after_step()
        self.warmup.end()
        if self.perf.warmup_steps:
            ctx.extra.update(warmup_steps=float(self.perf.warmup_steps), warmup_time_s=self.warmup.elapsed)
        if s.scheduler is not None:
            s.scheduler.step()
        if self.world > 1:  # the whole batch's loss and the forward passes of every process
            total, seen, done = D.all_sum([float(loss_sum), seen, ctx.forward_evals - forwards], ctx.device)
            ctx.forward_evals = forwards + int(done)
            return torch.tensor(total / max(seen, 1))
        return loss_sum / max(seen, 1)

    def _evaluate(self, **kwargs: Any) -> dict[str, float]:
        """``ctx.evaluate`` of the model; in several processes on the gathered predictions (with
        rank 0's buffers), so that every process records the same row and takes the same decisions."""
        s = self.state
        s.model.eval()
        if self.world == 1:
            return self.ctx.evaluate(s.model, s.epoch, s.step, **kwargs)
        D.broadcast_buffers(s.model)
        return self.ctx.evaluate(D.gathered(s.model), s.epoch, s.step, **kwargs)

    def fit(self) -> TrainState:
        s, ctx = self.state, self.ctx
        saved = ctx.load_checkpoint()
        if saved is not None:
            self._restore(saved)
        else:
            with ctx.clock.measuring():
                data_init = getattr(s.model, "data_init", None)
                if callable(data_init):  # a model that initialises from the training data (e.g. whitening)
                    data_init(ctx.data.x_train)
                self._call("fit_start")
        # (the clock a resume restored; the warm-up time of a resumed trial so far)
        self.warmup = P.Warmup(ctx.clock, self.perf.warmup_steps, ctx.device,
                               elapsed=float(ctx.extra.get("warmup_time_s", 0.0)))
        bar = tqdm(total=self.epochs, initial=s.epoch, desc=f"{ctx.experiment}/{ctx.method}/seed{ctx.seed}",
                   disable=not ctx.progress or not D.is_main(), mininterval=1.0, dynamic_ncols=True)
        quality = ctx.workload.target_metric
        train_loss = torch.tensor(float("nan"))  # no epoch may run (resumed at the end, or stopped)
        while s.epoch < self.epochs and not s.stop:
            with ctx.clock.measuring():
                self._call("epoch_start")
                train_loss = self._run_epoch()
            s.epoch += 1
            s.evaluated = s.epoch % self.eval_every == 0 or s.epoch == self.epochs
            if s.evaluated:
                s.last_eval = self._evaluate(decision=self.decides_on_validation, final=s.epoch == self.epochs,
                                             train_loss=float(train_loss))
                bar.set_postfix({quality: f"{s.last_eval[quality]:.4g}"}, refresh=False)
            with ctx.clock.measuring():
                self._call("epoch_end")
            # No checkpoint at the epoch training ends: a resume from it would train past the stop.
            # (rank 0 saves; every process loads it on resume)
            if (D.is_main() and s.epoch < self.epochs and not s.stop
                    and ctx.checkpoint_due(s.epoch, self.checkpoint_every)):
                ctx.save_checkpoint(self._checkpoint_state())
            bar.update(1)
        bar.close()
        if not ctx.history or ctx.history[-1]["epoch"] != s.epoch:  # stopped early between evaluations
            s.last_eval = self._evaluate(final=True, train_loss=float(train_loss))
        elif not ctx.test_every_eval:  # stopped early at an evaluation that did not score the test split
            s.model.eval()
            ctx.score_final_test()
        with ctx.clock.measuring():
            self._call("fit_end")
        return s


def gradient_descent(ctx: RunContext, hparams: GradientConfig | dict[str, Any],
                     hooks: Sequence[Hook] = ()) -> TrainState:
    """The standard baseline on any workload: build its model, train with the named optimizer,
    the learning-rate schedule and (if set) the plateau stop of *hparams* (see ``GradientConfig``)."""
    cfg = hparams if isinstance(hparams, GradientConfig) else H.parse(GradientConfig, hparams, "gradient-descent")
    model = ctx.workload.build_model()
    opt_kwargs: dict[str, Any] = {"lr": cfg.lr}
    if cfg.weight_decay is not None:
        opt_kwargs["weight_decay"] = cfg.weight_decay
    if cfg.optimizer == "sgd" and cfg.momentum is not None:
        opt_kwargs["momentum"] = cfg.momentum
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), **opt_kwargs)
    epochs = cfg.epochs or ctx.workload.max_epochs
    all_hooks: list[Hook] = []
    if cfg.lr_schedule != "none" or cfg.warmup_epochs:
        all_hooks.append(LRSchedule(cfg, epochs))
    all_hooks += list(hooks)
    if cfg.plateau_patience is not None:
        all_hooks.append(PlateauStop(cfg.plateau_patience, cfg.plateau_min_delta))
    trainer = Trainer(
        ctx, model, optimizer,
        epochs=epochs,
        batch_size=cfg.batch_size or ctx.workload.batch_size,
        hooks=all_hooks,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        performance=P.resolve(ctx.device, ctx.scale, precision=cfg.precision, tf32=cfg.tf32,
                              channels_last=cfg.channels_last, compile=cfg.compile,
                              deterministic=cfg.deterministic, warmup_steps=cfg.warmup_steps),
    )
    return trainer.fit()


def split_gradient_hparams(hparams: dict[str, Any], config: type | None, owner: str) -> tuple[GradientConfig, Any]:
    """The core's gradient-descent hyper-parameters and the method's own (*config*, a dataclass
    of ``hp`` fields; None: the method has none), each validated; an unknown key names both sets."""
    own = H.parse(config, hparams, owner, ignore=GD_KEYS) if config is not None else None
    if config is None:
        for key in hparams:
            if key not in GD_KEYS:
                raise unknown(f"{owner} hyper-parameter", key, GD_KEYS)
    gd = H.parse(GradientConfig, {k: v for k, v in hparams.items() if k in GD_KEYS}, owner)
    return gd, own


HookFactory = Callable[[RunContext, Any, GradientConfig], Sequence[Hook]]


def gradient_method(name: str, description: str, *, config: type | None = None,
                    hooks: HookFactory | None = None, fixed: dict[str, Any] | None = None,
                    is_baseline: bool = False,
                    on_workload: Callable[[Workload], Mapping[str, Any]] | None = None,
                    distributed: bool | None = None) -> Method:
    """A ``Method`` that is the core's gradient descent plus the method's hooks.

    Args:
        config: the method's own hyper-parameters, a frozen dataclass of ``repro.hparams.hp`` fields.
        hooks: ``hooks(ctx, own_config, gradient_config)`` -> the hooks of one trial (it may also
            prepare ``ctx``, e.g. restrict the training data).
        fixed: the switches that define the method (merged over the experiment's hyper-parameters).
        on_workload: its setup on a shared (leaderboard) workload (see ``Method.on_workload``);
            default: the method's own defaults on any workload (``{}``). Raise
            ``repro.paper.NotApplicable`` for workloads it cannot train.
        distributed: it trains the same in several processes (see ``Hook.distributed``; its hooks
            must declare it too). Default: only a method without hooks (plain gradient descent).
    """
    def fit(ctx: RunContext, hparams: dict[str, Any]) -> None:
        gd, own = split_gradient_hparams(hparams, config, name)
        gradient_descent(ctx, gd, hooks=list(hooks(ctx, own, gd)) if hooks else [])

    def validate(hparams: dict[str, Any]) -> None:
        split_gradient_hparams(hparams, config, name)

    doc = H.document(GradientConfig) + ("\n" + H.document(config) if config is not None else "")
    return Method(name, fit, description, fixed=dict(fixed or {}), validate=validate, is_baseline=is_baseline,
                  hparams_doc=doc, on_workload=on_workload if on_workload is not None else _own_defaults,
                  gradient=True, distributed=hooks is None if distributed is None else distributed,
                  plain=hooks is None and config is None and not fixed)


def _own_defaults(workload: Workload) -> dict[str, Any]:
    return {}
