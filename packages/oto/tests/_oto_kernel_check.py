"""Run by test_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported.

The fused multi-tensor kernel (``kernels.ZigStep``) against ``hspg.step_reference`` on several
ZIG sets at once (row lengths that are not multiples of the block, sets of different sizes, a
bias-only member, zero and tiny groups), every mode, with and without momentum / weight decay,
then against the official v1 golden values.
"""

import copy
import json
import os
import sys
from pathlib import Path

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_oto import hspg, kernels  # noqa: E402

assert kernels.triton is not None and kernels.use_triton(torch.zeros(1))
gen = torch.Generator().manual_seed(0)
failures = []


def make_sets():
    sets, grads, bufs = [], [], []
    for n, shapes in [(5, [(3, 2, 2), (), (), ()]), (9, [(19,), ()]), (3, [(40,)]), (6, [()])]:
        ps = [torch.randn(n, *s, generator=gen) for s in shapes]
        for p in ps:
            p[1] = 0
            p[n - 1] *= 1e-3
        sets.append(ps)
        grads.append([0.5 * torch.randn(p.shape, generator=gen) for p in ps])
        bufs.append([0.1 * torch.randn(p.shape, generator=gen) for p in ps])
    return sets, grads, bufs


EPS = [0.0, 0.5, 0.9, 0.2]
projected = 0
for mode in hspg.MODES:
    for momentum, wd in ((0.0, 0.0), (0.9, 0.01)):
        sets, grads, bufs = make_sets()
        ref_sets, ref_bufs = copy.deepcopy(sets), copy.deepcopy(bufs)
        step = kernels.ZigStep(sets, EPS)
        assert step.triton
        kw = dict(mode=mode, lr=0.3, lmbda=0.4, momentum=momentum, weight_decay=wd)
        for _ in range(2):
            step(grads, bufs if momentum else None, **kw)
            for i in range(len(sets)):
                hspg.step_reference(ref_sets[i], grads[i], ref_bufs[i] if momentum else None, eps=EPS[i], **kw)
        for i, (a_set, b_set) in enumerate(zip(sets, ref_sets)):
            za, zb = hspg.sq_norms(a_set) == 0, hspg.sq_norms(b_set) == 0
            if not torch.equal(za, zb):
                failures.append(f"{mode} mom={momentum}: set {i} zero groups differ {za.tolist()} vs {zb.tolist()}")
            projected += int(za.sum())
            for a, b in zip(a_set, b_set):
                if not torch.allclose(a, b, atol=1e-5, rtol=1e-5):
                    failures.append(f"{mode} mom={momentum}: set {i} max err {(a - b).abs().max()}")
        if momentum:
            for a_set, b_set in zip(bufs, ref_bufs):
                for a, b in zip(a_set, b_set):
                    if not torch.allclose(a, b, atol=1e-5, rtol=1e-5):
                        failures.append(f"{mode}: momentum buffer max err {(a - b).abs().max()}")
if projected == 0:
    failures.append("no group was projected: the check is vacuous")

# the official v1 golden values (see test_oto_golden.py): the kernel over both sets in one launch
golden = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
for name, case in golden["cases"].items():
    params = [[torch.tensor(v) for v in golden["inputs"]["params"][k]] for k in ("conv", "linear")]
    step = kernels.ZigStep(params, [golden["epsilon"]["conv"], golden["epsilon"]["linear"]])
    bufs = None
    for s, kind in enumerate(case["steps"]):
        if case["momentum"] and (s == 0 or kind != case["steps"][s - 1]):
            bufs = [[torch.zeros_like(p) for p in ps] for ps in params]
        grads = [[torch.tensor(v) for v in golden["inputs"]["grads"][s][k]] for k in ("conv", "linear")]
        step(grads, bufs, mode="subgradient" if kind == "sgd" else "half_space", lr=golden["lr"],
             lmbda=golden["lmbda"], momentum=case["momentum"])
        for ps, k in zip(params, ("conv", "linear")):
            for p, want in zip(ps, case["after"][s][k]):
                if not torch.allclose(p, torch.tensor(want), atol=1e-6, rtol=1e-5):
                    failures.append(f"golden {name} step {s} {k}: max err {(p - torch.tensor(want)).abs().max()}")
print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
