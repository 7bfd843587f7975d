"""Cost of a Sobolev training step vs a regular one, and of the two ways of computing the
network's input derivatives (double backprop vs forward-mode tangents through the fused layer).

One full-batch training step (forward, loss, backward, Adam) of the suite's network: 14 problems
(7 functions x 2 sizes), 100 training rows, 2 -> H -> H -> 1 ReLU MLPs, H = 64 (smoke) and 256
(paper scale), for each method and derivative mode. Prints each time and its ratio to the regular
step of the same width, with the hardware, and writes a JSON and a Markdown table. The kernel
itself (fused forward + tangents vs unfused vs torch.func.jvp) is timed by ``repro bench sobolev``.

    uv run python packages/sobolev/benchmarks/bench_sobolev.py                 # CUDA if present
    uv run python packages/sobolev/benchmarks/bench_sobolev.py --device cpu --hidden 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from repro.bench import device_label, time_call

from repro_sobolev.data import WORKLOADS, build_suite, held_out_rows, val_fraction
from repro_sobolev.functions import FUNCTION_NAMES
from repro_sobolev.modeling_sobolev import SobolevNet
from repro_sobolev.sobolev import random_directions, sobolev_loss

CASES = (("regular", "value", "autograd"), ("sobolev", "sobolev", "autograd"), ("sobolev", "sobolev", "forward"),
         ("stochastic_sobolev", "stochastic", "autograd"))


def step_fn(hidden: int, mode: str, derivatives: str, device: torch.device):
    data = build_suite(FUNCTION_NAMES, (20, 100), {"seed": 0, "grid": 2})
    n_rows = len(data["x_train"])
    keep = torch.ones(n_rows, dtype=torch.bool)
    keep[held_out_rows(n_rows, val_fraction(), 0)] = False
    x, y = data["x_train"][keep].to(device), data["y_train"][keep].to(device)
    kwargs = {**WORKLOADS[0].model_kwargs, "hidden": [hidden, hidden], "derivatives": derivatives}
    torch.manual_seed(0)
    net = SobolevNet(**kwargs).to(device).train()
    net.fit_derivatives = mode != "value"
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        out = net(x)
        v = random_directions(tuple(out.shape[:2]), 2, gen).to(device) if mode == "stochastic" else None
        loss = sobolev_loss(out, y, mode, 1.0, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"))
    ap.add_argument("--hidden", default="64,256", help="comma-separated hidden widths (default 64,256)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as a pipeline trial)")
    ap.add_argument("--out", help="output prefix (default: benchmarks/results/sobolev-steps-<device>)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    rows = []
    for hidden in (int(h) for h in args.hidden.split(",")):
        base = None
        for method, mode, derivatives in CASES:
            ms = 1e3 * time_call(step_fn(hidden, mode, derivatives, dev), dev, repeats=args.repeats, warmup=5,
                                 inner=20)
            base = ms if base is None else base
            rows.append({"hidden": hidden, "method": method, "derivatives": derivatives, "step_ms": ms,
                         "vs_regular": ms / base})
    doc = {"device": device_label(dev), "torch": torch.__version__, "rows": rows,
           "what": "one full-batch training step (forward, loss, backward, Adam) of 14 stacked 2-H-H-1 ReLU MLPs "
                   "on 100 rows; median of repeats x 20 steps after a warm-up"}
    lines = [f"Device: **{doc['device']}** (torch {doc['torch']}). {doc['what']}.", "",
             "| hidden | method | derivatives | ms / step | vs regular |", "|---|---|---|---|---|"]
    lines += [f"| {r['hidden']} | {r['method']} | {r['derivatives'] if r['method'] != 'regular' else '—'} | "
              f"{r['step_ms']:.3f} | {r['vs_regular']:.2f}x |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    label = "cpu" if dev.type == "cpu" else "cuda-" + "".join(c if c.isalnum() else "_" for c in
                                                               torch.cuda.get_device_name(dev).lower())
    prefix = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"sobolev-steps-{label}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(doc, indent=2) + "\n")
    prefix.with_name(prefix.name + ".md").write_text(text)
    print(f"wrote {prefix}.json and {prefix}.md")


if __name__ == "__main__":
    main()
