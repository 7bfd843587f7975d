"""Kernel benchmark harness shared by every kernel-bearing paper package (``repro bench <paper>``).

A package registers its kernels through ``Paper.kernel_benchmarks``: a callable returning
``KernelBenchmark`` cases. Each case's ``make(m, n, k, ratio, device, reference)`` builds its inputs
for an (M x K) @ (K x N) problem at keep ratio *ratio* and returns two thunks: the kernel under
test and the dense product it replaces (``a @ b``: cuBLAS on CUDA). The harness times both over a
grid of shapes and keep ratios and writes a JSON and a Markdown table naming the device.

* CUDA: ``triton.testing.do_bench`` when triton is installed, otherwise CUDA events (median of
  repeats after warm-up); large shapes.
* CPU: the package's reference paths (``reference=True``) at small shapes, timed with
  ``time.perf_counter`` (minimum of repeats); the output says so — CPU numbers say nothing about the GPU kernels.

Goal per GEMM row: time(sampled at keep ratio r) <= (r + 0.1) x time(dense); each row says whether
it meets it (judged on large shapes only: small problems are launch-bound).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.environment import cpu_name
from repro.errors import ReproError
from repro.papers import get_paper

Thunk = Callable[[], Any]

CUDA_SHAPES: tuple[tuple[int, int, int], ...] = ((1024, 1024, 1024), (4096, 4096, 4096), (8192, 8192, 8192))
CPU_SHAPES: tuple[tuple[int, int, int], ...] = ((128, 128, 128), (256, 256, 512))
RATIOS: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0)
GOAL_SLACK = 0.1
LARGE_MACS = 4096 ** 3  # rows at or above this many MACs are judged against the goal


@dataclass(frozen=True)
class KernelBenchmark:
    """One kernel case: ``make(m, n, k, ratio, device, reference) -> (kernel_thunk, dense_thunk)``.

    ``gemm``: the case is a sampled GEMM, judged against the (r + 0.1) x dense goal.
    """

    name: str
    make: Callable[[int, int, int, float, torch.device, bool], tuple[Thunk, Thunk]]
    description: str = ""
    gemm: bool = True


def time_call(fn: Thunk, device: torch.device, repeats: int = 5, warmup: int = 3, inner: int = 1) -> float:
    """Median wall time (seconds) of *inner* calls of ``fn()``, divided by *inner*, after *warmup*
    calls; CUDA is synchronised before and after each timing. The one timer the packages'
    benchmark scripts share (kernel tables use ``do_bench`` / the minimum, below)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def _time_cpu(fn: Thunk, repeats: int = 15, warmup: int = 3) -> float:
    """Minimum over repeats (ms): on a shared CPU the median picks up scheduler stalls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def _time_cuda(fn: Thunk, repeats: int = 20, warmup: int = 5) -> float:
    try:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100))
    except ImportError:
        pass
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)

    return f"CPU {cpu_name()} ({torch.get_num_threads()} threads)"


def run_benchmarks(cases: Sequence[KernelBenchmark], device: torch.device,
                   shapes: Sequence[tuple[int, int, int]] | None = None,
                   ratios: Sequence[float] = RATIOS) -> dict[str, Any]:
    """Time every case at every shape and ratio; returns the result document (rows + metadata)."""
    if not cases:
        raise ReproError("no kernel benchmarks registered (Paper.kernel_benchmarks is empty)")
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ReproError("--device cuda requested but CUDA is not available")
    shapes = list(shapes or (CUDA_SHAPES if cuda else CPU_SHAPES))
    for r in ratios:
        if not 0 < r <= 1:
            raise ReproError(f"keep ratio must be in (0, 1], got {r!r}")
    timer = _time_cuda if cuda else _time_cpu
    rows = []
    for case in cases:
        for m, n, k in shapes:
            for r in ratios:
                kernel, dense = case.make(m, n, k, r, device, not cuda)
                t_kernel, t_dense = timer(kernel), timer(dense)
                rel = t_kernel / t_dense if t_dense > 0 else float("nan")
                large = m * n * k >= LARGE_MACS
                goal = r + GOAL_SLACK
                rows.append({
                    "kernel": case.name, "m": m, "n": n, "k": k, "ratio": r,
                    "kernel_ms": t_kernel, "dense_ms": t_dense, "relative": rel,
                    "goal": goal if case.gemm else None,
                    "meets_goal": (rel <= goal) if case.gemm else None,
                    "judged": bool(case.gemm and large),
                })
    mode = ("CUDA: kernels timed against the dense cuBLAS product" if cuda else
            "CPU: PyTorch reference paths at small shapes (no GPU kernels were run; "
            "these timings say nothing about GPU speed)")
    return {
        "device": device_label(device), "device_type": device.type, "mode": mode,
        "torch": torch.__version__, "goal": f"sampled GEMM at keep ratio r <= (r + {GOAL_SLACK}) x dense, large shapes",
        "cases": {c.name: c.description for c in cases}, "rows": rows,
    }


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [f"Device: **{doc['device']}** (torch {doc['torch']}). Mode: {doc['mode']}.", "",
             f"Goal: {doc['goal']}.", "",
             "| kernel | M×N×K | keep r | kernel ms | dense ms | kernel/dense | goal r+0.1 | meets goal |",
             "|---|---|---|---|---|---|---|---|"]
    for row in doc["rows"]:
        if row["goal"] is None:
            goal, meets = "—", "—"
        else:
            goal = f"{row['goal']:.2f}"
            meets = ("yes" if row["meets_goal"] else "no") + ("" if row["judged"] else " (small shape, not judged)")
        lines.append(f"| {row['kernel']} | {row['m']}×{row['n']}×{row['k']} | {row['ratio']:.2f} | "
                     f"{row['kernel_ms']:.4f} | {row['dense_ms']:.4f} | {row['relative']:.3f} | {goal} | {meets} |")
    return "\n".join(lines) + "\n"


def write_results(doc: dict[str, Any], prefix: Path) -> tuple[Path, Path]:
    """Write ``<prefix>.json`` and ``<prefix>.md``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    js, md = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")
    js.write_text(json.dumps(doc, indent=2) + "\n")
    md.write_text(to_markdown(doc))
    return js, md


def default_prefix(package_dir: Path, slug: str, device: torch.device) -> Path:
    label = "cuda-" + torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label.lower())
    return package_dir / "benchmarks" / "results" / f"{slug}-{safe}"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """"512x512x512,1024x1024x4096" -> [(512, 512, 512), (1024, 1024, 4096)] (M x N x K)."""
    shapes = []
    for part in filter(None, text.split(",")):
        try:
            m, n, k = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ReproError(f"--shapes: expected MxNxK, got {part!r}") from None
        if min(m, n, k) < 1:
            raise ReproError(f"--shapes: dimensions must be >= 1, got {part!r}")
        shapes.append((m, n, k))
    return shapes


def bench_paper(slug: str, out: Path | None = None, device: str | None = None,
                shapes: Sequence[tuple[int, int, int]] | None = None,
                ratios: Sequence[float] = RATIOS) -> tuple[dict[str, Any], Path, Path]:
    """Run a registered paper's kernel benchmarks and write the tables."""

    paper = get_paper(slug)
    if paper.kernel_benchmarks is None:
        raise ReproError(f"paper {slug!r} registers no kernel benchmarks (Paper.kernel_benchmarks)")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    doc = run_benchmarks(list(paper.kernel_benchmarks()), dev, shapes, ratios)
    doc["paper"] = slug
    js, md = write_results(doc, out or default_prefix(paper.package_dir, slug, dev))
    return doc, js, md
