"""The prepared device check (issue #10): everything worth measuring on one lent GPU, in one run.

On one GPU with no network, in at most ``--budget`` seconds (default 480: 8 minutes), it runs

1. ``gpu``   the ``gpu``-marked tests (``pytest -m gpu``);
2. ``bench`` ``repro bench`` for every paper that registers kernels, and ``repro bench trainer``;
3. ``timing`` a shortened paper-scale run of every gradient paper on *synthetic* CIFAR-shaped data
   (random images and labels: the accuracy means nothing, only the methods' speed ratios to the
   paper's baseline are reported, and labelled so);
4. ``mnist`` the paper-scale MNIST experiments on the real MNIST (``REPRO_DATA_MIRROR`` or
   ``../shared/data``), shortened, where accuracy matters: accuracy and time per method;
5. ``airbench`` the core's fast CIFAR-10 baseline (``repro bench fast_cifar``) against the
   ``airbench`` package's airbench94 in the same process: time to 94% on CIFAR-10 where it is
   prepared, otherwise training time on synthetic CIFAR-shaped data (speed only, labelled so).

Every step runs in its own process under a wall-clock limit (the process group is killed at the
limit); a failure or timeout is recorded and the run goes on. Steps that no longer fit in the
budget are recorded as skipped. The summary is ``<out>/device_check.json`` and
``<out>/device_check.md``; the per-step outputs and logs lie beside them.

``--dry-run`` checks the same machinery end to end on the CPU in under two minutes: tiny sizes,
the CPU device, several items per process. Its numbers say nothing about a GPU; the summary says
so. GPU numbers go into the package READMEs only from a run on a device.

    uv run --frozen python scripts/device_check.py --help
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("gpu", "bench", "timing", "mnist", "airbench")
# The dry run's one timing paper: a small AlexNet and first-order methods only (zeroth-order methods,
# e.g. deepzero's coordinate-wise estimates, take minutes per step on a CPU even on a small model).
DRY_TIMING_PAPER = "wus"
SYNTHETIC_LABEL = "synthetic CIFAR-shaped data (random images and labels): speed ratios only, accuracy meaningless"


# ---- the orchestrator -----------------------------------------------------------------------------

def _run(name: str, cmd: list[str], timeout: float, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run *cmd* in its own process group under *timeout* s; the record of the step."""
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc, status = None, "timeout"
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    return {"step": name, "status": status, "returncode": rc, "wall_s": round(time.monotonic() - t0, 2),
            "timeout_s": timeout, "command": " ".join(cmd), "log": str(log.relative_to(out)), "tail": tail}


def _worker_cmd(kind: str, items: list[str], result: Path, dry: bool) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_worker", kind, "--items", ",".join(items),
            "--result", str(result), *(["--dry-run"] if dry else [])]


def plan(dry: bool, out: Path) -> list[tuple[str, list[str], float, Path | None]]:
    """The steps: (name, command, timeout, JSON result file or None)."""
    from repro.papers import get_paper, paper_slugs

    slugs = paper_slugs()
    kernels = [s for s in slugs if get_paper(s).kernel_benchmarks is not None]
    gradient = [s for s in slugs if _cifar_experiment(get_paper(s)) is not None]
    mnist = [s for s in slugs if _mnist_experiments(get_paper(s))]
    steps: list[tuple[str, list[str], float, Path | None]] = []
    pytest = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    if dry:  # the gpu tests skip on a CPU: two files check the step itself
        pytest += ["packages/approx/tests/test_approx_kernel_switch.py", "packages/autoassist/tests/test_autoassist_kernel_switch.py"]
    # device limits sum to 475 s of the 480 s budget: gpu 90, six paper benches 22 each, trainer 35,
    # seven timing runs 14 each, MNIST 35, fast baseline vs airbench 85 (a step that no longer fits is
    # recorded as skipped)
    steps.append(("gpu", pytest, 60 if dry else 90, None))
    groups = [kernels + ["trainer"]] if dry else [[s] for s in kernels + ["trainer"]]
    for group in groups:
        name = "bench-" + ("all" if len(group) > 1 else group[0])
        res = out / "results" / f"{name}.json"
        steps.append((name, _worker_cmd("bench", group, res, dry), 60 if dry else (35 if group == ["trainer"] else 22),
                      res))
    for kind, papers, limit in (("timing", gradient, 14), ("mnist", mnist, 35)):
        groups = [papers] if dry else [[s] for s in papers]
        for group in groups:
            name = f"{kind}-" + ("all" if len(group) > 1 else group[0])
            res = out / "results" / f"{name}.json"
            steps.append((name, _worker_cmd(kind, group, res, dry), 60 if dry else limit, res))
    res = out / "results" / "airbench.json"
    steps.append(("airbench", _worker_cmd("airbench", ["airbench94"], res, dry), 60 if dry else 85, res))
    return steps


