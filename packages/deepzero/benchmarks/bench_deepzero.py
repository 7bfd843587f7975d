"""Time one sparse-CGE step three ways — naive, feature reuse (the paper's), reuse + rank-one delta
(ours); print the ratios against the naive path and the hardware, write JSON + Markdown under
benchmarks/results/deepzero-steps-<device>. (The kernel alone against the naive batched forward:
``repro bench deepzero``, which writes benchmarks/results/deepzero-<device>.)

    uv run python packages/deepzero/benchmarks/bench_deepzero.py                 # CUDA if present
    uv run python packages/deepzero/benchmarks/bench_deepzero.py --device cpu --quick

Each case builds its model (random init), a random batch, ZO-GraSP-free layer ratios (uniform
``--sparsity``, default 0.9) and one random mask; a step is ``engine.cge`` over the active
coordinates (every bias / BN parameter, the unmasked weights). ResNet-20 at CIFAR size evaluates a
fixed sample of ``--coords`` active coordinates per tensor (the same sample for the three paths);
``per_query_ms`` divides by the queries evaluated. Wall time: ``repro.bench.time_call`` (median of
repeats after warm-up, CUDA synchronised). The three paths give the same estimates (tested).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from repro.bench import default_prefix, device_label, time_call
from repro.models import mlp

from repro_deepzero import engine
from repro_deepzero.kernels import use_triton
from repro_deepzero.models import resnet_s
from repro_deepzero.zo_grasp import random_masks, uniform_sparsities

PACKAGE = Path(__file__).resolve().parents[1]


def _cases(device: torch.device, quick: bool) -> list[tuple[str, torch.nn.Module, torch.Tensor, int | None]]:
    cuda = device.type == "cuda"
    out = [("digits MLP 64-16-10, batch 64", mlp([64, 16, 10], "relu"), torch.rand(64, 1, 8, 8), None),
           ("ResNet-8 w4 digits 8x8, batch 32", resnet_s(8, 10, 4, 1), torch.rand(32, 1, 8, 8), None)]
    if not quick or cuda:
        b = 256 if cuda else 8
        out.append((f"ResNet-20 CIFAR 32x32, batch {b}", resnet_s(20), torch.randn(b, 3, 32, 32),
                    64 if cuda else 8))
    return out


def bench_steps(device: torch.device, sparsity: float, quick: bool, coords_per_tensor: int | None) -> list[dict]:
    rows = []
    for label, model, x, per_tensor in _cases(device, quick):
        per_tensor = coords_per_tensor or per_tensor
        torch.manual_seed(0)
        model = model.to(device).train()
        x = x.to(device)
        y = (torch.arange(len(x)) % 10).to(device)
        prog = engine.Program(model)
        sizes = {n: prog.params[n].numel() for n in prog.weight_names}
        g = torch.Generator().manual_seed(0)
        masks = random_masks(sizes, uniform_sparsities(sizes, sparsity), g)
        coords = {n: torch.arange(p.numel()) for n, p in prog.params.items()}
        coords.update(masks)
        if per_tensor:
            coords = {n: c[torch.randperm(len(c), generator=g)[:per_tensor].sort().values] for n, c in coords.items()}
        coords = {n: c.to(device) for n, c in coords.items()}
        queries = sum(len(c) for c in coords.values())
        row = {"case": label, "params": prog.n_params, "queries": queries}
        for mode in engine.MODES:
            t = time_call(lambda: engine.cge(prog, x, y, coords, 5e-3, mode), device, repeats=3, warmup=1)
            row[f"{mode}_ms"] = t * 1e3
            row[f"{mode}_per_query_ms"] = t * 1e3 / queries
        row["reuse_vs_naive"] = row["reuse_ms"] / row["naive_ms"]
        row["rank_one_vs_naive"] = row["rank_one_ms"] / row["naive_ms"]
        print(f"{label}: {queries} queries; naive {row['naive_ms']:.1f} ms, reuse {row['reuse_ms']:.1f} ms "
              f"({row['reuse_vs_naive']:.3f}x), rank-one {row['rank_one_ms']:.1f} ms ({row['rank_one_vs_naive']:.3f}x)")
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"))
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--coords", type=int,
                    help="active coordinates sampled per tensor (default: all; ResNet-20: 8 CPU / 64 CUDA)")
    ap.add_argument("--quick", action="store_true", help="CPU: skip ResNet-20")
    ap.add_argument("--out", help="output prefix (default: benchmarks/results/deepzero-steps-<device>)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(torch.get_num_threads() if dev.type == "cuda" else 1)
    steps = bench_steps(dev, args.sparsity, args.quick, args.coords)
    doc = {"paper": "deepzero", "device": device_label(dev), "torch": torch.__version__,
           "kernel_path": "Triton" if use_triton(torch.zeros(1, device=dev)) else "PyTorch reference",
           "cge_steps": steps}
    prefix = Path(args.out) if args.out else default_prefix(PACKAGE, "deepzero-steps", dev)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"Device: **{doc['device']}** (torch {doc['torch']}; rank-one delta: {doc['kernel_path']}).", "",
             f"One sparse-CGE step ({args.sparsity:.0%} of the weights masked, uniform ratios), median wall time:", "",
             "| case | params | queries | naive ms | reuse ms | rank-one ms | reuse / naive | rank-one / naive |",
             "|---|---|---|---|---|---|---|---|"]
    for r in steps:
        lines.append(f"| {r['case']} | {r['params']} | {r['queries']} | {r['naive_ms']:.1f} | {r['reuse_ms']:.1f} | "
                     f"{r['rank_one_ms']:.1f} | {r['reuse_vs_naive']:.3f} | {r['rank_one_vs_naive']:.3f} |")
    md = prefix.with_name(prefix.name + ".md")
    md.write_text("\n".join(lines) + "\n")
    print(md.read_text())
    print(f"wrote {prefix}.json and {md}")
    assert all(math.isfinite(r["naive_ms"]) for r in steps)


if __name__ == "__main__":
    main()
