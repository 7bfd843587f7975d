"""One trial = (paper, experiment, method, seed, scale): the contract every method runs under.

``run_trial`` seeds everything, loads the workload's prepared data, hands the method a
``RunContext`` (clock, evaluation, recorder, checkpoints, forward-evaluation counter), logs the
run to MLflow and writes the trial's results JSON last, atomically — a failed or interrupted
trial leaves no file that looks finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from repro import catalog, distributed, environment, paths, tracking
from repro.checkpoint import Checkpointer
from repro.datasets import TensorData, load_prepared
from repro.errors import ReproError
from repro.files import write_json
from repro.papers import get_paper
from repro.timing import TrainClock
from repro.workloads import Workload

if TYPE_CHECKING:
    from repro.paper import Method


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        # CPU kernels are deterministic already; on CPU this call would only cost an import of
        # torch._dynamo (~8 s per job).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class RunContext:
    """What a method gets: the workload and its data on the device, and the shared contracts."""

    paper: str
    experiment: str
    method: str
    seed: int
    scale: str
    workload: Workload
    data: TensorData
    device: torch.device
    clock: TrainClock
    checkpoint: Checkpointer
    generator: torch.Generator
    history: list[dict[str, float]] = field(default_factory=list)
    forward_evals: int = 0  # sample-level forward passes (an ensemble member on one sample counts 1)
    extra: dict[str, float] = field(default_factory=dict)  # method-specific summary numbers
    progress: bool = True
    mlflow_run_id: str = ""
    eval_time_s: float = 0.0
    # Save a checkpoint at the next boundary once this much wall time has passed since the last
    # one (0: only where the method's own ``checkpoint_every`` says). See ``checkpoint_due``.
    checkpoint_seconds: float = 0.0
    last_checkpoint_at: float = field(default_factory=time.monotonic, repr=False)
    # On CUDA: a generator on the device for the training loop's draws (epoch order, augmentation,
    # a method's noise), so that no step waits for a host-to-device copy; None on the CPU.
    device_generator: torch.Generator | None = None
    # The Trainer's GPU switches that applied (``repro.performance``); recorded in the result JSON.
    performance: dict[str, Any] = field(default_factory=dict)
    # Score the test split at every evaluation (learning curves of the reported metric), or only at
    # the last one (the leaderboard, which reports final test quality only): see ``score_final_test``.
    test_every_eval: bool = True
    _last_predict: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)

    @property
    def step_generator(self) -> torch.Generator:
        """The generator of the training loop's random draws: on the device on CUDA, the run's own
        on the CPU (so CPU results are those of one generator, as before)."""
        return self.device_generator if self.device_generator is not None else self.generator

    def use_train_subset(self, n: int) -> None:
        """Restrict the training split to a fixed subset of *n* samples (the same for every seed and
        method; validation and test untouched). No-op when *n* covers the whole split."""
        total = len(self.data.x_train)
        if n >= total:
            return
        keep = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values.to(self.device)
        self.data = dataclasses.replace(self.data, x_train=self.data.x_train[keep], y_train=self.data.y_train[keep])

    def count_forward(self, n: int) -> None:
        self.forward_evals += int(n)

    def _timed(self, split: str, predict: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict[str, float], float]:
        t0 = time.perf_counter()
        scores = self.workload.evaluate(predict, self.data, split)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return scores, time.perf_counter() - t0

    def evaluate(self, predict: Callable[[torch.Tensor], torch.Tensor], epoch: int, step: int,
                 decision: bool = False, final: bool = False, **values: float) -> dict[str, float]:
        """Score *predict* on the validation and test splits and record a history row.

        *decision*: the method reads this evaluation's validation metrics to steer training, so
        scoring the validation split runs on the training clock. Otherwise both splits are scored
        with the clock paused. The test split is always off the clock (and must never steer);
        with ``test_every_eval`` off it is scored only when the caller says this is the *final*
        evaluation, or afterwards for the last row (``score_final_test``).
        """
        def test_split() -> tuple[dict[str, float], float]:
            if self.test_every_eval or final:
                return self._timed("test", predict)
            self._last_predict = predict
            return {}, 0.0

        if decision:
            with self.clock.measuring():
                val, _ = self._timed("val", predict)
            with self.clock.paused():
                test, eval_time = test_split()
        else:
            with self.clock.paused():
                val, t_val = self._timed("val", predict)
                test, t_test = test_split()
            eval_time = t_val + t_test
        row = {
            "epoch": float(epoch),
            "step": float(step),
            "train_time_s": self.clock.elapsed,
            "train_cpu_time_s": self.clock.cpu_elapsed,
            "forward_evals": float(self.forward_evals),
            **val,
            **test,
            **{k: float(v) for k, v in values.items()},
        }
        self.eval_time_s += eval_time
        self.history.append(row)
        return row

    def score_final_test(self) -> None:
        """With ``test_every_eval`` off: score the test split for the last recorded evaluation if
        it has no test metrics yet, with the predictor of that evaluation (the Trainer calls it
        when training stopped before its budget, before ``fit_end``; ``execute`` once the method
        has finished, for methods that never said which evaluation was final)."""
        if self.test_every_eval or not self.history or self._last_predict is None:
            return
        last = self.history[-1]
        if any(k.startswith("test_") for k in last):
            return
        with self.clock.paused():
            test, eval_time = self._timed("test", self._last_predict)
        last.update(test)
        self.eval_time_s += eval_time

    def target_row(self) -> dict[str, float] | None:
        """The first recorded evaluation whose validation quality reaches the workload's target
        (None: not reached). Every to-target quantity is read off this row."""
        wl = self.workload
        return next((r for r in self.history if wl.target_metric in r and wl.reached(r[wl.target_metric])), None)

    # Methods put these into their checkpoints so a resumed run continues the same records.
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "train_time_s": self.clock.elapsed,
            "train_cpu_time_s": self.clock.cpu_elapsed,
            "eval_time_s": self.eval_time_s,
            "forward_evals": self.forward_evals,
            "extra": self.extra,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            **({"device_generator": self.device_generator.get_state()} if self.device_generator is not None else {}),
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
            "mlflow_run_id": self.mlflow_run_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.clock = TrainClock(self.device, elapsed=float(state["train_time_s"]),
                                cpu_elapsed=float(state.get("train_cpu_time_s", 0.0)))
        self.eval_time_s = float(state["eval_time_s"])
        self.forward_evals = int(state["forward_evals"])
        self.extra = dict(state["extra"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "device_generator" in state and self.device_generator is not None:
            self.device_generator.set_state(state["device_generator"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def checkpoint_due(self, done: int, every: int = 0) -> bool:
        """Save a checkpoint at this boundary (after *done* epochs, passes or steps)? Yes when the
        method's own cadence *every* (0: none) falls here, or when ``checkpoint_seconds`` (0: off)
        of wall time have passed since the last checkpoint (or since the trial started). Methods
        ask only where training goes on (never after their last unit of work). Saving changes no
        result: it reads the state and runs off the training clock."""
        if every and done % every == 0:
            return True
        return self.checkpoint_seconds > 0 and time.monotonic() - self.last_checkpoint_at >= self.checkpoint_seconds

    def save_checkpoint(self, method_state: dict[str, Any]) -> None:
        """Save the method's state together with the run's records (history, clock, RNG)."""
        with self.clock.paused():
            self.checkpoint.save({"method": method_state, "ctx": self.state_dict()})
        self.last_checkpoint_at = time.monotonic()

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The method's saved state if this trial was interrupted before, with records restored."""
        saved = self.checkpoint.load()
        if saved is None:
            return None
        self.load_state_dict(saved["ctx"])
        return saved["method"]


