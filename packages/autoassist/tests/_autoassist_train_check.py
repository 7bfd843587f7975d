"""Run by test_autoassist_kernel_switch.py in a subprocess with TRITON_INTERPRET=1 (set before triton is
imported), and imported by its gpu test: AutoAssist training with ``kernel="triton"`` (the Boss
selects with the fused kernel) equals the same training with ``kernel="reference"`` — same
evaluation rows, same instance counts — and the Triton path actually launches the kernel."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.run import RunContext, seed_everything
from repro.timing import TrainClock
from repro.workloads import Workload

from repro_autoassist import kernels
from repro_autoassist.paper import PAPER

WL = Workload(name="blobs_mlp", dataset="blobs", model="mlp", model_kwargs={"sizes": [8, 16, 3], "activation": "relu"},
              loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.9, batch_size=16,
              max_epochs=2, description="kernel switch check")
HPARAMS = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 2, "batch_size": 16, "selection": "autoassist",
           "mode": "sync"}


def _blobs(n: int = 160) -> TensorData:
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + torch.randn(n, 8, generator=g)
    return TensorData(name="blobs", task="classification", x_train=x[: n // 2], y_train=y[: n // 2],
                      x_test=x[n // 2:], y_test=y[n // 2:], num_classes=3)


def train(kernel: str, device: str, tmp: Path) -> tuple[list[dict], dict, int]:
    """Evaluation rows (times dropped), the instance counts, and the fused-kernel launches."""
    launched = 0
    real = kernels.fused_select_triton

    def counting(*args, **kwargs):
        nonlocal launched
        launched += 1
        return real(*args, **kwargs)

    kernels.fused_select_triton = counting
    try:
        dev = torch.device(device)
        seed_everything(0, dev)
        data = WL.split(_blobs()) if hasattr(WL, "split") else _blobs()
        ctx = RunContext(paper="autoassist", experiment="blobs", method="autoassist", seed=0, scale="smoke",
                         workload=WL, data=data.to(dev), device=dev, clock=TrainClock(dev),
                         checkpoint=Checkpointer(tmp / f"{kernel}.pt"), generator=torch.Generator().manual_seed(0),
                         progress=False)
        PAPER.methods["autoassist"].fit(ctx, {**HPARAMS, "kernel": kernel})
    finally:
        kernels.fused_select_triton = real
    rows = [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in ctx.history]
    counts = {k: ctx.extra[k] for k in ("instances_backpropagated", "acceptance_rate", "empty_batches")}
    return rows, counts, launched


def compare(device: str, rel: float) -> list[str]:
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_rows, ref_counts, ref_launched = train("reference", device, Path(tmp))
        got_rows, got_counts, got_launched = train("triton", device, Path(tmp))
    if ref_launched or not got_launched:
        failures.append(f"fused selection launches: reference={ref_launched} triton={got_launched}")
    if got_counts != ref_counts:
        failures.append(f"instance counts differ: reference {ref_counts} triton {got_counts}")
    for a, b in zip(ref_rows, got_rows, strict=True):
        for key in a:
            va, vb = float(a[key]), float(b[key])
            if abs(va - vb) > rel * max(1.0, abs(va)):
                failures.append(f"epoch row {key}: reference {va} triton {vb}")
    print(f"reference {ref_counts}; triton {got_counts}; {got_launched} fused selections")
    return failures


if __name__ == "__main__":
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    problems = compare("cpu", rel=1e-5)
    print("\n".join(problems) or "ok")
    sys.exit(1 if problems else 0)
