"""One trial = (paper, experiment, method, seed, scale): the contract every method runs under.

``run_trial`` seeds everything, loads the workload's prepared data, hands the method a
``RunContext`` (clock, evaluation, recorder, checkpoints, forward-evaluation counter), logs the
run to MLflow and writes the trial's results JSON last, atomically — a failed or interrupted
trial leaves no file that looks finished.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repro import environment, paths
from repro.checkpoint import Checkpointer
from repro.datasets import TensorData, load_prepared
from repro.errors import ReproError, unknown
from repro.files import write_json
from repro.timing import TrainClock
from repro.workloads import Workload, get_workload


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

    def count_forward(self, n: int) -> None:
        self.forward_evals += int(n)

    def evaluate(self, predict: Callable[[torch.Tensor], torch.Tensor], epoch: int, step: int,
                 **values: float) -> dict[str, float]:
        """Score *predict* on the test split with the clock paused, and record a history row."""
        with self.clock.paused():
            t0 = time.perf_counter()
            scores = self.workload.evaluate(predict, self.data)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            eval_time = time.perf_counter() - t0
        row = {
            "epoch": float(epoch),
            "step": float(step),
            "train_time_s": self.clock.elapsed,
            "forward_evals": float(self.forward_evals),
            **scores,
            **{k: float(v) for k, v in values.items()},
        }
        self.eval_time_s += eval_time
        self.history.append(row)
        return row

    # Methods put these into their checkpoints so a resumed run continues the same records.
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "train_time_s": self.clock.elapsed,
            "eval_time_s": self.eval_time_s,
            "forward_evals": self.forward_evals,
            "extra": self.extra,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "mlflow_run_id": self.mlflow_run_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.clock = TrainClock(self.device, elapsed=float(state["train_time_s"]))
        self.eval_time_s = float(state["eval_time_s"])
        self.forward_evals = int(state["forward_evals"])
        self.extra = dict(state["extra"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def save_checkpoint(self, method_state: dict[str, Any]) -> None:
        """Save the method's state together with the run's records (history, clock, RNG)."""
        with self.clock.paused():
            self.checkpoint.save({"method": method_state, "ctx": self.state_dict()})

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The method's saved state if this trial was interrupted before, with records restored."""
        saved = self.checkpoint.load()
        if saved is None:
            return None
        self.load_state_dict(saved["ctx"])
        return saved["method"]


def summarise(ctx: RunContext) -> dict[str, float]:
    """Final metrics and time-to-target from the recorded history (the protocol every paper uses)."""
    if not ctx.history:
        raise ReproError(f"method {ctx.method!r} recorded no evaluation; nothing to summarise")
    wl = ctx.workload
    final = ctx.history[-1]
    hit = next((r for r in ctx.history if wl.reached(r[wl.quality_metric])), None)
    summary = {k: v for k, v in final.items() if k.startswith("test_")}
    summary.update(
        train_time_s=ctx.clock.elapsed,
        eval_time_s=ctx.eval_time_s,
        forward_evals=float(ctx.forward_evals),
        epochs=final["epoch"],
        reached_target=1.0 if hit else 0.0,
        time_to_target_s=hit["train_time_s"] if hit else math.nan,
        epochs_to_target=hit["epoch"] if hit else math.nan,
    )
    summary.update(ctx.extra)
    return summary


def build_context(paper_slug: str, experiment: str, method: str, seed: int, scale: str,
                  progress: bool = False) -> tuple[RunContext, dict[str, Any]]:
    """Resolve and validate a trial, seed it and load its data: the context and the hyper-parameters.

    Raises ``ReproError`` naming the bad value (and the valid choices) before any work starts.
    """
    from repro.registry import get_paper

    paper = get_paper(paper_slug)
    exp = paper.experiment(scale, experiment)
    if method not in exp.methods:
        raise unknown(f"method of experiment {experiment!r}", method, exp.methods)
    spec = paper.method(method)
    hparams = dict(exp.methods[method])
    spec.validate(hparams)
    if seed < 0:
        raise ReproError(f"seed must be >= 0, got {seed}")
    workload = get_workload(exp.workload)
    device = environment.select_device()
    seed_everything(seed, device)
    data = load_prepared(workload.dataset).to(device)
    ckpt = Checkpointer(paths.checkpoint_dir() / paper_slug / scale / experiment / method / f"seed{seed}.pt")
    ctx = RunContext(
        paper=paper_slug, experiment=experiment, method=method, seed=seed, scale=scale,
        workload=workload, data=data, device=device, clock=TrainClock(device), checkpoint=ckpt,
        generator=torch.Generator().manual_seed(seed), progress=progress,
    )
    return ctx, hparams


def run_trial(paper_slug: str, experiment: str, method: str, seed: int, scale: str,
              config: dict[str, Any], out: Path | None = None, progress: bool = True) -> Path:
    """Run one trial under MLflow tracking and write its results JSON (last, atomically)."""
    from repro import tracking
    from repro.registry import get_paper

    out = out or paths.trial_path(paper_slug, scale, experiment, method, seed)
    out.unlink(missing_ok=True)  # never leave a previous result beside a new attempt
    ctx, hparams = build_context(paper_slug, experiment, method, seed, scale, progress)
    spec = get_paper(paper_slug).method(method)
    workload, data, device = ctx.workload, ctx.data, ctx.device
    previous = ctx.checkpoint.load()
    resume_run_id = previous["ctx"]["mlflow_run_id"] if previous else None
    params = {f"hp.{k}": v for k, v in hparams.items()}
    params.update(workload=workload.name, dataset=workload.dataset, model=workload.model,
                  model_kwargs=workload.model_kwargs, target=workload.target, seed=seed)
    tags = {
        "paper": paper_slug, "experiment": experiment, "method": method, "scale": scale,
        "seed": str(seed), "dataset_sha256": data.sha256, "device": environment.device_name(device),
        "torch_threads": str(torch.get_num_threads()),
        **environment.git_state(),
        **{f"version.{k}": v for k, v in environment.package_versions().items()},
    }
    run_name = f"{experiment}/{method}/seed{seed}"
    with tracking.TrackedRun(paper_slug, run_name, params, tags, config,
                             resume_run_id=resume_run_id) as tracked:
        ctx.mlflow_run_id = tracked.run_id
        spec.fit(ctx, hparams)
        summary = summarise(ctx)
        result = {
            "paper": paper_slug, "experiment": experiment, "method": method, "seed": seed, "scale": scale,
            "workload": workload.name, "dataset": workload.dataset, "dataset_sha256": data.sha256,
            "quality_metric": workload.quality_metric, "target": workload.target,
            "hparams": hparams, "summary": summary, "history": ctx.history,
            "mlflow_run_id": tracked.run_id, "device": environment.device_name(device),
            "environment": {**environment.git_state(), **environment.hardware(),
                            "versions": environment.package_versions()},
        }
        tracked.log_history(ctx.history)
        tracked.log_summary(summary)
        tracked.log_result_artifacts(result, quality=workload.quality_metric)
    write_json(result, out)
    ctx.checkpoint.clear()
    return out
