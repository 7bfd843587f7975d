"""Time the approx kernels against the dense product with the core harness (``repro bench approx``
does the same once the package is installed; this script works from a checkout without it).

    uv run python packages/approx/benchmarks/bench_sampled_gemm.py                   # CUDA if present
    uv run python packages/approx/benchmarks/bench_sampled_gemm.py --device cpu --shapes 256x256x512
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from repro.bench import RATIOS, default_prefix, parse_shapes, run_benchmarks, write_results
from repro_approx.kernels import kernel_benchmarks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"))
    ap.add_argument("--shapes", help="comma-separated MxNxK")
    ap.add_argument("--ratios", default=",".join(map(str, RATIOS)))
    ap.add_argument("--out", help="output prefix (default: benchmarks/results/approx-<device>)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    doc = run_benchmarks(kernel_benchmarks(), dev, parse_shapes(args.shapes) if args.shapes else None,
                         [float(r) for r in args.ratios.split(",")])
    doc["paper"] = "approx"
    prefix = Path(args.out) if args.out else default_prefix(Path(__file__).resolve().parents[1], "approx", dev)
    js, md = write_results(doc, prefix)
    print(md.read_text(), end="")
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
