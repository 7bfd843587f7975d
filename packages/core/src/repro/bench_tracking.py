"""N concurrent writers on one MLflow tracking store: what N parallel pipeline trials ask of it.

Each writer is its own process (imports and the store's first opening done first), released together by a barrier, and logs
what one trial logs through :class:`repro.tracking.TrackedRun`: the experiment (get-or-create,
under the store lock), a run with its tags, parameters and dataset input, the full per-evaluation
history, the summary and the three artifacts (results.json, curves.csv, the learning-curve PNG);
then the run is closed FINISHED. Measured: the wall time from the release until the last writer
is done, and each writer's own time. Afterwards every run is read back and checked complete
(status, every parameter, every metric point, every artifact): a number from a run that lost
data is not reported.

    uv run python -m repro.bench_tracking --tracking-uri http://127.0.0.1:5000 [--writers 8]

Run inside a project checkout (the directory with params.yaml); the runs go to the MLflow
experiment ``bench-tracking``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
import uuid
from typing import Any

from repro import figures, tracking

EXPERIMENT = "bench-tracking"
METRICS = ("val_rmse", "val_r2", "test_rmse", "test_r2", "train_loss", "train_time_s", "train_cpu_time_s",
           "forward_evals")


def trial_like(i: int, evals: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A synthetic trial of the usual size: (result record, params, tags)."""
    history = [{"epoch": float(e), "step": float(10 * e), **{m: 1.0 / (e + 1) + 0.001 * (i + j)
                                                            for j, m in enumerate(METRICS)}}
               for e in range(1, evals + 1)]
    summary = {**{k: v for k, v in history[-1].items() if k.startswith(("val_", "test_"))},
               "train_time_s": 1.5, "epochs": float(evals), "reached_target": 1.0, "time_to_target_s": 0.7}
    hparams = {f"h{j}": 0.1 * j for j in range(12)}
    result = {"paper": EXPERIMENT, "experiment": "bench", "method": f"writer{i}", "seed": i,
              "hparams": hparams, "summary": summary, "history": history}
    params = {**{f"hp.{k}": v for k, v in hparams.items()}, "workload": "bench", "seed": i}
    tags = {"paper": EXPERIMENT, "experiment": "bench", "method": f"writer{i}", "scale": "smoke", "seed": str(i),
            "git_commit": "unknown"}
    return result, params, tags


def _writer(i: int, evals: int, batch: str, barrier: Any, queue: Any) -> None:
    import matplotlib.pyplot  # noqa: F401  (what the figure needs, imported off the clock)

    assert figures  # imported at the top, before the clock starts
    # Off the clock too: MLflow's imports and the store's first opening (its schema, under the lock).
    tracking.get_or_create_experiment(tracking.tracking_uri(), EXPERIMENT)
    result, params, tags = trial_like(i, evals)
    barrier.wait(timeout=300)
    t0 = time.time()
    try:
        with tracking.TrackedRun(EXPERIMENT, f"{batch}/writer{i}", params, {**tags, "bench.batch": batch},
                                 dataset={"name": "bench", "digest": "ab" * 32, "source": "data/prepared/bench.pt"}
                                 ) as run:
            result["mlflow_run_id"] = run.run_id
            run.log_result(result, quality="val_rmse")
        queue.put((i, t0, time.time(), run.run_id, result.get("mlflow", {}).get("error", "")))
    except Exception as exc:  # reported by the parent
        queue.put((i, t0, time.time(), "", f"{type(exc).__name__}: {exc}"))


def check_complete(uri: str, run_id: str, i: int, evals: int) -> list[str]:
    """What the store lacks of writer *i*'s run (empty: complete)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    result, params, _ = trial_like(i, evals)
    missing = []
    if run.info.status != "FINISHED":
        missing.append(f"status {run.info.status}")
    missing += [f"param {k}" for k in params if k not in run.data.params]
    for key in METRICS:
        points = client.get_metric_history(run_id, key)
        if sorted(p.step for p in points) != list(range(1, evals + 1)):
            missing.append(f"metric {key}: {len(points)}/{evals} points")
    missing += [f"final.{k}" for k, v in result["summary"].items()
                if math.isfinite(v) and f"final.{k}" not in run.data.metrics]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    missing += [f"artifact {a}" for a in ("results.json", "curves.csv", "learning_curve.png") if a not in artifacts]
    return missing


def bench(uri: str, writers: int = 8, evals: int = 20) -> dict[str, Any]:
    """Run *writers* concurrent writers against *uri* ($MLFLOW_TRACKING_URI is set for them).
    Returns the wall time, per-writer times and run ids; raises if any run is incomplete."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(writers), ctx.Queue()
    batch = uuid.uuid4().hex[:8]
    procs = [ctx.Process(target=_writer, args=(i, evals, batch, barrier, queue)) for i in range(writers)]
    for p in procs:
        p.start()
    rows = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [f"writer {i}: {err}" for i, _, _, _, err in rows if err]
    if errors:
        raise RuntimeError("; ".join(errors))
    incomplete = {i: m for i, _, _, rid, _ in rows if (m := check_complete(uri, rid, i, evals))}
    if incomplete:
        raise RuntimeError(f"runs lost data: {incomplete}")
    start, end = min(r[1] for r in rows), max(r[2] for r in rows)
    per_writer = sorted(r[2] - r[1] for r in rows)
    return {"writers": writers, "evals": evals, "wall_s": end - start, "writer_s": per_writer,
            "run_ids": [r[3] for r in sorted(rows)]}


def describe(kind: str, out: dict[str, Any]) -> str:
    w = out["writer_s"]
    return (f"{kind}: {out['writers']} concurrent writers, each one trial-sized run ({out['evals']} evaluations x "
            f"{len(METRICS)} metrics, summary, 3 artifacts): all logged in {out['wall_s']:.1f} s "
            f"(per writer {w[0]:.1f}-{w[-1]:.1f} s), nothing lost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench_tracking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True, help="the store to measure")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes (default 8)")
    parser.add_argument("--evals", type=int, default=20, help="evaluations per run's history (default 20)")
    args = parser.parse_args(argv)
    print(describe(args.tracking_uri, bench(args.tracking_uri, args.writers, args.evals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
