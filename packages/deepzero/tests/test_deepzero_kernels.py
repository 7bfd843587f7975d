"""The Triton structured-delta kernel vs its PyTorch reference: under the Triton interpreter on CPU
(fp32, tiny shapes) and, where there is a GPU, on CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.testing import run_under_triton_interpreter

from repro_deepzero import kernels

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(not kernels.triton_available(), reason="triton not installed")
def test_kernel_matches_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: a fresh interpreter
    proc = run_under_triton_interpreter(HERE / "_deepzero_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cpu_tensors_take_the_reference_path():
    if not kernels.interpreting():
        assert not kernels.use_triton(torch.zeros(1))
    base, src = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    idx = [torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([0, 2]), torch.tensor([1, 1])]
    torch.testing.assert_close(kernels.structured_delta(base, src, *idx, 1, 1, 0.1),
                               kernels.structured_delta_reference(base, src, *idx, 1, 1, 0.1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not kernels.triton_available(), reason="needs CUDA and triton")
def test_kernel_matches_reference_on_gpu():
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        base = torch.randn(64, 32, 16, 16, generator=g).cuda().to(dtype)
        src = torch.randn(64, 16, 32, 32, generator=g).cuda().to(dtype)
        idx = [torch.randint(0, m, (200,), generator=g).cuda() for m in (32, 16, 3, 3)]
        got = kernels.structured_delta(base, src, *idx, 2, 1, 5e-3).float()
        want = kernels.structured_delta_reference(base.float(), src.float(), *idx, 2, 1, 5e-3)
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
