"""Gradient variance of FQT per quantizer, bitwidth and layer on the smoke model: table + figure.

Trains the smoke experiment's QAT trial (MNIST, small CNN with batch norm, one epoch on the 12k
subset; ``repro run fqt --experiment mnist_cnn --method qat`` does the same) and then runs the
variance probe with more draws and batches than the pipeline: for PTQ / PSQ / BHQ at 8, 6, 5, 4
bits, E||g_FQT - g_QAT||^2 / ||g_QAT||^2 in total and per layer, and the unbiasedness statistic
(about 1 for an unbiased estimator). Writes ``benchmarks/results/variance-<device>.{json,md,png}``.

    uv run python packages/fqt/benchmarks/variance_profile.py --draws 64 --batches 4 --seed 0

Run inside a project with MNIST prepared (``uv run repro data prepare mnist``). CPU: ~1-2 min.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from repro import environment
from repro.papers import get_paper
from repro.run import build_context, summarise

HERE = Path(__file__).parent
SCHEMES = ("ptq", "psq", "bhq")
BITS = (8, 6, 5, 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--draws", type=int, default=64, help="rounding draws per quantizer and bitwidth (default 64)")
    ap.add_argument("--batches", type=int, default=4, help="training batches of 128 measured on (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="trial seed (default 0)")
    ap.add_argument("--out", type=Path, default=None, help="output prefix (default benchmarks/results/variance-<device>)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx, hp = build_context("fqt", "mnist_cnn", "qat", args.seed, "smoke", progress=True)
    hp.update(variance_draws=args.draws, variance_batches=args.batches, variance_bits=list(BITS))
    get_paper("fqt").method("qat").fit(ctx, hp)
    s = summarise(ctx)
    layers = sorted({k.rsplit("_", 1)[1] for k in s if k.startswith("grad_var_ptq8_")}, key=lambda v: int(v))
    kinds = {name.replace(".", "_"): type(m).__name__ for name, m in ctx.workload.build_model().named_modules() if name}
    doc = {"device": environment.device_name(ctx.device), "cpu": environment.cpu_name(), "seed": args.seed,
           "draws": args.draws, "batches": args.batches, "test_accuracy_qat": s["test_accuracy"],
           "layers": layers, "layer_types": {k: kinds.get(k, "?") for k in layers}, "values": {k: v for k, v in s.items() if k.startswith("grad_")}}
    label = "cpu" if ctx.device.type == "cpu" else "cuda"
    prefix = args.out or HERE / "results" / f"variance-{label}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    v = doc["values"]
    md = [f"Gradient variance of FQT on the smoke model (MNIST small CNN with batch norm, QAT-trained one epoch "
          f"on 12k samples, test accuracy {s['test_accuracy']:.4f}); seed {args.seed}, {args.draws} rounding draws "
          f"per cell, {args.batches} batches of 128; {doc['device']} ({doc['cpu']}). Written by "
          f"`benchmarks/variance_profile.py`.", "",
          "Relative variance E||g_FQT - g_QAT||^2 / ||g_QAT||^2 (all quantized layers; the 8-bit weight-gradient "
          "path of gradient bifurcation included) and, in brackets, the unbiasedness statistic t2 (about 1 when "
          "unbiased):", "",
          "| bits | PTQ | PSQ | BHQ | PSQ / PTQ | BHQ / PSQ |", "|---|---|---|---|---|---|"]
    for b in BITS:
        cells = [f"{v[f'grad_var_{q}{b}']:.3g} [{v[f'grad_bias_t2_{q}{b}']:.2f}]" for q in SCHEMES]
        md.append(f"| {b} | " + " | ".join(cells) + f" | {v[f'grad_var_ratio_psq_ptq_b{b}']:.3f} | "
                  f"{v[f'grad_var_ratio_bhq_psq_b{b}']:.3f} |")
    md += ["", "Per layer (module index in the model: its weight and bias), 4 bits:", "",
           "| layer | PTQ | PSQ | BHQ |", "|---|---|---|---|"]
    for layer in layers:
        md.append(f"| {layer} ({doc['layer_types'][layer]}) | "
                  + " | ".join(f"{v[f'grad_var_{q}4_{layer}']:.3g}" for q in SCHEMES) + " |")
    prefix.with_suffix(".md").write_text("\n".join(md) + "\n")
    _figure(doc, prefix.with_suffix(".png"))
    print("\n".join(md))
    print(f"wrote {prefix}.json, .md, .png")


def _figure(doc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = doc["values"]
    fig, axes = plt.subplots(1, 1 + len(doc["layers"]), figsize=(3.2 * (1 + len(doc["layers"])), 3.2),
                             constrained_layout=True, sharey=True)
    for ax, layer in zip(axes, [None, *doc["layers"]]):
        for q in SCHEMES:
            key = (lambda b: f"grad_var_{q}{b}") if layer is None else (lambda b: f"grad_var_{q}{b}_{layer}")
            ys = [v[key(b)] for b in BITS]
            ax.plot(BITS, ys, marker="o", label=q.upper())
        ax.set_yscale("log")
        ax.set_xlabel("activation-gradient bits")
        ax.set_title("all layers" if layer is None else f"layer {layer} ({doc['layer_types'][layer]})")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("E||g_FQT - g_QAT||^2 / ||g_QAT||^2")
    axes[0].legend()
    fig.suptitle(f"FQT gradient variance, MNIST small CNN (seed {doc['seed']}, {doc['draws']} draws)")
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
