"""The fused forward + tangent Triton kernel vs its PyTorch reference: under the Triton interpreter
on CPU (fp32), and on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.testing import run_under_triton_interpreter

from repro_sobolev import kernels

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(kernels.triton is None, reason="triton not installed")
def test_kernel_matches_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter.
    proc = run_under_triton_interpreter(HERE / "_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_cpu_uses_the_reference_without_interpreter():
    h, t = torch.randn(1, 4, 3), torch.randn(1, 4, 2, 3)
    w, b = torch.randn(1, 3, 5), torch.randn(1, 1, 5)
    if not kernels.interpreting():
        assert not kernels.use_triton(h)
    out, tout = kernels.jvp_layer(h, t, w, b, "relu")
    ref, tref = kernels.jvp_layer_reference(h, t, w, b, "relu")
    assert torch.equal(out, ref) and torch.equal(tout, tref)
    # the tangent of a ReLU layer is the masked tangent of the pre-activation
    a = torch.baddbmm(b, h, w)
    assert torch.allclose(tout, torch.matmul(t, w.unsqueeze(1)) * (a > 0).unsqueeze(2).float(), atol=1e-6)


def test_benchmark_cases_build_and_run_on_cpu():
    for case in kernels.kernel_benchmarks():
        kernel, dense = case.make(16, 8, 4, 0.25, torch.device("cpu"), True)
        out = kernel()
        assert dense().shape == (1, 16, 8)
        assert out is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or kernels.triton is None, reason="needs CUDA and triton")
def test_kernel_matches_reference_on_gpu():
    torch.manual_seed(0)
    for p, n, k, m, d in [(14, 100, 2, 256, 2), (14, 100, 256, 256, 2), (3, 1000, 256, 256, 8), (1, 257, 129, 65, 3)]:
        h = torch.randn(p, n, k, device="cuda")
        t = torch.randn(p, n, d, k, device="cuda")
        w = torch.randn(p, k, m, device="cuda") / k ** 0.5
        b = torch.randn(p, 1, m, device="cuda")
        out, tout = kernels.jvp_layer_triton(h, t, w, b, True)
        ref, tref = kernels.jvp_layer_reference(h, t, w, b, "relu")
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
        assert torch.allclose(tout, tref, atol=1e-4, rtol=1e-4)