def orchestrate(out: Path, budget: float, dry: bool, only: set[str] | None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("REPRO_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, even on a machine with a GPU
    start = time.monotonic()
    records = []
    for name, cmd, timeout, res in plan(dry, out):
        if only and name.split("-")[0] not in only:
            continue
        left = budget - (time.monotonic() - start)
        if left < min(timeout, 10):
            records.append({"step": name, "status": "skipped", "reason": f"total budget {budget:.0f} s spent"})
            continue
        print(f"[device-check] {name} (limit {min(timeout, left):.0f} s)", flush=True)
        rec = _run(name, cmd, min(timeout, left), out, env)
        if res is not None and res.is_file():
            rec["result"] = json.loads(res.read_text())
            if rec["status"] == "ok" and any(i.get("status") == "failed" for i in rec["result"].get("items", [])):
                rec["status"] = "failed"
        records.append(rec)
        print(f"[device-check] {name}: {rec['status']} in {rec['wall_s']} s", flush=True)
    import torch

    from repro import environment

    dev = torch.device("cpu") if dry else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    doc = {"dry_run": dry, "device": environment.device_name(dev), "budget_s": budget,
           "wall_s": round(time.monotonic() - start, 2),
           "note": ("dry run on the CPU: checks the machinery only; these numbers say nothing about a GPU"
                    if dry else "measured on the device named here"),
           "steps": records}
    (out / "device_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "device_check.md").write_text(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Device check{' (dry run)' if doc['dry_run'] else ''}", "",
             f"Device: **{doc['device']}**. {doc['note']}. Wall time {doc['wall_s']} s of a {doc['budget_s']:.0f} s "
             f"budget.", "", "| step | status | wall s | limit s |", "|---|---|---|---|"]
    for r in doc["steps"]:
        lines.append(f"| {r['step']} | {r['status']} | {r.get('wall_s', '—')} | {r.get('timeout_s', '—')} |")
    for r in doc["steps"]:
        for item in (r.get("result") or {}).get("items", []):
            if item.get("kind") in ("timing", "mnist") and item.get("methods"):
                label = SYNTHETIC_LABEL if item["kind"] == "timing" else "real MNIST, shortened run"
                lines += ["", f"## {item['paper']} / {item['experiment']} — {label}", "",
                          "| method | train s | time / baseline | test accuracy |", "|---|---|---|---|"]
                for m in item["methods"]:
                    acc = "—" if item["kind"] == "timing" else f"{m.get('test_accuracy', float('nan')):.4f}"
                    lines.append(f"| {m['method']} | {m['train_time_s']:.3f} | {m['time_ratio']:.3f} | {acc} |")
            elif item.get("kind") == "airbench" and item.get("status") == "ok":
                ratio = item.get("ratio_ours_over_airbench")
                lines += ["", f"## Fast CIFAR-10 baseline vs airbench94 — {item['label']}", "",
                          f"- ours: {item['ours_mean_s']:.2f} s mean"
                          + (f"; airbench94: {item['airbench_mean_s']:.2f} s; ratio ours / airbench94: {ratio:.2f} "
                             "(goal <= 2)" if ratio is not None else f"; {item.get('note', '')}")]
            elif item.get("status") != "ok":
                lines.append(f"\n- {r['step']} {item.get('name', '')}: {item.get('status')} {item.get('reason', '')}")
    return "\n".join(lines) + "\n"


# ---- the workers (one process per step) -----------------------------------------------------------

def _cifar_experiment(paper: Any) -> str | None:
    """The first paper-scale experiment of *paper* on CIFAR-shaped data with gradient methods."""
    from repro import catalog

    for name, exp in paper.experiments_at("paper").items():
        wl = catalog.get_workload(exp.workload)
        if wl.dataset in ("cifar10", "cifar100") and sum(paper.method(m).gradient for m in exp.methods) >= 2:
            return name
    return None


def _mnist_experiments(paper: Any) -> list[str]:
    from repro import catalog

    return [n for n, e in paper.experiments_at("paper").items() if catalog.get_workload(e.workload).dataset == "mnist"]


def _synthetic(wl: Any, n_train: int, n_test: int) -> Any:
    import torch

    from repro.datasets import TensorData

    classes = int(wl.model_kwargs.get("num_classes", 10))
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n_train + n_test) % classes  # every class present (the validation split is stratified)
    labels = labels[torch.randperm(len(labels), generator=g)]
    return TensorData(name=f"synthetic-{wl.dataset}", task="classification",
                      x_train=torch.randn(n_train, 3, 32, 32, generator=g), y_train=labels[:n_train],
                      x_test=torch.randn(n_test, 3, 32, 32, generator=g), y_test=labels[n_train:],
                      sha256="synthetic", num_classes=classes)


def _device_generator(device: Any) -> dict[str, Any]:
    """The augmentation generator on the device, as ``repro.run.make_context`` gives a trial (where
    this core's ``RunContext`` has one)."""
    import dataclasses

    import torch

    from repro.run import RunContext

    if device.type != "cuda" or "device_generator" not in {f.name for f in dataclasses.fields(RunContext)}:
        return {}
    return {"device_generator": torch.Generator(device=device).manual_seed(0)}


def _fit_methods(paper: Any, experiment: str, data: Any, methods: list[str], overrides: dict[str, Any],
                 tmp: Path) -> list[dict[str, Any]]:
    """Train each method once (seed 0) on *data*; its training time, final test accuracy, ratio."""
    import torch

    from repro import catalog, environment
    from repro.checkpoint import Checkpointer
    from repro.run import RunContext, seed_everything
    from repro.timing import TrainClock

    exp = paper.experiment("paper", experiment)
    wl = catalog.get_workload(exp.workload)
    device = environment.select_device()
    rows = []
    for m in methods:
        hparams = {**paper.trial_hparams("paper", experiment, m), **overrides}
        hparams.pop("train_subset", None)  # the check sizes the data itself
        spec = paper.method(m)
        spec.validate(hparams)
        seed_everything(0, device)
        ctx = RunContext(paper=paper.slug, experiment=experiment, method=m, seed=0, scale="paper", workload=wl,
                         data=wl.split(data).to(device), device=device, clock=TrainClock(device),
                         checkpoint=Checkpointer(tmp / f"{paper.slug}-{experiment}-{m}.pt"),
                         generator=torch.Generator().manual_seed(0), progress=False, **_device_generator(device))
        spec.fit(ctx, hparams)
        last = ctx.history[-1] if ctx.history else {}
        rows.append({"method": m, "baseline": spec.is_baseline, "train_time_s": ctx.clock.elapsed,
                     "epochs": last.get("epoch"), "test_accuracy": last.get("test_accuracy"),
                     "warmup_time_s": ctx.extra.get("warmup_time_s")})
    base = next((r for r in rows if r["baseline"]), rows[0])
    for r in rows:
        r["time_ratio"] = r["train_time_s"] / base["train_time_s"] if base["train_time_s"] > 0 else float("nan")
    return rows


def _pick_methods(paper: Any, experiment: str, limit: int) -> list[str]:
    names = [m for m in paper.experiment("paper", experiment).methods if paper.method(m).gradient]
    base = [m for m in names if paper.method(m).is_baseline][:1]
    return (base + [m for m in names if m not in base])[:limit]


def worker(kind: str, items: list[str], result: Path, dry: bool) -> int:
    import tempfile
    import traceback

    from repro.papers import get_paper

    done: list[dict[str, Any]] = []

    def save() -> None:
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(json.dumps({"kind": kind, "items": done}, indent=2, default=str) + "\n")

    save()
    if dry and kind == "timing" and len(items) > 1:  # the CPU trains one paper only
        keep = DRY_TIMING_PAPER if DRY_TIMING_PAPER in items else items[0]
        done += [{"kind": kind, "name": slug, "status": "skipped", "reason": f"dry run: only {keep} trains on the CPU"}
                 for slug in items if slug != keep]
        items = [keep]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for item in items:
            t0 = time.monotonic()
            rec: dict[str, Any] = {"kind": kind, "name": item}
            try:
                rec.update(_item(kind, item, dry, tmp, get_paper))
                rec.setdefault("status", "ok")
            except Exception as exc:  # noqa: BLE001 - recorded; the next item runs
                rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            rec["wall_s"] = round(time.monotonic() - t0, 2)
            done.append(rec)
            save()  # after every item: a timeout keeps what was finished
            print(f"{kind} {item}: {rec['status']} {rec.get('reason', '')}", flush=True)
    return 1 if any(r["status"] == "failed" for r in done) else 0


def _item(kind: str, item: str, dry: bool, tmp: Path, get_paper: Any) -> dict[str, Any]:
    if kind == "bench":
        out = Path(os.environ.get("DEVICE_CHECK_OUT", tmp)) / "bench" / item
        if item == "trainer":
            from repro.bench_trainer import bench_trainer

            extra = {"workloads": ("mnist_mlp",)} if dry else {}  # dry: the MLP only (the CNN's evaluation is slow)
            doc, js, _ = bench_trainer("cpu" if dry else None, steps=3 if dry else 200, repeats=1 if dry else 5,
                                       out=out, mirror=os.environ.get("REPRO_DATA_MIRROR"), **extra)
        else:
            from repro.bench import bench_paper

            doc, js, _ = bench_paper(item, out, "cpu" if dry else None, [(16, 16, 16)] if dry else None,
                                     [0.5] if dry else (0.3, 0.5, 0.7, 1.0))
        return {"paper": item, "device": doc.get("device"), "json": str(js), "rows": doc.get("rows")}
    if kind == "timing":
        from repro import catalog

        paper = get_paper(item)
        exp = _cifar_experiment(paper)
        wl = catalog.get_workload(paper.experiment("paper", exp).workload)
        n_train, n_test, batch = (60, 10, 25) if dry else (4096, 512, None)
        data = _synthetic(wl, n_train, n_test)
        overrides: dict[str, Any] = {"epochs": 1, "checkpoint_every": 0}
        if batch:
            overrides["batch_size"] = batch
        rows = _fit_methods(paper, exp, data, _pick_methods(paper, exp, 2 if dry else 3), overrides, tmp)
        return {"paper": item, "experiment": exp, "label": SYNTHETIC_LABEL, "methods": rows}
    if kind == "mnist":
        from repro import catalog, paths
        from repro.datasets import load_prepared, prepare
        from repro.datasets.downloaded import resolve_mirror

        paper = get_paper(item)
        exp = _mnist_experiments(paper)[0]
        wl = catalog.get_workload(paper.experiment("paper", exp).workload)
        if not paths.prepared_data_path(wl.dataset).is_file():
            prepare(catalog.get_dataset(wl.dataset), {}, mirror=resolve_mirror(os.environ.get("REPRO_DATA_MIRROR")))
        data = load_prepared(wl.dataset)
        if dry:
            data = replace(data, x_train=data.x_train[:256], y_train=data.y_train[:256], x_test=data.x_test[:256],
                           y_test=data.y_test[:256])
        rows = _fit_methods(paper, exp, data, _pick_methods(paper, exp, 2 if dry else 3),
                            {"epochs": 1 if dry else 2, "checkpoint_every": 0}, tmp)
        return {"paper": item, "experiment": exp, "label": "real MNIST, shortened run", "methods": rows}
    if kind == "airbench":
        from repro import paths
        from repro.bench_fast_cifar import bench_fast_cifar

        real = paths.prepared_data_path("cifar10").is_file()  # the device has no network: usually synthetic
        doc, _, _ = bench_fast_cifar("cpu" if dry else None, seeds=1 if dry else 2, synthetic=not real, quick=dry,
                                     out=tmp / "fast_cifar")
        label = "CIFAR-10: time to 94%" if real else SYNTHETIC_LABEL
        return {"label": label, "ratio_ours_over_airbench": doc["ratio"], "ours_mean_s": doc["ours_mean_s"],
                "airbench_mean_s": doc.get("airbench_mean_s"), "ours": doc["ours"], "airbench": doc["airbench"],
                "device": doc["device"], **({} if doc["airbench"] is not None else
                                            {"note": "airbench not run (needs CUDA and the airbench package)"})}
    raise ValueError(f"unknown worker kind {kind!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="device_check.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Steps: " + ", ".join(STEPS) + ". Summary: <out>/device_check.{json,md}.")
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--out", default="device_check_out", help="output folder (default: device_check_out)")
    parser.add_argument("--budget", type=float, default=480.0, help="total wall-clock seconds (default 480)")
    parser.add_argument("--dry-run", action="store_true", help="the CPU, tiny sizes: checks the machinery (< 2 min)")
    parser.add_argument("--only", help="comma-separated steps to run (default: all): " + ", ".join(STEPS))
    w = sub.add_parser("_worker", help="internal: one step's work in its own process")
    w.add_argument("kind", choices=("bench", "timing", "mnist", "airbench"))
    w.add_argument("--items", required=True)
    w.add_argument("--result", required=True)
    w.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "_worker":
        return worker(args.kind, [i for i in args.items.split(",") if i], Path(args.result), args.dry_run)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(STEPS):
        print(f"error: --only: unknown step(s) {', '.join(sorted(only - set(STEPS)))}; steps: {', '.join(STEPS)}",
              file=sys.stderr)
        return 2
    if args.budget <= 0:
        print(f"error: --budget must be > 0 seconds, got {args.budget}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    os.environ["DEVICE_CHECK_OUT"] = str(out)
    doc = orchestrate(out, args.budget, args.dry_run, only)
    print((out / "device_check.md").read_text(), end="")
    print(f"wrote {out / 'device_check.json'} and {out / 'device_check.md'}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in doc["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
