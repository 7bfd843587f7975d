"""Time the batched ensemble kernels against their per-member reference versions.

Compares
  * ``ensemble_forward`` (one baddbmm per layer) vs ``ensemble_forward_reference``
    (Python loop over members), and
  * ``analysis_update`` (ensemble-space Ne x Ne solve) vs ``analysis_update_reference``
    (textbook Kalman gain with an Nd x Nd solve and a loop over members),
and prints the hardware and the looped/batched time ratios.

    python packages/enkf/benchmarks/bench_ensemble.py --ensemble-size 100 --samples 1000
"""

from __future__ import annotations

import argparse

import torch

from repro.bench import time_call

from repro.environment import cpu_name

from repro_enkf.assimilation import analysis_update, analysis_update_reference
from repro_enkf.ensemble import (
    ensemble_forward,
    ensemble_forward_reference,
    init_ensemble,
    num_params,
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    return torch.device(name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ensemble-size", type=int, default=100, help="ensemble members Ne (default: 100)")
    parser.add_argument("--samples", type=int, default=1000, help="training inputs N (default: 1000)")
    parser.add_argument("--sizes", default="2,20,1", help="comma-separated MLP layer sizes (default: 2,20,1)")
    parser.add_argument("--activation", default="tanh", help="hidden activation (default: tanh)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions, median reported (default: 20)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: auto")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default: float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if args.ensemble_size < 2 or args.samples < 1 or args.repeats < 1:
        parser.error("--ensemble-size must be >= 2, --samples and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    sizes, ne, n = args.sizes, args.ensemble_size, args.samples

    gen = torch.Generator().manual_seed(args.seed)
    theta = init_ensemble(sizes, ne, gen, dtype=dtype, device=device)
    x = torch.randn(n, sizes[0], generator=gen).to(device=device, dtype=dtype)
    pred = ensemble_forward(theta, x, sizes, args.activation).reshape(ne, -1)
    nd = pred.shape[1]
    obs = torch.randn(nd, generator=gen).to(device=device, dtype=dtype)
    noise = torch.randn(ne, nd, generator=gen).to(device=device, dtype=dtype)
    obs_var, alpha = 0.01, 4.0

    # Sanity: both implementations agree before we time them.
    fwd_diff = (ensemble_forward(theta, x, sizes, args.activation)
                - ensemble_forward_reference(theta, x, sizes, args.activation)).abs().max().item()
    upd_diff = (analysis_update(theta, pred, obs, obs_var, alpha, noise)
                - analysis_update_reference(theta, pred, obs, obs_var, alpha, noise)).abs().max().item()

    rows = [
        ("forward", lambda: ensemble_forward(theta, x, sizes, args.activation),
         lambda: ensemble_forward_reference(theta, x, sizes, args.activation), fwd_diff),
        ("analysis update", lambda: analysis_update(theta, pred, obs, obs_var, alpha, noise),
         lambda: analysis_update_reference(theta, pred, obs, obs_var, alpha, noise), upd_diff),
    ]

    print(f"CPU:     {cpu_name()} ({torch.get_num_threads()} torch threads)")
    print(f"torch:   {torch.__version__}")
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device:  {device} ({dev_name})")
    print(f"problem: Ne={ne}, N={n}, sizes={sizes}, P={num_params(sizes)}, Nd={nd}, "
          f"activation={args.activation}, dtype={args.dtype}, repeats={args.repeats} (median)")
    print()
    header = f"{'kernel':<16} {'batched [ms]':>13} {'looped [ms]':>12} {'looped/batched':>15} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for name, batched, looped, diff in rows:
        t_b = time_call(batched, device, args.repeats)
        t_l = time_call(looped, device, args.repeats)
        print(f"{name:<16} {t_b * 1e3:>13.3f} {t_l * 1e3:>12.3f} {t_l / t_b:>14.1f}x {diff:>11.2e}")


if __name__ == "__main__":
    main()
