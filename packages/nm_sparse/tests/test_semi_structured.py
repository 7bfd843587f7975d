"""The 2:4 semi-structured path: detection and fallback (CPU), and the sparse GEMMs against the
masked dense path (GPU only: ``@pytest.mark.gpu``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro_nm_sparse import semi_structured as ss
from repro_nm_sparse.autograd import nm_conv2d, nm_linear, semi_structured_conv2d, semi_structured_linear
from repro_nm_sparse.masks import compressible_to_2of4, layer_mask


def test_status_without_cuda_says_why():
    st = ss.status("cpu")
    assert not st.available and st.backend == ""
    assert "no CUDA device" in st.describe()


def test_2of8_masks_are_2of4_compressible():
    w = torch.randn(64, 128)
    for n, m in ((2, 8), (2, 4), (1, 4)):
        assert compressible_to_2of4(n, m)
        for orientation, dim in (("forward", 1), ("backward", 0)):
            mk = layer_mask(w, n, m, orientation)
            t = mk if dim == 1 else mk.t()
            assert int(t.reshape(t.shape[0], -1, 4).sum(-1).max()) <= 2


needs_24 = pytest.mark.skipif(not ss.status("cuda").available,
                              reason="needs a CUDA GPU with a working 2:4 semi-structured backend")


@pytest.mark.gpu
@needs_24
@pytest.mark.parametrize("n,m", [(2, 4), (2, 8)])
def test_semi_structured_linear_matches_the_masked_path(n, m):
    st = ss.status("cuda")
    torch.manual_seed(0)
    x = torch.randn(256, 512, device="cuda", requires_grad=True)
    w = torch.randn(256, 512, device="cuda", requires_grad=True)
    b = torch.randn(256, device="cuda", requires_grad=True)
    gy = torch.randn(256, 256, device="cuda")
    mf, mb = layer_mask(w, n, m, "forward"), layer_mask(w, n, m, "backward")
    y = semi_structured_linear(x, w, b, mf, mb, 2e-4, st.backend, True)
    y.backward(gy)
    got = (y.detach(), x.grad.clone(), w.grad.clone())
    for t in (x, w, b):
        t.grad = None
    # reference in the same precision: bf16 operands, fp32 accumulate
    xr, wr = x.detach().bfloat16().float().requires_grad_(True), w.detach().bfloat16().float().requires_grad_(True)
    yr = nm_linear(xr, wr, b.detach(), mf, mb, 2e-4)
    yr.backward(gy.bfloat16().float())
    for a, r in zip(got, (yr.detach(), xr.grad, wr.grad)):
        assert torch.allclose(a.float(), r, rtol=2e-2, atol=2e-2 * r.abs().max().item())


@pytest.mark.gpu
@needs_24
def test_semi_structured_conv_matches_the_masked_path():
    st = ss.status("cuda")
    torch.manual_seed(1)
    x = torch.randn(8, 64, 16, 16, device="cuda", requires_grad=True)
    w = torch.randn(64, 64, 3, 3, device="cuda", requires_grad=True)
    mf, mb = layer_mask(w, 2, 8, "forward"), layer_mask(w, 2, 8, "backward")
    y = semi_structured_conv2d(x, w, None, mf, mb, 0.0, st.backend, True, 1, 1)
    gy = torch.randn_like(y)
    y.backward(gy)
    xr, wr = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    yr = nm_conv2d(xr, wr, None, mf, mb, 0.0, 1, 1)
    yr.backward(gy)
    for a, r in ((y, yr), (x.grad, xr.grad), (w.grad, wr.grad)):
        assert torch.allclose(a.float(), r.float(), rtol=3e-2, atol=3e-2 * r.abs().max().item())
    assert not torch.allclose(F.conv2d(x.detach(), w.detach() * mf, None, 1, 1), torch.zeros_like(yr))


@pytest.fixture
def dense_stand_in(monkeypatch):
    """The 2:4 compression and sparse GEMM replaced by their dense equivalents (fp32), so the
    plumbing around them (NHWC im2col, fold, reshapes, which operand is transposed) runs on a CPU."""
    monkeypatch.setattr(ss, "DTYPE", torch.float64)
    monkeypatch.setattr(ss, "compress", lambda w2, backend: w2.to(torch.float64).contiguous())
    monkeypatch.setattr(ss, "sparse_linear", lambda x2, ws: F.linear(x2, ws))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_semi_structured_plumbing_with_a_dense_stand_in(dense_stand_in, bidirectional):
    g = torch.Generator().manual_seed(0)
    d = torch.float64
    x = torch.randn(3, 16, 7, 7, generator=g, dtype=d, requires_grad=True)
    w = torch.randn(8, 16, 3, 3, generator=g, dtype=d, requires_grad=True)
    b = torch.randn(8, generator=g, dtype=d, requires_grad=True)
    mf = layer_mask(w, 2, 8, "forward")
    mb = layer_mask(w, 2, 8, "backward") if bidirectional else mf
    y = semi_structured_conv2d(x, w, b, mf, mb, 2e-4, "stand-in", bidirectional, stride=2, padding=1)
    gy = torch.randn(y.shape, generator=g, dtype=d)
    y.backward(gy)
    xr, wr, br = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    yr = nm_conv2d(xr, wr, br, mf, mb, 2e-4, 2, 1)
    yr.backward(gy)
    for a, r in ((y, yr), (x.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        assert torch.allclose(a, r, rtol=1e-10, atol=1e-10)
    xl = torch.randn(5, 16, generator=g, dtype=d, requires_grad=True)
    wl = torch.randn(8, 16, generator=g, dtype=d, requires_grad=True)
    mfl = layer_mask(wl, 2, 8, "forward")
    mbl = layer_mask(wl, 2, 8, "backward") if bidirectional else mfl
    yl = semi_structured_linear(xl, wl, None, mfl, mbl, 2e-4, "stand-in", bidirectional)
    gyl = torch.randn(yl.shape, generator=g, dtype=d)
    yl.backward(gyl)
    xlr, wlr = xl.detach().clone().requires_grad_(True), wl.detach().clone().requires_grad_(True)
    nm_linear(xlr, wlr, None, mfl, mbl, 2e-4).backward(gyl)
    assert torch.allclose(xl.grad, xlr.grad) and torch.allclose(wl.grad, wlr.grad)
