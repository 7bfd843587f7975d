"""Run by test_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported."""

import json
import os
import sys
from pathlib import Path

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_approx import kernels  # noqa: E402

assert kernels.triton is not None and kernels.use_triton(torch.zeros(1))
gen = torch.Generator().manual_seed(0)
failures = []
for m, n, k, kept in [(20, 24, 40, 13), (33, 17, 64, 64), (16, 16, 16, 1)]:
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    idx = torch.randperm(k, generator=gen)[:kept]
    scale = torch.rand(kept, generator=gen) + 0.5
    got = kernels.sampled_gemm(a, b, idx, scale)
    ref = kernels.sampled_gemm_reference(a, b, idx, scale)
    if not torch.allclose(got, ref, atol=1e-4, rtol=1e-4):
        failures.append(f"sampled_gemm {m}x{n}x{k} kept {kept}: max err {(got - ref).abs().max()}")
    # repeated indices (CRS with replacement) and a transposed (strided) A
    idx2 = torch.tensor([3, 3, 0, 5])
    at = torch.randn(k, m, generator=gen).t()
    got = kernels.sampled_gemm(at, b, idx2, torch.ones(4))
    if not torch.allclose(got, kernels.sampled_gemm_reference(at, b, idx2, torch.ones(4)), atol=1e-4, rtol=1e-4):
        failures.append(f"sampled_gemm strided/repeated {m}x{n}x{k}")
    s = kernels.pair_scores(a, b)
    if not torch.allclose(s, kernels.pair_scores_reference(a, b), atol=1e-4, rtol=1e-4):
        failures.append(f"pair_scores {m}x{n}x{k}")
    u = torch.rand(k, generator=gen)
    kk = max(1, k // 3)
    got = kernels.bernoulli_keep(s, kk, 0.1, u)
    if not torch.allclose(got, kernels.bernoulli_keep_reference(s, kk, 0.1, u), atol=1e-5, rtol=1e-5):
        failures.append(f"bernoulli_keep k={k}")
    for strategy in ("topk", "crs", "bernoulli"):
        full = kernels.sample_and_multiply(a, b, k, strategy)
        if not torch.allclose(full, a @ b, atol=1e-3, rtol=1e-3):
            failures.append(f"sample_and_multiply {strategy} at k = n is not A B")
    # an empty kept set (every Bernoulli coin tails: u = 1) is the empty sum, zeros
    none = torch.empty(0, dtype=torch.long)
    if not torch.equal(kernels.sampled_gemm(a, b, none, torch.empty(0)), torch.zeros(m, n)):
        failures.append(f"sampled_gemm {m}x{n}x{k} with no index kept is not zero")
    if not torch.equal(kernels.bernoulli_keep(s, kk, 0.1, torch.ones(k)), torch.zeros(k)):
        failures.append(f"bernoulli_keep k={k} with u = 1 keeps something")
    if not torch.equal(kernels.sample_and_multiply(a, b, kk, "bernoulli", u=torch.ones(k)), torch.zeros(m, n)):
        failures.append(f"sample_and_multiply bernoulli {m}x{n}x{k} with nothing kept is not zero")
# golden values from the reference code (see test_approx_golden.py): Triton scores and sampled GEMM
golden = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
lin = golden["inputs"]["linear"]
x, w, bias = (torch.tensor(lin[key], dtype=torch.float32) for key in ("x", "w", "bias"))
for case in golden["cases"]:
    if case["layer"] != "linear" or case["mode"] != "forward" or case["name"].endswith("_empty"):
        continue
    (draw,) = case["draws"]
    if draw["kind"] == "topk":
        s = kernels.pair_scores(x, w.t())
        if not torch.allclose(s, torch.tensor(draw["scores"]), rtol=1e-5, atol=1e-5):
            failures.append(f"golden {case['name']}: Triton pair_scores")
        idx, scale = torch.tensor(draw["indices"]), torch.ones(len(draw["indices"]))
    elif draw["kind"] == "crs":
        idx, scale = torch.tensor(draw["indices"]), torch.tensor(draw["scale"])
    else:
        idx = torch.tensor([i for i, kept in enumerate(draw["kept"]) if kept])
        scale = torch.tensor(draw["scale"])
    got, want = kernels.sampled_gemm(x, w.t(), idx, scale) + bias, torch.tensor(case["out"])
    if not torch.allclose(got, want, rtol=1e-5, atol=1e-4):
        failures.append(f"golden {case['name']}: Triton sampled_gemm, max err {(got - want).abs().max()}")
print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
