"""The fused Triton mask + pack kernel against the PyTorch reference: under the Triton
interpreter on CPU (exact), and on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repro.errors import ReproError
from repro.testing import run_under_triton_interpreter

from repro_nm_sparse import kernels
from repro_nm_sparse.masks import nm_mask, nm_mask_pack_reference

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(kernels.triton is None, reason="triton not installed")
def test_kernel_matches_reference_under_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter.
    proc = run_under_triton_interpreter(HERE / "_kernel_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_cpu_uses_the_reference_path():
    w = torch.randn(16, 32)
    if not kernels.interpreting():
        assert not kernels.use_triton(w)
    got, want = kernels.nm_mask_pack(w, 2, 8), nm_mask_pack_reference(w, 2, 8)
    assert all(torch.equal(got[k], want[k]) for k in want)
    mf, mb = kernels.nm_masks(w, 2, 8, backward=True)
    assert torch.equal(mf, nm_mask(w, 2, 8, 1)) and torch.equal(mb, nm_mask(w, 2, 8, 0))
    assert kernels.nm_masks(w, 2, 8, backward=False)[1] is None


def test_kernel_wrapper_rejects_bad_shapes():
    with pytest.raises(ReproError, match="columns"):
        kernels.nm_mask_pack(torch.randn(8, 12), 2, 8)
    with pytest.raises(ReproError, match="rows"):
        kernels.nm_mask_pack(torch.randn(12, 8), 2, 8)
    if not kernels.interpreting() and not torch.cuda.is_available():
        with pytest.raises(ReproError, match="triton"):
            kernels.nm_masks(torch.randn(8, 8), 2, 8, backward=False, kernel="triton")


def test_benchmark_ratio_to_pattern():
    assert kernels.pattern_for_ratio(0.25) == (2, 8)
    assert kernels.pattern_for_ratio(0.5) == (4, 8)
    assert kernels.pattern_for_ratio(0.3) == (2, 8)
    assert kernels.pattern_for_ratio(1.0) == (8, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or kernels.triton is None, reason="needs CUDA and triton")
def test_kernel_matches_reference_on_gpu():
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for rows, cols, n, m in ((256, 512, 2, 8), (512, 256, 2, 4), (64, 1152, 4, 8), (96, 200, 1, 4)):
            w = torch.randn(rows, cols, device="cuda").to(dtype)
            got = kernels.nm_mask_pack(w, n, m)
            want = nm_mask_pack_reference(w, n, m)
            for key in want:
                assert torch.equal(got[key], want[key]), (dtype, rows, cols, n, m, key)
