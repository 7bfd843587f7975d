"""The fused Triton HSPG step vs its PyTorch reference: under the Triton interpreter on CPU, and on GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.testing import run_under_triton_interpreter

from repro_oto import hspg, kernels

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(kernels.triton is None, reason="triton not installed")
def test_kernel_matches_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter.
    proc = run_under_triton_interpreter(HERE / "_oto_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_cpu_tensors_take_the_reference_path():
    if kernels.interpreting():
        pytest.skip("under the interpreter CPU tensors go to Triton")
    p = [torch.randn(4, 3), torch.randn(4)]
    g = [torch.randn(4, 3), torch.randn(4)]
    step = kernels.ZigStep([p], [0.0])
    assert not step.triton
    ref = [t.clone() for t in p]
    step([g], None, mode="half_space", lr=0.1, lmbda=0.1)
    hspg.step_reference(ref, g, None, mode="half_space", lr=0.1, lmbda=0.1)
    assert all(torch.equal(a, b) for a, b in zip(p, ref))
    with pytest.raises(ValueError, match="mode"):
        step([g], None, mode="nope", lr=0.1, lmbda=0.1)
    with pytest.raises(ValueError, match="momentum"):
        step([g], None, mode="prox", lr=0.1, lmbda=0.1, momentum=0.9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or kernels.triton is None, reason="needs CUDA and triton")
def test_kernel_matches_reference_on_gpu():
    torch.manual_seed(0)
    for mode in hspg.MODES:
        for momentum in (0.0, 0.9):
            sets = [[torch.randn(n, c, 3, 3, device="cuda"), torch.randn(n, device="cuda"),
                     torch.randn(n, device="cuda"), torch.randn(n, device="cuda")]
                    for n, c in ((64, 3), (512, 256), (2048, 512))]
            for s in sets:
                for t in s:
                    t[::3] *= 1e-3
            grads = [[0.01 * torch.randn_like(t) for t in s] for s in sets]
            bufs = [[torch.zeros_like(t) for t in s] for s in sets] if momentum else None
            ref = [[t.clone() for t in s] for s in sets]
            ref_bufs = [[t.clone() for t in s] for s in bufs] if momentum else None
            kernels.ZigStep(sets, [0.0, 0.5, 0.9])(grads, bufs, mode=mode, lr=0.1, lmbda=1e-2, momentum=momentum)
            for i, s in enumerate(ref):
                hspg.step_reference(s, grads[i], ref_bufs[i] if momentum else None, mode=mode, lr=0.1, lmbda=1e-2,
                                    eps=[0.0, 0.5, 0.9][i], momentum=momentum)
            for a_set, b_set in zip(sets, ref):
                assert torch.equal(hspg.sq_norms(a_set) == 0, hspg.sq_norms(b_set) == 0)
                for a, b in zip(a_set, b_set):
                    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
