"""Regenerate ``reference_golden.json`` by running the official v1 HSPG optimizer on fixed inputs.

Usage (the reference is only *run* here, never imported by the package or the tests)::

    # the NeurIPS-2021 code: commit bee12d5 of tianyic/only_train_once (v1, before OTOv2)
    git -C <clone of tianyic/only_train_once> archive bee12d5 optimizer | tar -x -C /tmp/oto-ref
    uv run --frozen python packages/oto/tests/golden/make_reference_golden.py /tmp/oto-ref

The script puts ``<ref>`` on ``sys.path``, imports ``optimizer.hspg.HSPG`` and builds its param
groups the way the v1 backends do (``backend/vgg.py::create_zig_params``): a conv ZIG set
(``group_type`` 4: conv filter (4, 2, 3, 3), conv bias, BN gamma, BN beta — the four tensors of
channel k form group k) and a linear ZIG set (``group_type`` 3: weight (5, 7) and bias). Values
are small multiples of 1/16 from a fixed linear congruential generator (no torch RNG); row 1 of
each set is zero (a zero group), and rows 2 (conv) / 3 and 4 (linear) are scaled by 1/128 so that
the half-space test projects them. Gradients are injected as ``p.grad`` before every step.

Cases (each from the same initial values):

* ``sgd``: one ``sgd_step`` (stage 1: x - lr (grad + lambda x / (||x|| + 1e-6))).
* ``half_space``: one ``half_space_step`` (stage 2), epsilon 0 for the conv set, 0.5 for the linear set.
* ``momentum``: momentum 0.9, ``sgd_step`` then two ``half_space_step`` calls (three gradients);
  the v1 code keeps separate buffers per stage (``momentum_buffer_sgd`` / ``_half_space``).

Every case records the parameters after each step and the reference's
``compute_group_sparsity_omega`` at the end (its zero-group fraction per group type and overall).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

OUT = Path(__file__).with_name("reference_golden.json")
LR, LMBDA, MOMENTUM = 0.1, 0.2, 0.9
EPS = {"conv": 0.0, "linear": 0.5}
SHAPES = {"conv": [[4, 2, 3, 3], [4], [4], [4]], "linear": [[5, 7], [5]]}
SMALL = {"conv": [2], "linear": [3, 4]}


def lcg(seed: int, n: int) -> list[float]:
    """n values in {-4/16, ..., 4/16} from a fixed linear congruential generator."""
    out = []
    for _ in range(n):
        seed = (seed * 1103515245 + 12345) % 2**31
        out.append(((seed >> 16) % 9 - 4) / 16.0)
    return out


def tensors(seed: int, kind: str, scale_rows: bool) -> list[torch.Tensor]:
    out = []
    for i, shape in enumerate(SHAPES[kind]):
        n = 1
        for s in shape:
            n *= s
        t = torch.tensor(lcg(seed + 97 * i, n), dtype=torch.float32).reshape(shape)
        if scale_rows:
            t[1] = 0
            for r in SMALL[kind]:
                t[r] /= 128
        out.append(t)
    return out


def inputs() -> dict:
    return {
        "params": {k: [t.tolist() for t in tensors(11 if k == "conv" else 23, k, True)] for k in SHAPES},
        "grads": [{k: [t.tolist() for t in tensors(1000 * (s + 1) + (0 if k == "conv" else 500), k, False)]
                   for k in SHAPES} for s in range(3)],
    }


def run_case(HSPG, data: dict, steps: list[str], momentum: float) -> dict:
    params = {k: [torch.nn.Parameter(torch.tensor(v)) for v in data["params"][k]] for k in SHAPES}
    groups = [
        {"params": params["linear"], "group_type": 3, "epsilon": EPS["linear"], "upper_group_sparsity": 1.0,
         "shapes": [p.shape for p in params["linear"]]},
        {"params": params["conv"], "group_type": 4, "epsilon": EPS["conv"], "upper_group_sparsity": 1.0,
         "shapes": [p.shape for p in params["conv"]]},
    ]
    opt = HSPG(groups, lr=LR, lmbda=LMBDA, momentum=momentum)
    after = []
    for s, kind in enumerate(steps):
        for k in SHAPES:
            for p, g in zip(params[k], data["grads"][s][k]):
                p.grad = torch.tensor(g)
        (opt.sgd_step if kind == "sgd" else opt.half_space_step)()
        after.append({k: [p.detach().tolist() for p in params[k]] for k in SHAPES})
    # compute_group_sparsity_omega returns the zero-group *fraction* per group type (its first value)
    fraction, _, _, overall, _ = opt.compute_group_sparsity_omega()
    return {"steps": steps, "momentum": momentum, "after": after,
            "zero_fraction": {"linear": float(fraction[3]), "conv": float(fraction[4])},
            "overall_zero_fraction": float(overall)}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.path.insert(0, sys.argv[1])
    from optimizer.hspg import HSPG  # the official v1 optimizer

    data = inputs()
    doc = {
        "reference": "tianyic/only_train_once @ bee12d5, optimizer/hspg.py (HSPG.sgd_step, HSPG.half_space_step)",
        "lr": LR, "lmbda": LMBDA, "epsilon": EPS, "inputs": data,
        "cases": {
            "sgd": run_case(HSPG, data, ["sgd"], 0.0),
            "half_space": run_case(HSPG, data, ["half_space"], 0.0),
            "momentum": run_case(HSPG, data, ["sgd", "half_space", "half_space"], MOMENTUM),
        },
    }
    OUT.write_text(json.dumps(doc) + "\n")
    for name, case in doc["cases"].items():
        print(name, "zero-group fraction", case["zero_fraction"], "overall", case["overall_zero_fraction"])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
