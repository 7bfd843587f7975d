"""Training-step time of QAT and FQT (PTQ / PSQ / BHQ) relative to exact training, and the hardware.

One SGD step (forward, backward, update) of a model at a batch size, timed with the core's timer
(median of repeats after warm-up) for: exact layers, QAT (quantized forward, STE), and FQT with
each gradient quantizer at 4 bits. Quantization here is *simulated* (quantize/dequantize in fp32,
then fp32 products): the ratios measure the overhead of the quantizers, not the speed of low-bit
arithmetic, which the paper does not claim either. On CPU the quantizers are the PyTorch reference
path; on CUDA the Triton kernel. Writes ``benchmarks/results/fqt-step-<device>.{json,md}``.

    uv run python packages/fqt/benchmarks/bench_fqt.py                       # LeNet-BN MNIST batch 128
    uv run python packages/fqt/benchmarks/bench_fqt.py --model preact_resnet56_cifar --batch 128

The quantizer kernels alone (fused vs unfused, block reflections vs the dense T @ x of the
reference): ``uv run repro bench fqt --ratios 1``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from repro import environment
from repro.bench import time_call

from repro_fqt.autograd import ForwardSpec, GradSpec
from repro_fqt.models import MODELS
from repro_fqt.wrap import quantize_model

HERE = Path(__file__).parent
SHAPES = {"lenet_mnist": (1, 28, 28), "preact_resnet56_cifar": (3, 32, 32), "preact_resnet_cifar": (3, 32, 32)}
VARIANTS = ("exact", "qat", "ptq4", "psq4", "bhq4")


def step_fn(model_name: str, variant: str, batch: int, device: torch.device):
    torch.manual_seed(0)
    model = MODELS[model_name]().to(device)
    if variant != "exact":
        scheme = None if variant == "qat" else variant[:3]
        quantize_model(model, ForwardSpec(), GradSpec(scheme, 4, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *SHAPES[model_name], device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--model", default="lenet_mnist", choices=sorted(SHAPES), help="model (default lenet_mnist)")
    ap.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats (default 7)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as the pipeline's trials)")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    times = {}
    for variant in VARIANTS:
        times[variant] = time_call(step_fn(args.model, variant, args.batch, device), device, repeats=args.repeats,
                                   warmup=3, inner=3)
    hw = environment.device_name(device) + ("" if device.type == "cuda" else f" ({args.threads} thread)")
    doc = {"device": hw, "cpu": environment.cpu_name(), "torch": torch.__version__, "model": args.model,
           "batch": args.batch, "step_s": times, "relative_to_exact": {k: v / times["exact"] for k, v in times.items()},
           "path": "Triton kernel" if device.type == "cuda" else "PyTorch reference quantizers"}
    md = [f"One SGD step of `{args.model}` at batch {args.batch} on **{hw}** ({doc['cpu']}, torch {doc['torch']}; "
          f"quantizers: {doc['path']}); median of {args.repeats} repeats. Simulated quantization: the ratio is the "
          f"quantizers' overhead, not low-bit arithmetic.", "",
          "| variant | step ms | / exact |", "|---|---|---|"]
    md += [f"| {k} | {1e3 * v:.2f} | {doc['relative_to_exact'][k]:.2f} |" for k, v in times.items()]
    label = "cpu" if device.type == "cpu" else "cuda"
    prefix = HERE / "results" / f"fqt-step-{args.model}-{label}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    prefix.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {prefix}.json and .md")


if __name__ == "__main__":
    main()
