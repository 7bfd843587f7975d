"""Golden values from the official v1 optimizer (tianyic/only_train_once @ bee12d5, ``optimizer/hspg.py``).

``golden/reference_golden.json`` holds small fixed inputs — a conv ZIG set (filters (4, 2, 3, 3),
conv bias, BN gamma, BN beta: v1 ``group_type`` 4) and a linear ZIG set (weight (5, 7) and bias:
``group_type`` 3), one zero group each and a few tiny groups, three fixed gradients — and what
the reference's ``HSPG.sgd_step`` / ``HSPG.half_space_step`` made of them (lr 0.1, lambda 0.2,
epsilon 0 for conv / 0.5 for linear; a momentum-0.9 case runs sgd, half-space, half-space).
Regenerate with ``golden/make_reference_golden.py`` (its docstring says how); the reference
is only run there, never imported here.

Compared here: this package's ``hspg.step_reference`` and the core-optimizer path of the hook
(torch SGD + ``subgradient_`` + ``half_space_project_``); ``_oto_kernel_check.py`` compares the
Triton kernel with the same file under the interpreter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from repro_oto import hspg

GOLDEN = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
KINDS = ("conv", "linear")


def _tensors(nested) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float32) for v in nested]


def _mode(step: str) -> str:
    return "subgradient" if step == "sgd" else "half_space"


def run_reference_step(case: dict, how: str) -> list[dict[str, list[torch.Tensor]]]:
    """Our step on the golden inputs; returns the parameters after each step, like the golden file."""
    params = {k: _tensors(GOLDEN["inputs"]["params"][k]) for k in KINDS}
    mom = case["momentum"]
    lr, lmbda = GOLDEN["lr"], GOLDEN["lmbda"]
    leaves = {k: [p.clone().requires_grad_(True) for p in params[k]] for k in KINDS}
    opt = torch.optim.SGD([p for k in KINDS for p in leaves[k]], lr=lr, momentum=mom)
    bufs = {k: [torch.zeros_like(p) for p in params[k]] for k in KINDS}
    out = []
    for s, step in enumerate(case["steps"]):
        if s > 0 and step != case["steps"][s - 1]:  # v1: a fresh momentum buffer for stage 2
            bufs = {k: [torch.zeros_like(p) for p in params[k]] for k in KINDS}
            opt.state.clear()
        grads = {k: _tensors(GOLDEN["inputs"]["grads"][s][k]) for k in KINDS}
        for k in KINDS:
            eps = GOLDEN["epsilon"][k]
            if how == "reference":
                hspg.step_reference(params[k], grads[k], bufs[k] if mom else None, mode=_mode(step), lr=lr,
                                    lmbda=lmbda, eps=eps, momentum=mom)
            else:
                for p, g in zip(leaves[k], grads[k]):
                    p.grad = g.clone()
                hspg.subgradient_(leaves[k], [p.grad for p in leaves[k]], lmbda)
        if how == "optimizer":
            saved = {k: [p.detach().clone() for p in leaves[k]] for k in KINDS}
            opt.step()
            if step == "half_space":
                for k in KINDS:
                    hspg.half_space_project_(leaves[k], saved[k], GOLDEN["epsilon"][k])
            params = {k: [p.detach() for p in leaves[k]] for k in KINDS}
        out.append({k: [p.clone() for p in params[k]] for k in KINDS})
    return out


@pytest.mark.parametrize("how", ["reference", "optimizer"])
@pytest.mark.parametrize("case_name", list(GOLDEN["cases"]))
def test_step_matches_official_hspg(case_name, how):
    case = GOLDEN["cases"][case_name]
    ours = run_reference_step(case, how)
    for s, (mine, theirs) in enumerate(zip(ours, case["after"])):
        for k in KINDS:
            for i, (a, b) in enumerate(zip(mine[k], _tensors(theirs[k]))):
                assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), (case_name, how, s, k, i, (a - b).abs().max())
    # the same groups end at exactly zero, and the reference's sparsity statistic agrees
    final = ours[-1]
    for k in KINDS:
        frac = float((hspg.sq_norms(final[k]) == 0).float().mean())
        assert abs(frac - case["zero_fraction"][k]) < 1e-5, (case_name, k)  # v1's +1e-6 in the denominator


def test_golden_file_exercises_the_projection():
    """The golden cases are not trivial: the half-space steps zeroed groups beyond the initial zero ones."""
    hs = GOLDEN["cases"]["half_space"]["zero_fraction"]
    # v1 divides by (number of groups + 1e-6): 2 of 4 / 3 of 5 groups, of which 1 each was zero before
    assert round(hs["conv"] * 4) == 2 and round(hs["linear"] * 5) == 3
    assert GOLDEN["cases"]["sgd"]["zero_fraction"] == {"conv": 0.0, "linear": 0.0}  # stage 1 revives the zeros
    assert GOLDEN["cases"]["momentum"]["zero_fraction"]["linear"] > 0
