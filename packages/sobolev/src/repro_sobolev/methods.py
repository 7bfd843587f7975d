"""Regular, Sobolev and stochastic Sobolev training as methods of the core: the core's gradient
descent (``repro.trainer.gradient_method``) plus two hooks.

* ``SobolevLoss`` replaces the Trainer's loss before the backward pass with the method's
  objective (``repro_sobolev.sobolev.sobolev_loss``) on the model's (value, input-gradient)
  outputs: values only (regular), values + gradients (Sobolev), values + random projections of
  the gradients (stochastic Sobolev). With ``derivatives="autograd"`` the network's gradient is
  differentiable (``create_graph=True``) while training, so ``loss.backward()`` is the double
  backpropagation of the paper. The three methods differ only in the fixed switch ``loss``.
* ``ProblemErrors`` adds to every evaluation row the per-problem test and validation errors the
  claims read (``test_value_mse_<function>_<size>``, ``test_grad_mse_<function>_<size>``, and
  over the functions at each size their mean ``..._mean_<size>`` and geometric mean
  ``..._log10_mean_<size>``, as the mean of log10), scored with the clock
  paused, like the core's own evaluation.

Core hook wanted (reported to the lead): the Trainer has no loss hook, so ``SobolevLoss``
overwrites ``state.loss`` in ``before_backward`` after the Trainer has computed the workload's
default loss (wasted, and NaN here because unobserved targets are NaN); and workloads cannot
declare their own metrics, so ``ProblemErrors`` appends them to the history row after
``ctx.evaluate`` (a second forward pass over the test grid). A ``Hook.compute_loss(state)`` and
workload-declared metric functions would remove both.

On shared (leaderboard) workloads: the Sobolev methods need derivative targets and raise
``NotApplicable`` on every workload whose dataset has none (all classification workloads, and the
core's regression workloads); the regular baseline runs anywhere, as the core's plain gradient
descent (no hooks) outside this package's workloads.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

from repro_sobolev.configuration_sobolev import SobolevConfig
from repro_sobolev.data import has_input_gradients, suite_problems, suite_sizes
from repro_sobolev.sobolev import gradient_errors, observed, random_directions, sobolev_loss, value_errors


TINY = 1e-30


class SobolevLoss(Hook):
    """Sets the model's derivative mode every epoch and replaces the loss before backward."""

    def __init__(self, cfg: SobolevConfig, problems: list[str], sizes: dict[str, int]) -> None:
        self.cfg, self.problems, self.sizes = cfg, problems, sizes

    def fit_start(self, state: TrainState) -> None:
        check_training_sets(state.ctx, self.problems, self.sizes)

    def epoch_start(self, state: TrainState) -> None:
        # Every epoch, not only at fit_start: a resumed run does not call fit_start.
        model = state.model
        model.fit_derivatives = self.cfg.loss != "value"
        model.derivatives = self.cfg.derivatives

    def before_backward(self, state: TrainState) -> None:
        pred, target = state.outputs, state.y
        directions = None
        if self.cfg.loss == "stochastic":
            # One direction per sample and problem, from the run's generator (saved in checkpoints).
            directions = random_directions(tuple(pred.shape[:2]), pred.shape[-1] - 1, state.ctx.generator)
            directions = directions.to(pred.device)
        state.loss = sobolev_loss(pred, target, self.cfg.loss, self.cfg.derivative_weight, directions)


def check_training_sets(ctx: RunContext, problems: list[str], sizes: dict[str, int]) -> None:
    """Each problem must have exactly its number of observed training points after the split."""
    y = ctx.data.y_train
    if y.dim() != 3 or y.shape[1] != len(problems) or y.shape[2] < 2:
        raise ReproError(f"workload {ctx.workload.name!r}: expected training targets (N, {len(problems)}, 1 + d), "
                         f"got {tuple(y.shape)}")
    counts = observed(y).sum(dim=0).long().tolist()
    for name, count in zip(problems, counts):
        if count != sizes[name]:
            raise ReproError(f"workload {ctx.workload.name!r}: problem {name!r} has {count} training points after the "
                             f"validation split, expected {sizes[name]} (the dataset's parameters no longer match "
                             f"the workload's val_fraction)")


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def problem_metrics(pred: torch.Tensor, target: torch.Tensor, problems: list[str], sizes: dict[str, int],
                    split: str) -> dict[str, float]:
    """Per-problem value and gradient MSE of *pred* against *target* ((N, P, 1 + d) each) and their
    log10, and over the functions of each training-set size their mean and the mean of their log10
    (an error of 0 counts as ``TINY``). Claims compare log10 errors: errors of one problem vary over
    seeds by factors, and a difference of logs is a (geometric-mean) ratio with a far narrower CI."""
    values = value_errors(pred.double(), target.double()).tolist()
    grads = gradient_errors(pred.double(), target.double()).tolist()
    out: dict[str, float] = {}
    for name, v, g in zip(problems, values, grads):
        out[f"{split}_value_mse_{name}"] = v
        out[f"{split}_grad_mse_{name}"] = g
        out[f"{split}_value_mse_log10_{name}"] = math.log10(max(v, TINY))
        out[f"{split}_grad_mse_log10_{name}"] = math.log10(max(g, TINY))
    for n in sorted(set(sizes.values())):
        members = [i for i, name in enumerate(problems) if sizes[name] == n]
        for kind, errs in (("value", values), ("grad", grads)):
            out[f"{split}_{kind}_mse_mean_{n}"] = sum(errs[i] for i in members) / len(members)
            # Geometric mean (as a mean of log10): no single function's scale decides it.
            out[f"{split}_{kind}_mse_log10_mean_{n}"] = (sum(math.log10(max(errs[i], TINY)) for i in members)
                                                        / len(members))
    return out


