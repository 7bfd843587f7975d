"""``repro bench trainer``: the core Trainer's overhead against a bare PyTorch loop.

Same workload, model initialisation, data, shuffling, optimizer and number of steps; the bare
loop is the textbook ``zero_grad / forward / loss / backward / step`` over shuffled mini-batches.
The two are timed alternately (bare, trainer, bare, trainer, ...) so drift on a shared machine
hits both, and the ratio is the median of the per-pair ratios. The Trainer's time is its own
training clock (evaluation excluded, as in every trial). Goal: ratio <= 1.05 (<= 1.10 on a CPU).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from repro import catalog, environment, paths
from repro.checkpoint import Checkpointer
from repro.datasets import load_prepared, prepare
from repro.datasets.downloaded import resolve_mirror
from repro.files import write_json, write_text
from repro.run import RunContext, seed_everything
from repro.timing import TrainClock
from repro.trainer import Trainer, build_optimizer

WORKLOADS = ("mnist_mlp", "mnist_cnn")
GOAL = {"cuda": 1.05, "cpu": 1.10}


def _data(workload: str, mirror: str | None) -> Any:
    wl = catalog.get_workload(workload)
    path = paths.prepared_data_path(wl.dataset)
    if not path.is_file():
        prepare(catalog.get_dataset(wl.dataset), {}, mirror=resolve_mirror(mirror))
    return wl, wl.split(load_prepared(wl.dataset))


def _bare(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
          loss_fn: Any, batch: int, gen: torch.Generator, device: torch.device) -> float:
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    order = torch.randperm(len(x), generator=gen).to(device)
    model.train()
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    sync()
    return time.perf_counter() - t0


def bench_workload(workload: str, device: torch.device, steps: int = 200, repeats: int = 5,
                   mirror: str | None = None) -> dict[str, Any]:
    wl, data = _data(workload, mirror)
    batch = wl.batch_size
    n = min(len(data.x_train), steps * batch)
    data = replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n]).to(device)
    bare_t, trainer_t = [], []
    for r in range(repeats + 1):  # the first pair warms up (allocator, kernels) and is dropped
        seed_everything(r, device)
        model = wl.build_model().to(device)
        opt = build_optimizer("sgd", model.parameters(), lr=0.01, momentum=0.9)
        t_bare = _bare(model, opt, data.x_train, data.y_train, wl.loss_fn(), batch,
                       torch.Generator().manual_seed(r), device)
        seed_everything(r, device)
        model = wl.build_model()
        opt = build_optimizer("sgd", model.parameters(), lr=0.01, momentum=0.9)
        ctx = RunContext(paper="bench", experiment=workload, method="trainer", seed=r, scale="smoke", workload=wl,
                         data=data, device=device, clock=TrainClock(device),
                         checkpoint=Checkpointer(Path("/nonexistent") / "never-written.pt"),
                         generator=torch.Generator().manual_seed(r), progress=False)
        Trainer(ctx, model, opt, epochs=1, batch_size=batch).fit()
        if r:
            bare_t.append(t_bare)
            trainer_t.append(ctx.clock.elapsed)
    ratios = [t / b for t, b in zip(trainer_t, bare_t)]
    return {"workload": workload, "steps": -(-n // batch), "batch_size": batch, "repeats": repeats,
            "bare_s": statistics.median(bare_t), "trainer_s": statistics.median(trainer_t),
            "ratio": statistics.median(ratios), "ratios": ratios}


def bench_trainer(device: str | None = None, workloads: tuple[str, ...] = WORKLOADS, steps: int = 200,
                  repeats: int = 5, out: Path | None = None, mirror: str | None = None) -> tuple[dict, Path, Path]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = [bench_workload(w, dev, steps, repeats, mirror) for w in workloads]
    goal = GOAL["cuda" if dev.type == "cuda" else "cpu"]
    doc = {"device": environment.device_name(dev), "hardware": environment.hardware(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "goal": goal, "rows": rows,
           "meets_goal": all(r["ratio"] <= goal for r in rows)}
    lines = [f"Device: **{doc['device']}** (torch {doc['torch']}, {doc['threads']} thread(s)). "
             f"Trainer vs a bare PyTorch loop, same steps; median of {repeats} alternating pairs.", "",
             "| workload | steps × batch | bare s | Trainer s | Trainer / bare | goal |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['workload']} | {r['steps']} × {r['batch_size']} | {r['bare_s']:.4f} | {r['trainer_s']:.4f} | "
              f"{r['ratio']:.3f} | ≤ {goal:.2f} {'✔' if r['ratio'] <= goal else '✘'} |" for r in rows]
    prefix = out or paths.project_root() / "packages" / "core" / "benchmarks" / "results" / f"trainer-{dev.type}"
    js = write_json(doc, prefix.with_name(prefix.name + ".json"))
    md = write_text("\n".join(lines) + "\n", prefix.with_name(prefix.name + ".md"))
    return doc, js, md
