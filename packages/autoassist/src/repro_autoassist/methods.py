"""sgd / loss_is / autoassist as methods of the core: ``gradient_method`` plus one selection hook.

All three run the same ``InstanceShrinking`` hook (the fixed switch ``selection`` = all /
loss_is / autoassist), so they share the optimizer, the data order and the instance accounting
and differ only in which instances of each mini-batch are back-propagated. None of them decides
anything from evaluations: every evaluation is off the training clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method

from repro_autoassist.assistant import Assistant, acceptance_prob
from repro_autoassist.configuration_autoassist import AutoAssistConfig
from repro_autoassist.kernels import check_kernel, select
from repro_autoassist.shrinking import AsyncExchange, SyncExchange


def _now(device: torch.device) -> float:
    """``perf_counter`` once the device has finished the work queued so far (CUDA runs
    asynchronously: without the sync the overhead fraction would time kernel launches only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class InstanceShrinking(Hook):
    """Batch selection for ``all`` / ``loss_is`` / ``autoassist``; records the instance counts.

    Adds to each evaluation row ``instances_backpropagated`` (cumulative) and, at fit end, to
    ``ctx.extra``: instances_backpropagated, instances_to_target (first evaluation reaching the
    workload's target; NaN if never), backprop_epochs_to_target (that / training-set size),
    acceptance_rate (accepted / candidate instances), leftover_instances ("fill": accepted but
    still buffered at the end, never back-propagated), empty_batches (candidate batches that gave
    no optimizer step: nothing accepted under "thin", fewer than B buffered under "fill"),
    assistant_overhead_frac (Boss-side selection time / Boss step time), assistant_worker_time_s,
    reports_dropped, assistant_failed (0/1), fallback_batches.

    Under "fill", B is the size of the first candidate batch the hook sees (the Trainer's batch
    size, or the training-set size if that is smaller); it is saved in the checkpoint.
    """

    def __init__(self, cfg: AutoAssistConfig, exchange_factory: Any = None) -> None:
        self.cfg = cfg
        self.exchange_factory = exchange_factory  # tests inject failing / slow assistants
        self.exchange: SyncExchange | AsyncExchange | None = None
        self.gen: torch.Generator | None = None
        self._pending: dict[str, Any] | None = None
        self.candidates = 0
        self.accepted = 0
        self.backprop = 0
        self.empty_batches = 0
        self.fallback_batches = 0
        self.assist_time_s = 0.0
        self.step_time_s = 0.0
        self._t_step = 0.0
        self.fill_size: int | None = None  # B ("fill")
        self._buf_x: torch.Tensor | None = None  # accepted, not yet back-propagated ("fill"), FIFO
        self._buf_y: torch.Tensor | None = None

    @property
    def buffered(self) -> int:
        """Accepted instances waiting in the "fill" buffer."""
        return 0 if self._buf_y is None else len(self._buf_y)

    # -- set-up (fit_start does not run on resume, so everything is lazy) --
    def _ensure(self, state: TrainState) -> None:
        if self.gen is not None:
            return
        ctx = state.ctx
        self.gen = torch.Generator().manual_seed(ctx.seed + self.cfg.assistant_seed_offset)
        if self.cfg.selection == "autoassist":
            dim = ctx.data.x_train[:1].reshape(1, -1).shape[1]
            classes = int(ctx.workload.model_kwargs.get("num_classes") or getattr(ctx.data, "num_classes", 0)
                          or int(ctx.data.y_train.max()) + 1)
            assistant = Assistant.create(dim, classes, self.gen, ctx.device, lr=self.cfg.assistant_lr,
                                         l2=self.cfg.assistant_l2, alpha=self.cfg.ema)
            if self._pending is not None:
                assistant.load_state_dict(self._pending["assistant"])
            if self.exchange_factory is not None:
                self.exchange = self.exchange_factory(assistant)
            elif self.cfg.mode == "async":
                self.exchange = AsyncExchange(assistant, self.cfg.queue_size)
            else:
                self.exchange = SyncExchange(assistant)
        if self._pending is not None:
            self.gen.set_state(self._pending["gen"])
            self._pending = None

    def fit_start(self, state: TrainState) -> None:
        self._ensure(state)

    def epoch_start(self, state: TrainState) -> None:
        self._ensure(state)

    # -- the Boss's step --
    def _fill(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the accepted (x, y) to the buffer; return its first B, or an empty batch if < B."""
        assert self.fill_size is not None
        if self.buffered:
            x = torch.cat([self._buf_x.to(x.device), x])  # type: ignore[union-attr]
            y = torch.cat([self._buf_y.to(y.device), y])  # type: ignore[union-attr]
        b = self.fill_size
        if len(y) < b:
            self._buf_x, self._buf_y = x, y
            return x[:0], y[:0]
        self._buf_x, self._buf_y = x[b:], y[b:]
        return x[:b], y[:b]

    def _coins(self, n: int) -> torch.Tensor:
        """n uniform acceptance coins from the hook's own generator (tests substitute fixed coins)."""
        return torch.rand(n, generator=self.gen)

    def select_batch(self, state: TrainState, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._ensure(state)
        self._t_step = _now(x.device)
        n = len(x)
        self.candidates += n
        sel = self.cfg.selection
        if sel == "all" or n == 0:
            self.accepted += n
            return x, y
        if self.fill_size is None:
            self.fill_size = n
        t0 = _now(x.device)
        coins = self._coins(n).to(x.device)
        idx: torch.Tensor | None
        if sel == "loss_is":
            model = state.model
            was_training = model.training
            model.eval()
            with torch.no_grad():
                losses = F.cross_entropy(model(x), y, reduction="none")
            model.train(was_training)
            state.ctx.count_forward(n)
            p = losses / losses.max().clamp_min(1e-12)
            keep = coins < acceptance_prob(p, self.cfg.base_prob)
            idx = keep.nonzero().squeeze(1)
        else:
            assert self.exchange is not None
            if self.exchange.failed:  # fall back to plain sampling (accept all), recorded at fit end
                self.fallback_batches += 1
                state.ctx.extra["assistant_failed"] = 1.0
                idx = None
            else:
                w, u = self.exchange.current()
                idx = select(x.reshape(n, -1).float(), y, w, u, self.cfg.base_prob, coins, self.cfg.kernel)
        xs, ys = (x, y) if idx is None else (x[idx], y[idx])
        self.accepted += len(ys)
        if self.cfg.batching == "fill":
            xs, ys = self._fill(xs, ys)
        now = _now(x.device)
        self.assist_time_s += now - t0
        if len(ys) == 0:
            self.empty_batches += 1  # the Trainer skips an empty batch (no forward, no step)
            self.step_time_s += now - self._t_step  # its selection still cost Boss time
        return xs, ys

    def after_forward(self, state: TrainState) -> None:
        assert state.y is not None and state.outputs is not None
        self.backprop += len(state.y)
        if self.cfg.selection != "autoassist" or self.exchange is None or self.exchange.failed:
            return
        t0 = _now(state.y.device)
        losses = F.cross_entropy(state.outputs.detach(), state.y, reduction="none")
        assert state.x is not None
        self.exchange.report(state.x.reshape(len(state.x), -1), state.y, losses)
        self.assist_time_s += _now(state.y.device) - t0

    def after_optimizer_step(self, state: TrainState) -> None:
        assert state.y is not None
        self.step_time_s += _now(state.y.device) - self._t_step

    def epoch_end(self, state: TrainState) -> None:
        if state.evaluated and state.ctx.history:
            state.ctx.history[-1]["instances_backpropagated"] = float(self.backprop)
        if self.exchange is not None and self.exchange.failed:
            state.ctx.extra["assistant_failed"] = 1.0

    def fit_end(self, state: TrainState) -> None:
        ctx = state.ctx
        if self.exchange is not None:
            self.exchange.close()
        if ctx.history and "instances_backpropagated" not in ctx.history[-1]:
            ctx.history[-1]["instances_backpropagated"] = float(self.backprop)
        hit = ctx.target_row()
        to_target = hit.get("instances_backpropagated", math.nan) if hit else math.nan
        n_train = len(ctx.data.x_train)
        failed = self.exchange is not None and self.exchange.failed
        ctx.extra.update(
            instances_backpropagated=float(self.backprop),
            instances_to_target=float(to_target),
            backprop_epochs_to_target=float(to_target) / n_train,
            acceptance_rate=self.accepted / max(self.candidates, 1),
            leftover_instances=float(self.buffered),
            empty_batches=float(self.empty_batches),
            assistant_overhead_frac=self.assist_time_s / self.step_time_s if self.step_time_s > 0 else 0.0,
            assistant_worker_time_s=float(self.exchange.worker_time_s) if self.exchange else 0.0,
            reports_dropped=float(self.exchange.dropped) if self.exchange else 0.0,
            assistant_failed=1.0 if failed else 0.0,
            fallback_batches=float(self.fallback_batches),
        )

    # -- checkpoints --
    def _buffer_cpu(self) -> list[torch.Tensor] | None:
        if self._buf_x is None or self._buf_y is None or not len(self._buf_y):
            return None
        return [self._buf_x.detach().cpu().clone(), self._buf_y.detach().cpu().clone()]

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gen": self.gen.get_state() if self.gen is not None else None,
            "counts": [self.candidates, self.backprop, self.empty_batches, self.fallback_batches, self.accepted],
            "times": [self.assist_time_s, self.step_time_s],
            "fill_size": self.fill_size,
            "buffer": self._buffer_cpu(),
        }
        if self.exchange is not None:
            self.exchange.drain()  # async: the snapshot must include every report made so far
            out["assistant"] = self.exchange.assistant.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        counts = [int(v) for v in state["counts"]]
        self.candidates, self.backprop, self.empty_batches, self.fallback_batches = counts[:4]
        self.accepted = counts[4] if len(counts) > 4 else self.backprop
        self.assist_time_s, self.step_time_s = (float(v) for v in state["times"])
        fill = state.get("fill_size")
        self.fill_size = None if fill is None else int(fill)
        buf = state.get("buffer")
        self._buf_x, self._buf_y = (buf[0], buf[1]) if buf is not None else (None, None)
        if state.get("gen") is not None:
            self._pending = {"gen": state["gen"], "assistant": state.get("assistant")}


def _hooks(ctx: RunContext, cfg: AutoAssistConfig, gd: GradientConfig) -> list[Hook]:
    check_kernel(cfg.kernel, torch.device(ctx.device))
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