def summarise(ctx: RunContext) -> dict[str, float]:
    """Final metrics and time-to-target from the recorded history (the protocol every paper uses).

    The target is checked on the *validation* split (``workload.target_metric``). A run that
    never reaches it has ``reached_target = 0`` and no value (null) for every ``*_to_target*``
    quantity; the claims read a miss as infinite (see ``repro.claims``).
    """
    if not ctx.history:
        raise ReproError(f"method {ctx.method!r} recorded no evaluation; nothing to summarise")
    final = ctx.history[-1]
    hit = ctx.target_row()
    summary = {k: v for k, v in final.items() if k.startswith(("test_", "val_"))}
    summary.update(
        train_time_s=ctx.clock.elapsed,
        train_cpu_time_s=ctx.clock.cpu_elapsed,
        eval_time_s=ctx.eval_time_s,
        forward_evals=float(ctx.forward_evals),
        epochs=final["epoch"],
        reached_target=1.0 if hit else 0.0,
        time_to_target_s=hit["train_time_s"] if hit else math.nan,
        time_to_target_cpu_s=hit["train_cpu_time_s"] if hit else math.nan,
        epochs_to_target=hit["epoch"] if hit else math.nan,
        steps_to_target=hit["step"] if hit else math.nan,
        instances_to_target=hit["forward_evals"] if hit else math.nan,
    )
    summary.update(ctx.extra)
    return summary


