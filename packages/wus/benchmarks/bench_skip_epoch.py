"""Time one training epoch with full updates vs one inside a WUS skip window, per model.

An "epoch" is a fixed number of SGD steps (momentum 0.9, weight decay 5e-4) on random inputs of
the model's shape; inside a skip window the conv/linear weights have ``requires_grad=False`` (no
weight-gradient GEMMs, no weight updates) while biases and norm parameters train. Training-only
wall time after warm-up steps, median over repeats; on CUDA, synchronised.

    uv run python packages/wus/benchmarks/bench_skip_epoch.py --help
    uv run python packages/wus/benchmarks/bench_skip_epoch.py --batches 5 --batch-size 32
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from repro import environment
from repro.bench import time_call
from repro.models import build_model

from repro_wus.wus import set_weight_updates

# model name -> (builder name, builder kwargs, input shape without batch)
MODELS = {
    "small_cnn": ("small_cnn", {"in_channels": 1, "num_classes": 10}, (1, 8, 8)),
    "alexnet_cifar": ("alexnet_cifar", {"num_classes": 10}, (3, 32, 32)),
    "vgg11_cifar": ("vgg11_cifar", {"num_classes": 10}, (3, 32, 32)),
    "vgg16_cifar": ("vgg16_cifar", {"num_classes": 10}, (3, 32, 32)),
    "resnet18_cifar": ("resnet18_cifar", {"num_classes": 10}, (3, 32, 32)),
}


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One forward/backward/step iteration on the fixed batch (x, y)."""
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def bench(name: str, batch_size: int, batches: int, repeats: int, warmup: int, device: torch.device) -> tuple[float, float]:
    builder, kwargs, shape = MODELS[name]
    torch.manual_seed(0)
    model = build_model(builder, **kwargs).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch_size, *shape, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    out = []
    for skipping in (False, True):
        set_weight_updates(model, not skipping)
        step = lambda: train_step(model, opt, x, y)  # noqa: E731
        out.append(batches * time_call(step, device, repeats=repeats, warmup=warmup, inner=batches))
    set_weight_updates(model, True)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=32, help="samples per step")
    parser.add_argument("--batches", type=int, default=5, help="steps per timed 'epoch'")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per setting (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing each setting")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hw = environment.device_name(device) if device.type == "cuda" else environment.cpu_name()
    print(f"hardware: {hw}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"batch {args.batch_size}, {args.batches} steps/epoch, median of {args.repeats}")
    print("| model | full epoch (s) | skip-window epoch (s) | skip / full | saving |")
    print("|---|---|---|---|---|")
    for name in args.models:
        full, skip = bench(name, args.batch_size, args.batches, args.repeats, args.warmup, device)
        print(f"| {name} | {full:.4f} | {skip:.4f} | {skip / full:.2f} | {1 - skip / full:.0%} |", flush=True)


if __name__ == "__main__":
    main()
