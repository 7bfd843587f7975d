"""The smoke experiment's lambda sweep: HSPG and Prox-SG at several lambda, dense once, a few seeds.

    uv run --frozen python packages/oto/benchmarks/lambda_sweep.py                       # the grid in paper.py
    uv run --frozen python packages/oto/benchmarks/lambda_sweep.py --lambdas 0.05,0.1 --seeds 0,1

Runs the ``digits_bn_cnn`` smoke trials (the pipeline's hyper-parameters, only lambda changed)
in a throw-away project (no MLflow) and writes ``results/oto-lambda-sweep-cpu.{json,md}``: per
method and lambda the mean over seeds of validation / test accuracy, group sparsity, FLOPs and
parameters remaining. The smoke lambda is the largest grid value whose mean *validation*
accuracy stays within one point of dense training (the rule the table marks); the test split
plays no part in that choice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from repro import environment

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parents[2]
COLUMNS = ("val_accuracy", "test_accuracy", "group_sparsity", "flops_remaining", "params_remaining")


def run(lambdas: list[float], seeds: list[int]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="oto-sweep-"))
    shutil.copyfile(CHECKOUT / "params.yaml", root / "params.yaml")
    (root / "workflow" / "schemas").mkdir(parents=True)
    shutil.copyfile(CHECKOUT / "workflow" / "schemas" / "config.schema.yaml",
                    root / "workflow" / "schemas" / "config.schema.yaml")
    os.environ.update(REPRO_ROOT=str(root), REPRO_DEVICE="cpu")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(root)
    from repro import config as cfg
    from repro.datasets import DATASETS, prepare
    from repro.models import MODELS
    from repro.run import build_context, summarise
    from repro.workloads import WORKLOADS

    from repro_oto.paper import PAPER

    for w in PAPER.workloads:  # register ours directly: no need to import every other paper
        if w.name not in WORKLOADS:
            WORKLOADS.register(w.name, w)
    for name, builder in PAPER.models.items():
        if name not in MODELS:
            MODELS.register(name, builder)
    prepare(DATASETS.get("digits"), cfg.dataset_params(cfg.load(), "digits"))
    torch.set_num_threads(1)
    rows = []
    plan = [("dense", None)] + [(m, lam) for lam in lambdas for m in ("prox_sg", "hspg")]
    for method, lam in plan:
        per_seed = []
        for seed in seeds:
            ctx, hparams = build_context("oto", "digits_bn_cnn", method, seed=seed, scale="smoke")
            ctx.progress = False
            if lam is not None:
                hparams["lmbda"] = lam
            PAPER.method(method).fit(ctx, hparams)
            per_seed.append(summarise(ctx))
        row = {"method": method, "lmbda": lam, "seeds": seeds}
        row.update({k: statistics.mean(s[k] for s in per_seed) for k in COLUMNS})
        rows.append(row)
        print(json.dumps(row), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    dense_val = rows[0]["val_accuracy"]
    ok = [r["lmbda"] for r in rows if r["method"] == "hspg" and r["val_accuracy"] >= dense_val - 0.01]
    return {"benchmark": "lambda_sweep", "experiment": "digits_bn_cnn", "cpu": environment.cpu_name(),
            "torch": torch.__version__, "rule": "largest lambda with mean val_accuracy >= dense - 0.01",
            "chosen": max(ok) if ok else None, "rows": rows}


def to_md(doc: dict) -> str:
    lines = [f"Smoke experiment `{doc['experiment']}`, seeds {doc['rows'][0]['seeds']}, means over seeds "
             f"({doc['cpu']}, torch {doc['torch']}). Rule: {doc['rule']} -> chosen lambda = {doc['chosen']}.", "",
             "| method | lambda | val accuracy | test accuracy | group sparsity | FLOPs remaining | params remaining |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lam = "—" if r["lmbda"] is None else f"{r['lmbda']:g}"
        lines.append(f"| {r['method']} | {lam} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
                     f"{r['group_sparsity']:.3f} | {r['flops_remaining']:.3f} | {r['params_remaining']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lambdas", default="0.05,0.07,0.085,0.1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(HERE / "results" / "oto-lambda-sweep-cpu"), help="output prefix")
    args = ap.parse_args()
    doc = run([float(v) for v in args.lambdas.split(",")], [int(v) for v in args.seeds.split(",")])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_md(doc))
    print(to_md(doc), end="")


if __name__ == "__main__":
    main()
