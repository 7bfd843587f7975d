"""The one gradient training loop. Methods change it only through hooks.

Hook points, in the order they fire::

    fit_start
    per epoch:  epoch_start
                per batch:  select_batch -> before_forward -> after_forward
                            -> before_backward -> after_backward
                            -> before_optimizer_step -> after_optimizer_step
                (scheduler step, evaluation with the clock paused)
                epoch_end
    fit_end

A hook sees the mutable ``TrainState``; it may replace the batch in ``select_batch``, set
``state.skip_step`` to skip an optimizer step, or ``state.stop`` to end training early.
Everything a hook does (except evaluation) counts as training time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from repro.errors import ReproError, unknown
from repro.run import RunContext
from repro.workloads import augment_batch


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


class Hook:
    """Base class: override the events you need; ``state_dict`` is saved in checkpoints."""

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
    """Stop when the training loss has not improved by ``min_delta`` (relative) for ``patience`` evals.

    Used for "run to convergence" baselines.
    """

    def __init__(self, patience: int = 20, min_delta: float = 1e-4) -> None:
        if patience < 1 or not min_delta >= 0:
            raise ReproError(f"PlateauStop: patience must be >= 1 and min_delta >= 0, got {patience}, {min_delta}")
        self.patience, self.min_delta = patience, min_delta
        self.best = float("inf")
        self.bad = 0

    def epoch_end(self, state: TrainState) -> None:
        loss = state.last_eval.get("train_loss")
        if not state.evaluated or loss is None:
            return
        if loss < self.best * (1 - self.min_delta):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
            state.stop = self.bad >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def build_optimizer(name: str, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name](params, **kwargs)


class Trainer:
    """Mini-batch training of ``model`` on ``ctx.workload`` for ``epochs`` epochs.

    Args:
        eval_every: evaluate every this many epochs (and always after the last one).
        checkpoint_every: save a resumable checkpoint every this many epochs (0: never).
        hooks: the method's plug-ins, called in order at every hook point.
    """

    def __init__(self, ctx: RunContext, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 epochs: int, batch_size: int, scheduler: Any = None, hooks: Sequence[Hook] = (),
                 eval_every: int = 1, checkpoint_every: int = 0,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
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
        self.state = TrainState(ctx=ctx, model=model.to(ctx.device), optimizer=optimizer, scheduler=scheduler)

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
        order = torch.randperm(len(x_all), generator=ctx.generator).to(ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        seen = 0
        s.model.train()
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            x, y = x_all[idx], y_all[idx]
            if ctx.workload.augment:  # training batches only; default off
                x = augment_batch(ctx.workload.augment, x, ctx.generator)
            for hook in self.hooks:
                x, y = hook.select_batch(s, x, y)
            if len(x) == 0:  # a selection hook may drop a whole batch
                continue
            s.x, s.y, s.skip_step = x, y, False
            self._call("before_forward")
            s.outputs = s.model(x)
            s.loss = self.loss_fn(s.outputs, y)
            ctx.count_forward(len(x))
            self._call("after_forward")
            self._call("before_backward")
            s.optimizer.zero_grad(set_to_none=True)
            s.loss.backward()
            self._call("after_backward")
            self._call("before_optimizer_step")
            if not s.skip_step:
                s.optimizer.step()
            self._call("after_optimizer_step")
            loss_sum += s.loss.detach() * len(x)
            seen += len(x)
            s.step += 1
        if s.scheduler is not None:
            s.scheduler.step()
        return loss_sum / max(seen, 1)

    def fit(self) -> TrainState:
        s, ctx = self.state, self.ctx
        saved = ctx.load_checkpoint()
        if saved is not None:
            self._restore(saved)
        else:
            with ctx.clock.measuring():
                self._call("fit_start")
        bar = tqdm(total=self.epochs, initial=s.epoch, desc=f"{ctx.experiment}/{ctx.method}/seed{ctx.seed}",
                   disable=not ctx.progress, mininterval=1.0, dynamic_ncols=True)
        quality = ctx.workload.quality_metric
        train_loss = torch.tensor(float("nan"))  # no epoch may run (resumed at the end, or stopped)
        while s.epoch < self.epochs and not s.stop:
            with ctx.clock.measuring():
                self._call("epoch_start")
                train_loss = self._run_epoch()
            s.epoch += 1
            s.evaluated = s.epoch % self.eval_every == 0 or s.epoch == self.epochs
            if s.evaluated:
                s.model.eval()
                s.last_eval = ctx.evaluate(s.model, s.epoch, s.step, train_loss=float(train_loss))
                bar.set_postfix({quality: f"{s.last_eval[quality]:.4g}"}, refresh=False)
            with ctx.clock.measuring():
                self._call("epoch_end")
            # No checkpoint at the epoch training ends: a resume from it would train past the stop.
            if (self.checkpoint_every and s.epoch % self.checkpoint_every == 0 and s.epoch < self.epochs
                    and not s.stop):
                ctx.save_checkpoint(self._checkpoint_state())
            bar.update(1)
        bar.close()
        if not ctx.history or ctx.history[-1]["epoch"] != s.epoch:  # stopped early between evaluations
            s.model.eval()
            s.last_eval = ctx.evaluate(s.model, s.epoch, s.step, train_loss=float(train_loss))
        with ctx.clock.measuring():
            self._call("fit_end")
        return s


def gradient_descent(ctx: RunContext, hparams: dict[str, Any], hooks: Sequence[Hook] = ()) -> TrainState:
    """The standard baseline on any workload: build its model, train with the named optimizer.

    hparams: optimizer (sgd|adam|adamw), lr, epochs (default: workload.max_epochs), batch_size
    (default: workload.batch_size), weight_decay, momentum (sgd), eval_every, checkpoint_every,
    plateau_patience / plateau_min_delta (stop at convergence when set).
    """
    model = ctx.workload.build_model()
    opt_kwargs: dict[str, Any] = {"lr": float(hparams.get("lr", 1e-3))}
    if "weight_decay" in hparams:
        opt_kwargs["weight_decay"] = float(hparams["weight_decay"])
    if hparams.get("optimizer", "adam") == "sgd" and "momentum" in hparams:
        opt_kwargs["momentum"] = float(hparams["momentum"])
    optimizer = build_optimizer(hparams.get("optimizer", "adam"), model.parameters(), **opt_kwargs)
    hooks = list(hooks)
    if "plateau_patience" in hparams:
        hooks.append(PlateauStop(int(hparams["plateau_patience"]), float(hparams.get("plateau_min_delta", 1e-4))))
    trainer = Trainer(
        ctx, model, optimizer,
        epochs=int(hparams.get("epochs", ctx.workload.max_epochs)),
        batch_size=int(hparams.get("batch_size", ctx.workload.batch_size)),
        hooks=hooks,
        eval_every=int(hparams.get("eval_every", 1)),
        checkpoint_every=int(hparams.get("checkpoint_every", 0)),
    )
    return trainer.fit()


GD_KEYS = {"optimizer", "lr", "epochs", "batch_size", "weight_decay", "momentum", "eval_every",
           "checkpoint_every", "plateau_patience", "plateau_min_delta"}


def validate_gradient_hparams(hparams: dict[str, Any]) -> None:
    """Reject unknown keys and out-of-range values, naming the key."""
    for key in hparams:
        if key not in GD_KEYS:
            raise unknown("gradient-descent hyper-parameter", key, GD_KEYS)
    if hparams.get("optimizer", "adam") not in OPTIMIZERS:
        raise unknown("optimizer (key 'optimizer')", hparams["optimizer"], OPTIMIZERS)
    for key in ("lr",):
        if key in hparams and not (float(hparams[key]) > 0 and float(hparams[key]) < float("inf")):
            raise ReproError(f"hyper-parameter {key!r} must be a positive finite number, got {hparams[key]!r}")
    for key in ("epochs", "batch_size", "eval_every", "plateau_patience"):
        if key in hparams and (not isinstance(hparams[key], int) or hparams[key] < 1):
            raise ReproError(f"hyper-parameter {key!r} must be an integer >= 1, got {hparams[key]!r}")


def split_gradient_hparams(hparams: dict[str, Any], own_keys: set[str], owner: str) -> dict[str, Any]:
    """For methods built on ``gradient_descent``: reject keys that are neither the core's
    gradient-descent keys nor *own_keys* (naming *owner* and the valid choices), validate the
    gradient-descent ones and return them."""
    valid = GD_KEYS | set(own_keys)
    for key in hparams:
        if key not in valid:
            raise unknown(f"{owner} hyper-parameter", key, valid)
    gd = {k: v for k, v in hparams.items() if k in GD_KEYS}
    validate_gradient_hparams(gd)
    return gd
