"""The quantized layers: QAT is a straight-through estimator of the quantized forward, FQT an
unbiased estimate of the QAT gradient, and wrapping keeps the parameters and checkpoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro_fqt import kernels as K
from repro_fqt.autograd import ForwardSpec, GradSpec, quantized_conv2d, quantized_linear
from repro_fqt.models import lenet_mnist, preact_resnet_cifar
from repro_fqt.wrap import is_quantized, quantize_model, quantized_layers


def test_qat_linear_is_the_ste_of_the_quantized_forward():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g, requires_grad=True)
    w = torch.randn(3, 5, generator=g, requires_grad=True)
    b = torch.randn(3, generator=g, requires_grad=True)
    out = quantized_linear(x, w, b)
    qx = K.quantize_tensor(x.detach(), 8, stochastic=False, align_zero=False)
    qw = K.quantize_tensor(w.detach(), 8, stochastic=False)
    qb = K.quantize_tensor(b.detach(), 16, stochastic=False)
    assert torch.allclose(out, F.linear(qx, qw, qb))
    r = torch.randn(6, 3, generator=g)
    (out * r).sum().backward()
    assert torch.allclose(x.grad, r @ qw) and torch.allclose(w.grad, r.t() @ qx) and torch.allclose(b.grad, r.sum(0))


def test_qat_conv_is_the_ste_of_the_quantized_forward():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, 6, 6, generator=g, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, generator=g, requires_grad=True)
    b = torch.randn(3, generator=g, requires_grad=True)
    out = quantized_conv2d(x, w, b, stride=(2, 2), padding=(1, 1))
    qx = K.quantize_tensor(x.detach(), 8, stochastic=False, align_zero=False).requires_grad_(True)
    qw = K.quantize_tensor(w.detach(), 8, stochastic=False).requires_grad_(True)
    bb = b.detach().clone().requires_grad_(True)  # conv biases are not quantized (as the reference)
    ref = F.conv2d(qx, qw, bb, stride=2, padding=1)
    assert torch.allclose(out, ref, atol=1e-6)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    (ref * r).sum().backward()
    assert torch.allclose(x.grad, qx.grad, atol=1e-5) and torch.allclose(w.grad, qw.grad, atol=1e-4)
    assert torch.allclose(b.grad, bb.grad, atol=1e-5)


def test_fqt_gradient_mean_converges_to_the_qat_gradient():
    """Bifurcated low-bit gradients of a two-layer net: mean over draws -> QAT gradient, and the
    error of the mean shrinks like 1/sqrt(draws)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    spec = GradSpec(None, 4, 8)
    quantize_model(model, ForwardSpec(), spec)
    x, y = torch.randn(32, 10), torch.randint(0, 4, (32,))
    loss = F.cross_entropy(model(x), y)
    params = list(model.parameters())
    ref = torch.cat([t.flatten() for t in torch.autograd.grad(loss, params, retain_graph=True)])
    spec.scheme = "bhq"
    draws = torch.stack([torch.cat([t.flatten() for t in torch.autograd.grad(loss, params, retain_graph=True)])
                         for _ in range(400)])
    err = lambda n: float((draws[:n].mean(0) - ref).norm())  # noqa: E731
    assert float((draws[0] - ref).norm()) > 0  # the FQT gradient is noisy
    assert err(400) < err(25) / 2.5  # ~1/sqrt(draws): sqrt(16) = 4 in expectation
    assert err(400) < 0.1 * float(ref.norm())


def test_wrapping_keeps_parameters_and_state_dict_keys():
    for model in (lenet_mnist(), preact_resnet_cifar(depth=8)):
        params = [id(p) for p in model.parameters()]
        keys = list(model.state_dict())
        names = quantize_model(model, ForwardSpec(), GradSpec("psq", 4, 8))
        assert is_quantized(model) and len(names) == len(quantized_layers(model))
        assert [id(p) for p in model.parameters()] == params
        assert list(model.state_dict()) == keys


def test_preact_resnet56_shape_and_size():
    from repro_fqt.models import preact_resnet56_cifar

    model = preact_resnet56_cifar()
    # 0.86M: 55 3x3/1x1 convs (with the reference's two 1x1 conv shortcuts), BN, the linear head
    assert 0.85e6 < sum(p.numel() for p in model.parameters()) < 0.86e6
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 27 + 2 and all(c.bias is None for c in convs)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_quantized_model_trains_and_evaluates():
    torch.manual_seed(0)
    model = lenet_mnist()
    spec = GradSpec("bhq", 4, 8)
    quantize_model(model, ForwardSpec(), spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
