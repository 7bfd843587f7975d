"""Run by test_fqt_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported.

The Triton quantizer against the PyTorch reference on identical inputs (the same rounding noise),
its seeded Philox path (reproducible, on the levels, unbiased), and the golden values of the
official code (tests/golden/reference_golden.json) through the kernel. Prints "ok" or the failures.
"""

import json
import os
import sys
from pathlib import Path

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_fqt import kernels as K  # noqa: E402
from repro_fqt import quantizers as Q  # noqa: E402

assert K.triton is not None and K.use_triton(torch.zeros(1))
gen = torch.Generator().manual_seed(0)
failures = []


def close(a, b, what, atol=1e-6):
    if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=atol):
        err = (a - b).abs().max().item() if a.shape == b.shape else f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
        failures.append(f"{what}: max err {err}")


for n, d, bits in [(3, 5, 4), (7, 33, 8), (1, 16, 4), (5, 1, 4)]:
    x = torch.randn(n, d, generator=gen) * torch.rand(n, 1, generator=gen) ** 3
    noise = torch.rand(n, d, generator=gen) - 0.5
    if d == 1:
        x[0] = 0.7  # a constant row above float32's resolution of eps: returned exactly
    atol = 4 * torch.finfo(torch.float32).eps * float(x.abs().max())  # a wrong rounding costs a whole level
    if True:
        # per-row range fused in the kernel (PSQ), stochastic with explicit noise
        close(K.quantize_rows(x, bits, noise=noise), K.quantize_rows_reference(x, bits, noise=noise),
              f"psq {n}x{d} {bits}b", atol)
        # nearest rounding
        close(K.quantize_rows(x, bits, stochastic=False), K.quantize_rows_reference(x, bits),
              f"nearest {n}x{d} {bits}b", atol)
        # a given per-tensor range (PTQ, zero on a level)
        zero, sc = Q.per_tensor_range(x, bits)
        close(K.quantize_rows(x, bits, zero=zero, scale=sc, noise=noise),
              K.quantize_rows_reference(x, bits, zero, sc, noise), f"ptq {n}x{d} {bits}b", atol)
        # a strided (transposed) input: the per-column quantizer of the weight-gradient path
        xt = x.t()
        close(K.quantize_rows(xt, bits, noise=noise.t().contiguous()),
              K.quantize_rows_reference(xt, bits, noise=noise.t()), f"strided {d}x{n} {bits}b", atol)

# seeded path: reproducible, on the levels, within one level of x, unbiased
x = torch.randn(2, 32, generator=gen) * torch.tensor([[1.0], [0.01]])
a, b = K.quantize_rows(x, 4, seed=123), K.quantize_rows(x, 4, seed=123)
if not torch.equal(a, b):
    failures.append("seeded: the same seed gave different outputs")
if torch.equal(a, K.quantize_rows(x, 4, seed=124)):
    failures.append("seeded: different seeds gave the same output")
zero, scale = Q.per_row_range(x, 4)
levels = (a - zero) * scale
if (levels - levels.round()).abs().max() > 1e-3 or levels.min() < -1e-3 or levels.max() > 15 + 1e-3:
    failures.append("seeded: outputs are not on the 4-bit levels")
if ((a - x).abs() * scale).max() > 1 + 1e-3:
    failures.append("seeded: an output is more than one level away from its input")
draws = torch.stack([K.quantize_rows(x, 4, seed=s) for s in range(30)])
t = (draws.mean(0) - x) / (draws.std(0) / 30 ** 0.5 + 1e-30)
if (t[draws.std(0) > 0] ** 2).mean() > 2.0:
    failures.append(f"seeded: mean over seeds is biased (mean t^2 {(t ** 2).mean():.2f})")

# BHQ: block Householder transform + the kernel == the reference with the same noise
g = torch.randn(12, 9, generator=gen) * torch.rand(12, 1, generator=gen) ** 4
noise = torch.rand(12, 9, generator=gen) - 0.5
plan = Q.bhq_plan(Q.row_ranges(g))
tx = Q.householder_apply(g, plan)
got = Q.householder_apply(K.quantize_rows(tx, 4, noise=noise), plan, inverse=True)
close(got, Q.quantize_bhq(g, 4, noise=noise), "bhq via the kernel", 1e-5 * float(g.abs().max()))
if not torch.isfinite(K.quantize_rows(torch.full((2, 3), 0.7), 4)).all():
    failures.append("a constant row gave a non-finite output")

# golden values of the official code through the kernel
golden = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
for case in golden["cases"]:
    if case["name"] not in ("psq_grad_4bit", "ptq_grad_4bit", "per_column_grad_8bit", "act_8bit", "weight_8bit"):
        continue
    x = torch.tensor(case["x"], dtype=torch.float32)
    want = torch.tensor(case["out"], dtype=torch.float32)
    noises = [torch.tensor(e["noise"], dtype=torch.float32) for e in case["events"] if "noise" in e]
    noise = noises[0] if noises else None
    name = case["name"]
    if name == "psq_grad_4bit":
        got = K.quantize_rows(x, 4, noise=noise)
    elif name == "ptq_grad_4bit":
        zero, sc = Q.per_tensor_range(x, 4)
        got = K.quantize_rows(x, 4, zero=zero, scale=sc, noise=noise)
    elif name == "per_column_grad_8bit":
        got = K.quantize_rows(x.t(), 8, noise=noise.t().contiguous()).t()
    elif name == "act_8bit":
        got = K.quantize_tensor(x, 8, stochastic=False, align_zero=False)
    else:
        got = K.quantize_tensor(x, 8, stochastic=False, align_zero=True)
    close(got, want, f"golden {name} through the kernel", 4 * torch.finfo(torch.float32).eps * float(x.abs().max()))

print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
