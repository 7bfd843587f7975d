"""Run by test_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported."""

import os
import sys

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
    full = kernels.sample_and_multiply(a, b, k, "topk")
    if not torch.allclose(full, a @ b, atol=1e-3, rtol=1e-3):
        failures.append("sample_and_multiply at k = n is not A B")
print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
