"""AutoAssist overheads on this machine.

1. Boss step time: one SGD step (forward, backward, update) on a fixed batch, alone vs with the
   Assistant beside it — ``sync`` (scored and trained in the Boss's thread) and ``async`` (scored
   by the Boss from the latest snapshot, trained by the background thread). Ratio to the plain step.
   Selection is disabled in this measurement (the whole batch is back-propagated) so only the
   Assistant's cost is measured, not the savings.
2. The fused selection (per-sample loss + Assistant score + Bernoulli acceptance + compaction):
   the Triton kernel vs the PyTorch reference, at batch sizes 256 / 4096 / 65536. On a CPU only the
   reference runs (the Triton kernel needs a GPU; its CPU interpreter is for tests, not timing).

    uv run python packages/autoassist/benchmarks/bench_autoassist.py --help
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from repro import environment
from repro.bench import time_call
from repro.models import build_model

from repro_autoassist.assistant import Assistant
from repro_autoassist.kernels import fused_select_reference, triton_available
from repro_autoassist.shrinking import AsyncExchange, SyncExchange

MODELS = {  # name -> (builder, kwargs, input shape)
    "mlp_digits": ("mlp", {"sizes": [64, 64, 10], "activation": "relu"}, (64,)),
    "small_cnn_digits": ("small_cnn", {"in_channels": 1, "num_classes": 10}, (1, 8, 8)),
    "resnet18_cifar": ("resnet18_cifar", {"num_classes": 10}, (3, 32, 32)),
}


def _time(fn: Callable[[], None], device: torch.device, steps: int, repeats: int, warmup: int) -> float:
    return time_call(fn, device, repeats=repeats, warmup=warmup, inner=steps)


def bench_boss(model_name: str, batch: int, steps: int, repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    builder, kwargs, shape = MODELS[model_name]
    torch.manual_seed(0)
    model = build_model(builder, **kwargs).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    dim = x[0].numel()
    gen = torch.Generator().manual_seed(0)

    def step(exchange=None) -> None:
        if exchange is not None:
            w, u = exchange.current()
            torch.sigmoid(x.reshape(batch, -1) @ w + u[y])  # score the candidates
        out = model(x)
        loss = F.cross_entropy(out, y, reduction="none")
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt.step()
        if exchange is not None:
            exchange.report(x.reshape(batch, -1), y, loss.detach())

    res = {"plain": _time(step, device, steps, repeats, warmup)}
    sync = SyncExchange(Assistant.create(dim, 10, gen, device))
    res["sync"] = _time(lambda: step(sync), device, steps, repeats, warmup)
    asyn = AsyncExchange(Assistant.create(dim, 10, gen, device), queue_size=16)
    res["async"] = _time(lambda: step(asyn), device, steps, repeats, warmup)
    asyn.drain(10.0)
    asyn.close()
    res["async_dropped"] = asyn.dropped
    return res


def bench_select(n: int, dim: int, classes: int, repeats: int, device: torch.device, use_triton: bool) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(n, classes, generator=g).to(device), torch.randn(n, dim, generator=g).to(device),
            torch.randint(0, classes, (n,), generator=g).to(device), (0.01 * torch.randn(dim, generator=g)).to(device),
            torch.zeros(classes).to(device), 0.3, torch.rand(n, generator=g).to(device))
    out = {"reference": _time(lambda: fused_select_reference(*args), device, 5, repeats, 2)}
    if use_triton:
        from repro_autoassist.kernels import fused_select_triton

        out["triton"] = _time(lambda: fused_select_triton(*args), device, 5, repeats, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="Boss model (default: mlp_digits on CPU, resnet18_cifar on CUDA)")
    p.add_argument("--batch-size", type=int, default=None, help="Boss batch (default 32 on CPU, 128 on CUDA)")
    p.add_argument("--steps", type=int, default=50, help="Boss steps per timing")
    p.add_argument("--repeats", type=int, default=5, help="timings per setting (median)")
    p.add_argument("--warmup", type=int, default=10, help="untimed Boss steps first")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 4096, 65536], help="selection batch sizes")
    p.add_argument("--dim", type=int, default=3072, help="Assistant input dimension for the selection benchmark (CIFAR: 3072)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = a.model or ("resnet18_cifar" if device.type == "cuda" else "mlp_digits")
    batch = a.batch_size or (128 if device.type == "cuda" else 32)
    use_triton = device.type == "cuda" and triton_available()
    print(f"hardware: {environment.device_name(device)}; cpu: {environment.cpu_name()}; torch {torch.__version__}; "
          f"threads {torch.get_num_threads()}")
    r = bench_boss(model, batch, a.steps, a.repeats, a.warmup, device)
    print(f"\nBoss step ({model}, batch {batch}, median of {a.repeats} x {a.steps} steps)")
    print("| Assistant | step (ms) | ratio to plain |")
    print("|---|---|---|")
    for k in ("plain", "sync", "async"):
        print(f"| {k} | {r[k] * 1e3:.3f} | {r[k] / r['plain']:.3f} |")
    print(f"(async: {int(r['async_dropped'])} reports dropped because the Assistant's queue was full)")
    print(f"\nFused selection (loss + score + acceptance + compaction), D = {a.dim}, C = 10"
          + ("" if use_triton else "; CPU: PyTorch reference only (no Triton kernel timing without a GPU)"))
    print("| batch | reference (ms) | triton (ms) | speed-up |")
    print("|---|---|---|---|")
    for n in a.sizes:
        s = bench_select(n, a.dim, 10, a.repeats, device, use_triton)
        tr = s.get("triton")
        print(f"| {n} | {s['reference'] * 1e3:.3f} | {tr * 1e3:.3f} | {s['reference'] / tr:.2f}x |" if tr else
              f"| {n} | {s['reference'] * 1e3:.3f} | – | – |")


if __name__ == "__main__":
    main()
