"""The strong, fast CIFAR-10 baseline: a recipe in the style of airbench94 on the core's Trainer.

Every CIFAR speed-up here is a ratio against a baseline; a slow baseline inflates all of them. The
field's bar is airbench94 (Keller Jordan, github.com/KellerJordan/cifar10-airbench,
``legacy/airbench94.py``): 94% CIFAR-10 test accuracy in 3.83 s on an A100 (n=1000 runs). This
module re-implements its recipe (own code, read from that file and the ``airbench`` 0.1.8 package)
as one core method on the workload ``cifar10_fast`` (``repro.workloads``; model ``airbench_cifar``
in ``repro.models``, test-time augmentation level 2):

- **Net**: whitening 2x2 convolution (weights fixed from the eigenvectors of the training patches'
  covariance, bias trained for the first ``whiten_bias_epochs``), three conv groups (64/256/256
  channels: conv, max-pool, batch norm without scale, GELU, conv, batch norm, GELU), max-pool,
  linear head scaled by 1/9.
- **Optimiser**: SGD with Nesterov momentum 0.85, airbench's decoupled learning rate 11.5 and
  weight decay 0.0153 per 1024 examples, batch-norm biases at 64x the learning rate, label
  smoothing 0.2, a per-step triangular schedule (0.2 -> 1 at 23% of the steps -> 0.07), a
  Lookahead-style EMA every 5 steps (decay 0.95^5 (t/T)^3; the EMA weights at the end),
  9.9 epochs of 1024-sample batches (the last incomplete batch of an epoch dropped).
- **Data**: per-channel CIFAR normalisation (in the model), random flip and random translation by
  up to 2 pixels with reflect padding.

airbench sums the loss over the batch; the Trainer takes mean-reduced losses, so the PyTorch
learning rate here is airbench's times the batch size and PyTorch's weight-decay factor airbench's
divided by it (the same update: ``tests/test_fast_cifar.py`` checks two steps against airbench's).

Differences, stated: airbench flips every image on alternate epochs after one random pre-flip
("alternating flip"); here each batch is flipped at random (the Trainer sees no sample identity).
airbench tunes and reports on the test set; here the target is read on a validation split carved
out of the training set (45k/5k), and test accuracy is the reported number. The EMA starts from the
whitened net (airbench starts it one step earlier, a difference that vanishes at its first update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from repro import hparams as H
from repro import performance as P
from repro.errors import ReproError
from repro.hparams import hp
from repro.paper import Method
from repro.run import RunContext
from repro.trainer import Hook, Trainer, TrainState

WORKLOAD = "cifar10_fast"


@dataclass(frozen=True)
class FastCifarConfig:
    """The recipe's hyper-parameters (airbench94's values; lr and weight decay in its decoupled form)."""

    train_epochs: float = hp(9.9, "epochs of optimizer steps (fractional: the steps stop part-way into the last)",
                             low=0, low_open=True)
    batch_size: int = hp(1024, "mini-batch size (incomplete last batches are dropped)", low=1)
    lr: float = hp(11.5, "learning rate per 1024 examples, decoupled from the momentum (airbench's form)",
                   low=0, low_open=True)
    momentum: float = hp(0.85, "Nesterov momentum", low=0, high=1, high_open=True)
    weight_decay: float = hp(0.0153, "weight decay per 1024 examples, decoupled from the learning rate", low=0)
    bias_scaler: float = hp(64.0, "learning-rate multiplier of the batch-norm biases", low=0, low_open=True)
    label_smoothing: float = hp(0.2, "label smoothing of the training loss", low=0, high=1, high_open=True)
    whiten_bias_epochs: int = hp(3, "epochs the whitening layer's bias trains before it is frozen", low=0)
    lookahead_every: int = hp(5, "steps between EMA (lookahead) updates (0: no EMA)", low=0)
    eval_every: int = hp(1, "evaluate every this many epochs (and after the last)", low=1)
    checkpoint_every: int = hp(0, "also checkpoint every this many epochs", low=0)
    deterministic: bool | None = hp(None, "deterministic CUDA algorithms (None: the scale's default)")
    precision: str | None = hp(None, "training precision on CUDA: fp32 or bf16 autocast (None: bf16 on CUDA)",
                               choices=P.PRECISIONS)
    compile: bool | None = hp(None, "torch.compile the training forward on CUDA (None: off)")
    warmup_steps: int | None = hp(None, "first steps off the training clock (None: the device's default)", low=0)


def torch_sgd_settings(cfg: FastCifarConfig) -> dict[str, float]:
    """airbench's decoupled lr / weight decay -> PyTorch SGD settings for a *mean*-reduced loss.

    airbench: ``lr_sum = lr / (1024 (1 + 1/(1 - momentum)))`` on the batch's summed loss and
    ``wd_sum = weight_decay * batch / (1024 (1 + 1/(1 - momentum)))`` as PyTorch's per-group
    ``weight_decay = wd_sum / lr_group`` (a decay of ``wd_sum * p`` per step in every group). A
    summed loss is the batch size times the mean loss, so the same update on the mean loss takes
    the learning rate ``lr_sum * batch`` and, for the same decay per step, the PyTorch weight decay
    ``wd_sum / lr_group`` of *that* learning rate (airbench's divided by the batch size).
    """
    kilostep = 1024 * (1 + 1 / (1 - cfg.momentum))
    lr_sum = cfg.lr / kilostep
    wd_sum = cfg.weight_decay * cfg.batch_size / kilostep
    lr = lr_sum * cfg.batch_size
    lr_bias = lr * cfg.bias_scaler
    return {"lr": lr, "lr_bias": lr_bias, "weight_decay": wd_sum / lr, "weight_decay_bias": wd_sum / lr_bias}


def triangle_schedule(total_steps: int, start: float = 0.2, peak_at: float = 0.23, end: float = 0.07) -> torch.Tensor:
    """The learning-rate multiplier for steps 0..total_steps: linear from *start* to 1 at step
    ``int(peak_at * total_steps)``, then linear to *end* at the last step."""
    peak = int(peak_at * total_steps)
    t = torch.arange(total_steps + 1, dtype=torch.float64)
    up = start + (1 - start) * t / max(peak, 1)
    down = 1 + (end - 1) * (t - peak) / max(total_steps - peak, 1)
    return torch.where(t < peak, up, down).float()


def ema_decay(step: int, total_steps: int) -> float:
    """The lookahead EMA's decay at *step*: ``0.95**5 * (step / total_steps)**3`` (little averaging
    early, more as the learning rate comes down)."""
    return 0.95 ** 5 * (step / total_steps) ** 3


class FastCifarRecipe(Hook):
    """The recipe's per-step parts as one Trainer hook (the whitening init is the net's own
    ``data_init``, which the Trainer runs on the clock): the whitening-bias freeze, drop-last and
    the fractional-epoch step cap, the per-step triangular schedule and the lookahead EMA. Its
    state (the EMA) is saved in checkpoints; the schedule follows the step count."""

    def __init__(self, cfg: FastCifarConfig, total_steps: int) -> None:
        self.cfg, self.total_steps = cfg, total_steps
        self.schedule = triangle_schedule(total_steps)
        self.base_lrs: list[float] = []
        self.ema: dict[str, torch.Tensor] = {}

    def _set_lr(self, state: TrainState, step: int) -> None:
        """The learning rates of the step after *step* steps."""
        factor = float(self.schedule[min(step, self.total_steps)])
        for group, base in zip(state.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def fit_start(self, state: TrainState) -> None:
        self._init_lrs(state)
        self.ema = {k: v.detach().clone() for k, v in state.model.state_dict().items() if v.is_floating_point()}

    def _init_lrs(self, state: TrainState) -> None:
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in state.optimizer.param_groups]
        for g, base in zip(state.optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = base
        self._set_lr(state, state.step)

    def epoch_start(self, state: TrainState) -> None:
        if not self.base_lrs:  # resumed from a checkpoint (fit_start does not run then)
            self._init_lrs(state)
        state.model.whiten.bias.requires_grad_(state.epoch < self.cfg.whiten_bias_epochs)

    def select_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(x) < self.cfg.batch_size or state.step >= self.total_steps:  # drop-last; 9.9 epochs
            return x[:0], y[:0]
        return x, y

    @torch.no_grad()
    def after_optimizer_step(self, state: TrainState) -> None:
        done = state.step + 1  # the Trainer counts this step after the hooks
        if self.cfg.lookahead_every:
            if done % self.cfg.lookahead_every == 0:
                self._lookahead(state.model, ema_decay(done, self.total_steps))
            if done >= self.total_steps:  # the last step: the net takes the EMA's weights
                self._lookahead(state.model, 1.0)
        self._set_lr(state, done)

    def _lookahead(self, model: nn.Module, decay: float) -> None:
        """EMA <- decay * EMA + (1 - decay) * weights, then weights <- EMA (every float entry of
        the state dict, batch-norm statistics included)."""
        for k, v in model.state_dict().items():
            if k in self.ema:
                self.ema[k].lerp_(v, 1 - decay)
                v.copy_(self.ema[k])

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema = dict(state["ema"])


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    if n_train < batch_size:
        raise ReproError(f"fast CIFAR recipe: batch_size {batch_size} is larger than the {n_train} training samples "
                         f"(incomplete batches are dropped, so no step would run)")
    return n_train // batch_size


def fit(ctx: RunContext, hparams: dict[str, Any]) -> TrainState:
    """Train ``ctx.workload``'s model (an ``airbench_cifar`` net) with the recipe."""
    cfg = H.parse(FastCifarConfig, hparams, "fast CIFAR recipe")
    model = ctx.workload.build_model()
    if not hasattr(model, "whiten"):
        raise ReproError(f"fast CIFAR recipe: workload {ctx.workload.name!r} has model {ctx.workload.model!r}, which "
                         f"has no whitening layer; use a workload with model 'airbench_cifar' (e.g. {WORKLOAD!r})")
    total = math.ceil(steps_per_epoch(len(ctx.data.x_train), cfg.batch_size) * cfg.train_epochs)
    sgd = torch_sgd_settings(cfg)
    model = model.to(ctx.device)
    biases = [p for n, p in model.named_parameters() if ".norm" in n and p.requires_grad]
    others = [p for n, p in model.named_parameters() if ".norm" not in n and p.requires_grad]
    optimizer = torch.optim.SGD([
        {"params": biases, "lr": sgd["lr_bias"], "weight_decay": sgd["weight_decay_bias"]},
        {"params": others, "lr": sgd["lr"], "weight_decay": sgd["weight_decay"]},
    ], momentum=cfg.momentum, nesterov=True)
    smoothing = cfg.label_smoothing

    def loss_fn(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, y, label_smoothing=smoothing)

    precision = cfg.precision if cfg.precision is not None else ("bf16" if ctx.device.type == "cuda" else None)
    trainer = Trainer(ctx, model, optimizer, epochs=math.ceil(cfg.train_epochs), batch_size=cfg.batch_size,
                      hooks=[FastCifarRecipe(cfg, total)], eval_every=cfg.eval_every,
                      checkpoint_every=cfg.checkpoint_every, loss_fn=loss_fn,
                      performance=P.resolve(ctx.device, ctx.scale, precision=precision, channels_last=True,
                                            tf32=True, compile=cfg.compile, deterministic=cfg.deterministic,
                                            warmup_steps=cfg.warmup_steps))
    ctx.extra["total_steps"] = float(total)
    return trainer.fit()


def validate(hparams: dict[str, Any]) -> None:
    H.parse(FastCifarConfig, hparams, "fast CIFAR recipe")


METHOD = Method("fast_cifar", fit, "the airbench94-style CIFAR-10 recipe (whitening net, Nesterov SGD, label "
                "smoothing, triangular schedule, lookahead EMA, flip + translate, TTA)", validate=validate,
                is_baseline=True, hparams_doc=H.document(FastCifarConfig))

__all__ = ["FastCifarConfig", "FastCifarRecipe", "METHOD", "WORKLOAD", "ema_decay", "fit", "steps_per_epoch",
           "torch_sgd_settings", "triangle_schedule"]
