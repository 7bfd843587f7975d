"""Triton kernels vs their PyTorch references, under the Triton interpreter on CPU (fp32), and on GPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from repro.testing import run_under_triton_interpreter

from repro_approx import kernels

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(kernels.triton is None, reason="triton not installed")
def test_kernels_match_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter.
    proc = run_under_triton_interpreter(HERE / "_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cpu_uses_reference_path_without_interpreter():
    a, b = torch.randn(8, 6), torch.randn(6, 5)
    idx, scale = torch.tensor([0, 2, 5]), torch.tensor([1.0, 2.0, 0.5])
    if not kernels.interpreting():
        assert not kernels.use_triton(a)
    assert torch.allclose(kernels.sampled_gemm(a, b, idx, scale), kernels.sampled_gemm_reference(a, b, idx, scale))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or kernels.triton is None, reason="needs CUDA and triton")
def test_kernels_match_reference_on_gpu():
    torch.manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-2), (torch.float16, 5e-2)):
        a = torch.randn(512, 1024, device="cuda", dtype=dtype)
        b = torch.randn(1024, 384, device="cuda", dtype=dtype)
        idx = torch.randperm(1024, device="cuda")[:300]
        scale = torch.rand(300, device="cuda") + 0.5
        got = kernels.sampled_gemm(a, b, idx, scale).float()
        ref = kernels.sampled_gemm_reference(a.float(), b.float(), idx, scale)
        assert torch.allclose(got, ref, atol=tol * ref.abs().max().item(), rtol=tol)
        s = kernels.pair_scores(a, b)
        assert torch.allclose(s, kernels.pair_scores_reference(a, b), rtol=1e-2)
