"""The Triton quantizer vs its PyTorch reference, under the Triton interpreter on CPU (fp32), and on GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.testing import run_under_triton_interpreter

from repro_fqt import kernels as K
from repro_fqt import quantizers as Q

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(K.triton is None, reason="triton not installed")
def test_kernel_matches_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter.
    proc = run_under_triton_interpreter(HERE / "_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_cpu_uses_the_reference_path():
    x = torch.randn(5, 7)
    if not K.interpreting():
        assert not K.use_triton(x)
    noise = torch.rand(5, 7) - 0.5
    assert torch.equal(K.quantize_rows(x, 4, noise=noise), K.quantize_rows_reference(x, 4, noise=noise))


def test_bhq_dense_reference_equals_block_reflections():
    """The benchmark's baseline (the reference's dense T @ x) computes the same quantizer."""
    g = torch.randn(32, 6) * torch.rand(32, 1) ** 4
    torch.manual_seed(0)
    dense = K.bhq_dense_reference(g, 4)
    torch.manual_seed(0)
    blocks = K.quantize_householder(g, 4)
    assert torch.allclose(dense, blocks, atol=1e-5 * float(g.abs().max()) * 32)


def test_kernel_benchmarks_run_on_cpu():
    for case in K.kernel_benchmarks():
        kernel, dense = case.make(16, 8, 1, 1.0, torch.device("cpu"), True)
        assert kernel().shape == dense().shape == (16, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or K.triton is None, reason="needs CUDA and triton")
def test_kernel_matches_reference_on_gpu():
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n, d in ((128, 4096), (37, 1000), (1024, 1)):
        x = torch.randn(n, d, device="cuda", generator=gen) * torch.rand(n, 1, device="cuda", generator=gen) ** 3
        noise = torch.rand(n, d, device="cuda", generator=gen) - 0.5
        got = K.quantize_rows(x, 4, noise=noise)
        want = K.quantize_rows_reference(x, 4, noise=noise)
        # FMA contraction on the GPU may flip a rounding decision at a level boundary: a few elements
        level = (Q.per_row_range(x, 4)[1]).reciprocal()
        off = ((got - want).abs() > 1e-5 * x.abs().max()).float().mean()
        assert off < 1e-4 and ((got - want).abs() <= level * 1.001 + 1e-6).all()
        a, b = K.quantize_rows(x, 4, seed=7), K.quantize_rows(x, 4, seed=7)
        assert torch.equal(a, b)
        assert torch.isfinite(K.quantize_householder(x, 4)).all()
