"""Benchmarks of the oto package; each writes a JSON and a Markdown table naming the hardware.

    uv run --frozen python packages/oto/benchmarks/bench_oto.py inference   # slim vs full model latency
    uv run --frozen python packages/oto/benchmarks/bench_oto.py step        # one optimizer step: HSPG vs SGD
    uv run --frozen python packages/oto/benchmarks/bench_oto.py kernels     # = `repro bench oto` (core harness)
    ... --device cuda   (default: cuda when present)

* ``inference``: the paper's point — the slim network is a real smaller network, so it runs
  faster. For each model, a fraction of the groups of every prunable ZIG set is set to zero (at
  random, seed 0), the slim model exported, and the forward pass (eval, no grad) of the full and
  the slim model timed on the same batch (full and slim calls alternate; the minimum over repeats; CUDA synchronised);
  the table gives the FLOPs remaining (the ideal time ratio) beside the measured time ratio.
* ``step``: one optimizer step over a real model's parameters with random gradients — plain SGD
  (``torch.optim.SGD``), the HSPG half-space step as the Trainer runs it on CPU (subgradient
  added to the gradients, SGD step, projection), the unfused PyTorch reference step
  (``hspg.step_reference`` per ZIG set + SGD on the rest), and on CUDA the fused Triton kernel
  (one launch for every ZIG set + SGD on the rest); ratios against plain SGD.
* ``kernels``: the core harness on synthetic ZIG sets (``repro_oto.kernels.kernel_benchmarks``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from repro import environment
from repro.bench import default_prefix, parse_shapes, run_benchmarks, write_results

from repro_oto import hspg
from repro_oto.kernels import ZigStep, kernel_benchmarks
from repro_oto.models import MODELS
from repro_oto.slim import count_macs, count_params, export_slim
from repro_oto.zig import build_zigs, zero_groups

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# model, input shape, batch (CPU, CUDA)
INFERENCE_MODELS = (("oto_bn_cnn", (1, 8, 8), 256, 4096), ("oto_vgg16", (3, 32, 32), 16, 256),
                    ("oto_resnet50_cifar", (3, 32, 32), 4, 256))
STEP_MODELS = (("oto_vgg16", (3, 32, 32)), ("oto_resnet50_cifar", (3, 32, 32)))
ZERO_FRACTIONS = (0.5, 0.75)


def hardware(device: torch.device) -> dict:
    return {"device": environment.device_name(device),
            "cpu": environment.cpu_name(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_1min": os.getloadavg()[0]}


def timed(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
          warmup: int = 2) -> dict[str, float]:
    """Seconds per call of each thunk: the calls alternate (a, b, c, a, b, c, ...) so that a busy
    machine slows every case alike; the minimum over *repeats* rounds (CUDA synchronised)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def sparsify(name: str, shape: tuple[int, ...], fraction: float, device: torch.device):
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    x = torch.randn(2, *shape, device=device)
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.train()
        model(torch.randn(8, *shape, device=device))
    model.eval()
    partition = build_zigs(model, x)
    g = torch.Generator().manual_seed(0)
    for s in partition.prunable_sets:
        zero_groups(s.members(model), torch.randperm(s.size, generator=g)[: int(s.size * fraction)].to(device))
    return model, partition


def bench_inference(device: torch.device, repeats: int) -> dict:
    rows = []
    for name, shape, cpu_batch, cuda_batch in INFERENCE_MODELS:
        batch = cuda_batch if device.type == "cuda" else cpu_batch
        for fraction in ZERO_FRACTIONS:
            model, partition = sparsify(name, shape, fraction, device)
            slim = export_slim(model, partition).eval()
            x = torch.randn(batch, *shape, device=device)
            with torch.no_grad():
                diff = float((model(x) - slim(x)).abs().max())
                t = timed({"full": lambda: model(x), "slim": lambda: slim(x)}, device, repeats)
            t_full, t_slim = t["full"], t["slim"]
            flops = count_macs(slim, x) / count_macs(model, x)
            rows.append({"model": name, "batch": batch, "zero_fraction": fraction, "flops_remaining": flops,
                         "params_remaining": count_params(slim) / count_params(model), "full_ms": 1e3 * t_full,
                         "slim_ms": 1e3 * t_slim, "time_ratio": t_slim / t_full, "speedup": t_full / t_slim,
                         "max_abs_diff": diff})
            print(f"{name} zero {fraction:.2f}: FLOPs {flops:.3f}, full {1e3 * t_full:.2f} ms, "
                  f"slim {1e3 * t_slim:.2f} ms, x{t_full / t_slim:.2f}", flush=True)
    return {"benchmark": "inference", **hardware(device), "repeats": repeats, "rows": rows}


