"""AutoAssist's two batching rules on the smoke experiment (``digits_mlp``), measured.

* ``fill`` (default, the reference loader): accepted instances are buffered, every optimizer step
  back-propagates exactly B of them.
* ``thin``: every candidate batch of B is thinned to its accepted instances (≈ B × acceptance).

Runs ``sgd`` once per seed and ``autoassist`` / ``loss_is`` under both rules, with the smoke
experiment's hyper-parameters (only ``batching`` changes), one torch thread, no MLflow, and prints
the environment and a table of means ± standard deviations over the seeds (and, with
``--per-trial``, one row per trial). ``reduction vs sgd`` is the per-seed paired
1 − instances_to_target / instances_to_target[sgd], averaged (a seed that misses the target is
left out of that mean and counted in ``reached``).

    uv run repro data prepare digits
    uv run python packages/autoassist/benchmarks/bench_batching.py --seeds 5
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from typing import Any

import torch

from repro import environment
from repro.run import build_context, summarise

from repro_autoassist.paper import PAPER

CONFIGS = [("sgd", None), ("autoassist", "fill"), ("autoassist", "thin"), ("loss_is", "fill"), ("loss_is", "thin")]
COLUMNS = [  # (header, key in the trial record, format)
    ("final test acc", "test_accuracy", "{:.3f}"),
    ("instances to target", "instances_to_target", "{:.0f}"),
    ("reduction vs sgd", "reduction_vs_sgd", "{:+.3f}"),
    ("backprop epochs to target", "backprop_epochs_to_target", "{:.2f}"),
    ("time to target (s)", "time_to_target_s", "{:.3f}"),
    ("train time (s)", "train_time_s", "{:.2f}"),
    ("optimizer steps", "steps", "{:.0f}"),
    ("instances / step", "per_step", "{:.1f}"),
    ("acceptance", "acceptance_rate", "{:.3f}"),
]


def trial(method: str, batching: str | None, seed: int, experiment: str) -> dict[str, Any]:
    ctx, hparams = build_context("autoassist", experiment, method, seed, "smoke")
    if batching is not None:
        hparams = {**hparams, "batching": batching}
    spec = PAPER.methods[method]
    spec.validate(hparams)
    t0 = time.perf_counter()
    spec.fit(ctx, hparams)
    wall = time.perf_counter() - t0
    s = summarise(ctx)
    steps = float(ctx.history[-1]["step"]) if ctx.history else 0.0
    wl = ctx.workload
    return {"method": method, "batching": batching or "-", "seed": seed, "wall_s": wall, "steps": steps,
            "target": f"{getattr(wl, 'target_metric', wl.quality_metric)} >= {wl.target}",
            "per_step": s["instances_backpropagated"] / steps if steps else math.nan,
            **{k: float(v) for k, v in s.items() if isinstance(v, (int, float)) and v is not None}}


def _fmt(values: list[float], fmt: str) -> str:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(statistics.mean(vals))} ± {fmt.format(statistics.stdev(vals)).lstrip('+')}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument("--experiment", default="digits_mlp")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-trial", action="store_true", help="also print one row per trial")
    ap.add_argument("--json", help="write every trial record to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hw = environment.hardware() if hasattr(environment, "hardware") else {}
    print(f"hardware: {hw or platform.processor()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"device {environment.select_device()}")
    records: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        base = None
        for method, batching in CONFIGS:
            r = trial(method, batching, seed, args.experiment)
            if method == "sgd":
                base = r.get("instances_to_target", math.nan)
            itt = r.get("instances_to_target", math.nan)
            ok = base and not math.isnan(base) and not math.isnan(itt)
            r["reduction_vs_sgd"] = 1 - itt / base if ok else math.nan
            records.append(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
    print(f"\n{args.experiment}, smoke hyper-parameters, {args.seeds} seeds (0..{args.seeds - 1}), mean ± sd over "
          f"seeds; target: {records[0]['target']} (first evaluation, once per epoch)")
    head = ["method", "batching", "reached"] + [c[0] for c in COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method, batching in CONFIGS:
        rows = [r for r in records if r["method"] == method and r["batching"] == (batching or "-")]
        reached = sum(1 for r in rows if not math.isnan(r.get("instances_to_target", math.nan)))
        cells = [method, batching or "-", f"{reached}/{len(rows)}"]
        cells += [_fmt([r.get(k, math.nan) for r in rows], f) for _, k, f in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    if args.per_trial:
        print("\n| method | batching | seed | " + " | ".join(c[0] for c in COLUMNS) + " |")
        print("|" + "---|" * (3 + len(COLUMNS)))
        for r in records:
            cells = [r["method"], r["batching"], str(r["seed"])]
            cells += [_fmt([r.get(k, math.nan)], f) for _, k, f in COLUMNS]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