def make_context(paper_slug: str, experiment: str, method: str, seed: int, scale: str, workload: Workload,
                 checkpoint: Path, progress: bool = False) -> RunContext:
    """Seed everything and load *workload*'s prepared data (validation split carved) on the device."""
    if seed < 0:
        raise ReproError(f"seed must be >= 0, got {seed}")
    device = environment.select_device()
    seed_everything(seed, device)
    data = workload.split(load_prepared(workload.dataset)).to(device)
    return RunContext(
        paper=paper_slug, experiment=experiment, method=method, seed=seed, scale=scale,
        workload=workload, data=data, device=device, clock=TrainClock(device), checkpoint=Checkpointer(checkpoint),
        generator=torch.Generator().manual_seed(seed), progress=progress,
        device_generator=torch.Generator(device=device).manual_seed(seed) if device.type == "cuda" else None,
    )


def build_context(paper_slug: str, experiment: str, method: str, seed: int, scale: str,
                  progress: bool = False) -> tuple[RunContext, dict[str, Any]]:
    """Resolve and validate a trial, seed it and load its data: the context and the hyper-parameters.

    Raises ``ReproError`` naming the bad value (and the valid choices) before any work starts.
    """
    paper = get_paper(paper_slug)
    hparams = paper.trial_hparams(scale, experiment, method)
    paper.method(method).validate(hparams)
    distributed.check_method(paper.method(method), paper_slug, distributed.world_size())
    if seed < 0:
        raise ReproError(f"seed must be >= 0, got {seed}")
    workload = catalog.get_workload(paper.experiment(scale, experiment).workload)
    ckpt = paths.checkpoint_dir() / paper_slug / scale / experiment / method / f"seed{seed}.pt"
    ctx = make_context(paper_slug, experiment, method, seed, scale, workload, ckpt, progress)
    ctx.checkpoint.key = trial_key(ctx, hparams)
    return ctx, hparams