def inference_md(doc: dict) -> str:
    lines = [f"Device: **{doc['device']}** ({doc['cpu']}, {doc['torch_threads']} torch threads, torch {doc['torch']}; "
             f"1-min load average {doc['load_average_1min']:.1f}). Forward pass in eval mode, no grad; full and slim "
             f"calls alternate, minimum over {doc['repeats']} rounds; groups zeroed at random in every prunable ZIG "
             f"set.", "",
             "| model | batch | groups zeroed | FLOPs remaining | params remaining | full ms | slim ms | "
             "slim / full time | speed-up | max abs diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['zero_fraction']:.2f} | {r['flops_remaining']:.3f} | "
                     f"{r['params_remaining']:.3f} | {r['full_ms']:.2f} | {r['slim_ms']:.2f} | {r['time_ratio']:.3f} | "
                     f"{r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def bench_step(device: torch.device, repeats: int) -> dict:
    rows = []
    for name, shape in STEP_MODELS:
        model, partition = sparsify(name, shape, 0.5, device)
        sets = partition.grouped_parameters(model)
        grouped = {id(p) for s in sets for p in s}
        params = list(model.parameters())
        others = [p for p in params if id(p) not in grouped]
        gen = torch.Generator().manual_seed(1)
        for p in params:
            p.grad = (1e-3 * torch.randn(p.shape, generator=gen)).to(device)
        grads = [[p.grad for p in s] for s in sets]
        sgd = torch.optim.SGD(params, lr=1e-3)
        sgd_rest = torch.optim.SGD(others, lr=1e-3)
        step = ZigStep(sets, [0.0] * len(sets))

        def plain():
            sgd.step()

        def optimizer_path():
            for s, g in zip(sets, grads):
                hspg.subgradient_(s, g, 1e-3)
            saved = [[p.detach().clone() for p in s] for s in sets]
            sgd.step()
            for s, x in zip(sets, saved):
                hspg.half_space_project_(s, x, 0.0)

        def unfused():
            step(grads, None, mode="half_space", lr=1e-3, lmbda=1e-3, force_reference=True)
            sgd_rest.step()

        cases = {"sgd": plain, "hspg_optimizer_path": optimizer_path, "hspg_unfused_reference": unfused}
        if step.triton:
            def fused():
                step(grads, None, mode="half_space", lr=1e-3, lmbda=1e-3)
                sgd_rest.step()
            cases["hspg_fused_triton"] = fused
        times = timed(cases, device, repeats)
        for k, t in times.items():
            rows.append({"model": name, "params": sum(p.numel() for p in params), "zig_sets": len(sets),
                         "step": k, "ms": 1e3 * t, "vs_sgd": t / times["sgd"]})
            print(f"{name} {k}: {1e3 * t:.2f} ms ({t / times['sgd']:.2f}x SGD)", flush=True)
    return {"benchmark": "step", **hardware(device), "repeats": repeats, "rows": rows}


def step_md(doc: dict) -> str:
    lines = [f"Device: **{doc['device']}** ({doc['cpu']}, {doc['torch_threads']} torch threads, torch {doc['torch']}; "
             f"1-min load average {doc['load_average_1min']:.1f}). One optimizer step over every parameter, half the "
             f"groups zero; the cases alternate, minimum over {doc['repeats']} rounds.", "",
             "| model | params | ZIG sets | step | ms | vs SGD |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['zig_sets']} | {r['step']} | {r['ms']:.2f} | "
                     f"{r['vs_sgd']:.2f}x |")
    return "\n".join(lines) + "\n"


def write(doc: dict, md: str, stem: str, device: torch.device) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    label = "cuda" if device.type == "cuda" else "cpu"
    (RESULTS / f"{stem}-{label}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{stem}-{label}.md").write_text(md)
    print(md, end="")
    print(f"wrote {RESULTS / f'{stem}-{label}.json'} and .md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("inference", "step", "kernels"))
    ap.add_argument("--device", choices=("cpu", "cuda"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as a pipeline trial)")
    ap.add_argument("--shapes", help="kernels: comma-separated MxNxK (M groups of K elements, N // 512 sets)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    if args.what == "inference":
        doc = bench_inference(dev, args.repeats)
        write(doc, inference_md(doc), "oto-inference", dev)
    elif args.what == "step":
        doc = bench_step(dev, args.repeats)
        write(doc, step_md(doc), "oto-step", dev)
    else:
        doc = run_benchmarks(kernel_benchmarks(), dev, parse_shapes(args.shapes) if args.shapes else None)
        doc["paper"] = "oto"
        js, md = write_results(doc, default_prefix(HERE.parent, "oto", dev))
        print(md.read_text(), end="")
        print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
