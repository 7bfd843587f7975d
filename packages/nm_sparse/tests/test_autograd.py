"""The three GEMMs of each method against explicit masked products: BDWP's activation gradient
uses the output-dimension mask, its weight gradient is dense, SR-STE's gradient term, N = M dense."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro_nm_sparse.autograd import nm_conv2d, nm_linear
from repro_nm_sparse.masks import layer_mask

D = torch.float64


def _linear_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 16, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(8, 16, generator=g, dtype=D, requires_grad=True)
    b = torch.randn(8, generator=g, dtype=D, requires_grad=True)
    gy = torch.randn(6, 8, generator=g, dtype=D)
    return x, w, b, gy


def test_bdwp_linear_backward_uses_the_output_dimension_mask():
    x, w, b, gy = _linear_case()
    mf, mb = layer_mask(w, 2, 8, "forward"), layer_mask(w, 2, 8, "backward")
    y = nm_linear(x, w, b, mf, mb, 0.0)
    y.backward(gy)
    wd = w.detach()
    assert torch.allclose(y, x.detach() @ (wd * mf).t() + b.detach())  # FF: W ⊙ M_f
    assert torch.allclose(x.grad, gy @ (wd * mb))  # BP: W ⊙ M_b, the explicit masked matmul
    assert not torch.allclose(x.grad, gy @ (wd * mf))  # ... not the forward mask
    assert torch.allclose(w.grad, gy.t() @ x.detach())  # WG: dense
    assert torch.allclose(b.grad, gy.sum(0))
    # and the backward weight operand is N:M along O (the reduction dimension of dX = dY W)
    assert bool(((wd * mb != 0).reshape(1, 8, 16).sum(1) <= 2).all())


def test_bdwp_conv_backward_uses_the_output_dimension_mask():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 6, 6, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(8, 8, 3, 3, generator=g, dtype=D, requires_grad=True)
    b = torch.randn(8, generator=g, dtype=D, requires_grad=True)
    gy = torch.randn(2, 8, 3, 3, generator=g, dtype=D)
    mf, mb = layer_mask(w, 2, 8, "forward"), layer_mask(w, 2, 8, "backward")
    y = nm_conv2d(x, w, b, mf, mb, 0.0, stride=2, padding=1)
    y.backward(gy)
    # explicit: autograd through conv2d with the backward-masked weight, for dX only
    xe = x.detach().clone().requires_grad_(True)
    F.conv2d(xe, w.detach() * mb, None, 2, 1).backward(gy)
    assert torch.allclose(x.grad, xe.grad)
    xf = x.detach().clone().requires_grad_(True)
    F.conv2d(xf, w.detach() * mf, None, 2, 1).backward(gy)
    assert not torch.allclose(x.grad, xf.grad)
    # WG dense: the gradient of conv2d w.r.t. its (masked) weight, passed straight through
    wd = (w.detach() * mf).requires_grad_(True)
    F.conv2d(x.detach(), wd, b.detach(), 2, 1).backward(gy)
    assert torch.allclose(w.grad, wd.grad)
    assert torch.allclose(y, F.conv2d(x.detach(), w.detach() * mf, b.detach(), 2, 1))
    assert torch.allclose(b.grad, gy.sum((0, 2, 3)))


@pytest.mark.parametrize("decay", [0.0, 2e-4, 0.05])
def test_srste_gradient_term(decay):
    """dL/dW = dL/dW̃ + λ_w (1 − M) ⊙ W; with dL/dW̃ = 0 only the decay of the pruned weights is left."""
    x, w, b, gy = _linear_case(2)
    mf = layer_mask(w, 2, 4, "forward")
    y = nm_linear(x, w, b, mf, mf, decay)
    y.backward(gy)
    wd = w.detach()
    assert torch.allclose(w.grad, gy.t() @ x.detach() + decay * (~mf).to(D) * wd)
    w.grad = None
    nm_linear(x, w, b, mf, mf, decay).backward(torch.zeros_like(gy))
    assert torch.allclose(w.grad, decay * (~mf).to(D) * wd)
    assert bool((w.grad[mf] == 0).all())
    if decay:
        assert bool((w.grad[~mf] != 0).all())


def test_ste_equals_autograd_through_the_masked_weight():
    """STE / SR-STE backward (M_b = M_f) is what autograd gives through F.linear(x, W ⊙ M), with
    the masked weight's gradient passed straight to W (the official code's behaviour)."""
    x, w, b, gy = _linear_case(3)
    mf = layer_mask(w, 2, 8, "forward")
    nm_linear(x, w, b, mf, mf, 0.0).backward(gy)
    xe = x.detach().clone().requires_grad_(True)
    we = (w.detach() * mf).requires_grad_(True)
    F.linear(xe, we, b.detach()).backward(gy)
    assert torch.equal(x.grad, xe.grad) and torch.equal(w.grad, we.grad)


def test_n_equal_m_is_dense_for_every_method():
    x, w, b, gy = _linear_case(4)
    ones = layer_mask(w, 8, 8, "forward")
    assert bool(ones.all()) and bool(layer_mask(w, 8, 8, "backward").all())
    for decay in (0.0, 2e-4):
        for xx in (x, w, b):
            xx.grad = None
        y = nm_linear(x, w, b, ones, layer_mask(w, 8, 8, "backward"), decay)
        y.backward(gy)
        xe, we, be = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
        ye = F.linear(xe, we, be)
        ye.backward(gy)
        assert torch.allclose(y, ye) and torch.allclose(x.grad, xe.grad) and torch.allclose(w.grad, we.grad)


def test_inputs_that_need_no_gradient_get_none():
    x, w, b, gy = _linear_case(5)
    mf = layer_mask(w, 2, 4, "forward")
    xd = x.detach()
    nm_linear(xd, w, None, mf, mf, 2e-4).backward(gy)
    assert xd.grad is None and w.grad is not None