def trial_key(ctx: RunContext, hparams: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: the trial, its hyper-parameters, data, code
    (``environment.code_digest``), device, torch thread count and processes (they change the numbers)."""
    key = {"paper": ctx.paper, "experiment": ctx.experiment, "method": ctx.method, "seed": ctx.seed,
           "scale": ctx.scale, "workload": ctx.workload.name, "hparams": hparams, "dataset_sha256": ctx.data.sha256,
           "code": environment.code_digest(ctx.paper), "device": ctx.device.type,
           "torch_threads": torch.get_num_threads(), "processes": distributed.world_size()}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def execute(ctx: RunContext, spec: Method, hparams: dict[str, Any], config: dict[str, Any], *,
            mlflow_experiment: str, run_name: str, tags: dict[str, str] | None = None,
            artifacts: bool = True) -> dict[str, Any]:
    """Fit *spec* in *ctx* inside one MLflow run (resumed if the trial's checkpoint names one) and
    return the trial's result record (summary, history, hyper-parameters, environment).

    *artifacts*: also log the result JSON, curves and learning-curve figure to the run.
    """
    workload, data, device = ctx.workload, ctx.data, ctx.device
    previous = ctx.checkpoint.load()
    resume_run_id = previous["ctx"]["mlflow_run_id"] if previous else None
    params = {f"hp.{k}": v for k, v in hparams.items()}
    params.update(workload=workload.name, dataset=workload.dataset, model=workload.model,
                  model_kwargs=workload.model_kwargs, target=workload.target, seed=ctx.seed)
    all_tags = {
        "paper": ctx.paper, "experiment": ctx.experiment, "method": ctx.method, "scale": ctx.scale,
        "seed": str(ctx.seed), "dataset_sha256": data.sha256, "device": environment.device_name(device),
        "torch_threads": str(torch.get_num_threads()), "processes": str(distributed.world_size()),
        **environment.git_state(),
        **tracking.source_tags(environment.git_state()["git_commit"], f"repro run {ctx.paper}"),
        **{f"version.{k}": v for k, v in environment.package_versions().items()},
        **(tags or {}),
    }
    dataset = {"name": workload.dataset, "digest": data.sha256,
               "source": paths.rel(paths.prepared_data_path(workload.dataset))}
    # Several processes: rank 0 logs the run, the others log nothing.
    tracked_run = tracking.TrackedRun if distributed.is_main() else distributed.Untracked
    with tracked_run(mlflow_experiment, run_name, params, all_tags, config,
                     resume_run_id=resume_run_id, dataset=dataset) as tracked:
        ctx.mlflow_run_id = tracked.run_id
        spec.fit(ctx, hparams)
        ctx.score_final_test()
        summary = summarise(ctx)
        result = {
            "paper": ctx.paper, "experiment": ctx.experiment, "method": ctx.method, "seed": ctx.seed,
            "scale": ctx.scale, "workload": workload.name, "dataset": workload.dataset,
            "dataset_sha256": data.sha256,
            "quality_metric": workload.quality_metric, "target_metric": workload.target_metric,
            "target": workload.target,
            "hparams": hparams, "summary": summary, "history": ctx.history,
            "mlflow_run_id": tracked.run_id, "device": environment.device_name(device),
            "torch_threads": torch.get_num_threads(), "processes": distributed.world_size(),
            **({"performance": ctx.performance} if ctx.performance else {}),
            # the torch thread count changes per-epoch numbers: provenance, beside the hardware
            "environment": {**environment.git_state(), **environment.hardware(),
                            "torch_threads": torch.get_num_threads(), "versions": environment.package_versions()},
        }
        # A store that fails here loses nothing: the result comes back marked mlflow.logged = false.
        tracked.log_result(result, quality=workload.target_metric, artifacts=artifacts)
    return result


def run_trial(paper_slug: str, experiment: str, method: str, seed: int, scale: str,
              config: dict[str, Any], out: Path | None = None, progress: bool = True) -> Path:
    """Run one trial under MLflow tracking and write its results JSON (last, atomically)."""
    out = out or paths.trial_path(paper_slug, scale, experiment, method, seed)
    out.unlink(missing_ok=True)  # never leave a previous result beside a new attempt
    ctx, hparams = build_context(paper_slug, experiment, method, seed, scale, progress)
    ctx.checkpoint_seconds = float(config.get("checkpoint_seconds") or 0)
    spec = get_paper(paper_slug).method(method)
    result = execute(ctx, spec, hparams, config, mlflow_experiment=paper_slug,
                     run_name=f"{experiment}/{method}/seed{seed}")
    if distributed.is_main():  # several processes: rank 0 writes the result
        write_json(result, out)
        ctx.checkpoint.clear()
    return out