class ProblemErrors(Hook):
    """Adds the per-problem errors to each evaluation row (see the module docstring)."""

    def __init__(self, problems: list[str], sizes: dict[str, int]) -> None:
        self.problems, self.sizes = problems, sizes

    def _score(self, state: TrainState) -> None:
        ctx = state.ctx
        row = ctx.history[-1]
        with ctx.clock.paused():
            t0 = time.perf_counter()
            was_training = state.model.training
            state.model.eval()
            extra: dict[str, float] = {}
            for split, x, y in (("val", ctx.data.x_val, ctx.data.y_val), ("test", ctx.data.x_test, ctx.data.y_test)):
                extra.update(problem_metrics(predict(state.model, x), y, self.problems, self.sizes, split))
            state.model.train(was_training)
            ctx.eval_time_s += time.perf_counter() - t0
        row.update(extra)
        state.last_eval = row

    def epoch_end(self, state: TrainState) -> None:
        if state.evaluated:
            self._score(state)

    def fit_end(self, state: TrainState) -> None:
        # The Trainer's final evaluation after an early stop is not followed by epoch_end.
        history = state.ctx.history
        if history and f"test_value_mse_{self.problems[0]}" not in history[-1]:
            self._score(state)


def _hooks(ctx: RunContext, cfg: SobolevConfig, gd: GradientConfig) -> list[Hook]:
    if not has_input_gradients(ctx.workload):
        if cfg.loss != "value":
            raise NotApplicable(_why_not(ctx.workload))
        return []  # regular training elsewhere: the core's gradient descent with the workload's loss
    problems, sizes = suite_problems(ctx.workload), suite_sizes(ctx.workload)
    return [SobolevLoss(cfg, problems, sizes), ProblemErrors(problems, sizes)]


def _why_not(workload: Workload) -> str:
    from repro import catalog

    task = catalog.get_dataset(workload.dataset).task
    what = "class labels" if task == "classification" else "values only"
    return (f"Sobolev training fits the input derivatives of the targets, and workload {workload.name!r} "
            f"(dataset {workload.dataset!r}) has none: its targets are {what}")


def needs_input_gradients(workload: Workload) -> dict[str, Any]:
    """Setup of the Sobolev methods on a shared workload: their defaults where the targets carry
    input derivatives (this package's workloads), ``NotApplicable`` everywhere else."""
    if not has_input_gradients(workload):
        raise NotApplicable(_why_not(workload))
    return {}


def runs_anywhere(workload: Workload) -> dict[str, Any]:
    """Setup of the regular baseline: its defaults on any workload."""
    return {}


METHODS = {
    "regular": gradient_method(
        "regular", "regular training: the squared error of the values only (the paper's baseline)",
        config=SobolevConfig, hooks=_hooks, fixed={"loss": "value"}, is_baseline=True, on_workload=runs_anywhere),
    "sobolev": gradient_method(
        "sobolev", "Sobolev training: squared errors of the values and of the input gradients (double backprop)",
        config=SobolevConfig, hooks=_hooks, fixed={"loss": "sobolev"}, on_workload=needs_input_gradients),
    "stochastic_sobolev": gradient_method(
        "stochastic_sobolev", "stochastic Sobolev training: values and the gradients' projections on random unit "
                              "directions (one per sample and step)",
        config=SobolevConfig, hooks=_hooks, fixed={"loss": "stochastic"}, on_workload=needs_input_gradients),
}
