"""The stacked network: equal to independent MLPs, input gradients by autograd and by forward-mode
tangents agree (values, gradients, parameter gradients of the Sobolev loss), and training the
problems together equals training each alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.errors import ReproError

from repro_sobolev.kernels import jvp_layer_backward, jvp_layer_reference
from repro_sobolev.modeling_sobolev import SobolevNet, StackedMLP
from repro_sobolev.sobolev import sobolev_loss

DOMAINS = [[[-2.0, 4.0], [-1.0, 1.0]], [[-30.0, 30.0], [0.0, 10.0]]]


def _sequential(stack: StackedMLP, p: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(stack.weights, stack.biases)):
        lin = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            lin.weight.copy_(w[p].T)
            lin.bias.copy_(b[p, 0])
        layers.append(lin)
        if i < len(stack.weights) - 1:
            layers.append(nn.ReLU() if stack.activation == "relu" else nn.Tanh())
    return nn.Sequential(*layers)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_stacked_mlp_equals_independent_mlps(activation):
    torch.manual_seed(0)
    stack = StackedMLP(3, [2, 7, 5, 1], activation)
    x = torch.randn(3, 11, 2)
    out = stack(x)
    for p in range(3):
        assert torch.allclose(out[p], _sequential(stack, p)(x[p]), atol=1e-6)


def test_initialisation_is_nn_linear_s_bound():
    stack = StackedMLP(4, [2, 64, 1])
    assert float(stack.weights[0].detach().abs().max()) <= 1 / 2 ** 0.5
    assert float(stack.weights[1].detach().abs().max()) <= 1 / 8


def _net(derivatives: str, activation: str = "relu") -> SobolevNet:
    torch.manual_seed(1)
    return SobolevNet([0, 1, 0], DOMAINS, hidden=(9, 6), activation=activation, derivatives=derivatives)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_output_is_value_and_input_gradient_in_domain_coordinates(activation):
    net = _net("autograd", activation).eval()
    x = torch.randn(13, 2, 2) * 3
    out = net(x)
    assert out.shape == (13, 3, 3)
    for p, col in enumerate([0, 1, 0]):
        lo, hi = torch.tensor(DOMAINS[col]).T
        seq = _sequential(net.mlp, p)

        def f(z, seq=seq, lo=lo, hi=hi):
            u = (z - (lo + hi) / 2) / ((hi - lo) / 2)
            return seq(u)[..., 0]

        jac = torch.func.vmap(torch.func.jacrev(f))(x[:, col])
        assert torch.allclose(out[:, p, 0], f(x[:, col]).detach(), atol=1e-5)
        assert torch.allclose(out[:, p, 1:], jac, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_forward_mode_equals_double_backprop_including_parameter_gradients(activation):
    x = torch.randn(17, 2, 2) * 2
    target = torch.randn(17, 3, 3)
    target[12:, 2] = float("nan")
    grads = {}
    outs = {}
    for mode in ("autograd", "forward"):
        net = _net(mode, activation).train()
        out = net(x)
        loss = sobolev_loss(out, target, "sobolev", 0.8)
        loss.backward()
        outs[mode] = out.detach()
        grads[mode] = [p.grad.clone() for p in net.parameters()]
    assert torch.allclose(outs["autograd"], outs["forward"], atol=1e-5)
    for a, f in zip(grads["autograd"], grads["forward"]):
        assert torch.allclose(a, f, atol=1e-5, rtol=1e-4)


def test_values_only_training_skips_derivatives_but_evaluation_computes_them():
    net = _net("autograd").train()
    net.fit_derivatives = False
    x = torch.randn(4, 2, 2)
    assert float(net(x)[..., 1:].detach().abs().sum()) == 0.0
    with torch.no_grad():
        assert float(net.eval()(x)[..., 1:].abs().sum()) > 0.0


def test_training_problems_together_equals_training_each_alone():
    """The loss is a sum over problems and Adam is per-parameter: a stacked run is P single runs."""
    torch.manual_seed(2)
    x = torch.randn(10, 2, 2)
    target = torch.randn(10, 2, 3)
    together = SobolevNet([0, 1], DOMAINS, hidden=(8,))
    alone = []
    for p in range(2):
        single = SobolevNet([p], [DOMAINS[p]] if p == 0 else [DOMAINS[0], DOMAINS[1]], hidden=(8,))
        single.columns = torch.tensor([p])
        single.centre, single.half_width = together.centre[p:p + 1].clone(), together.half_width[p:p + 1].clone()
        with torch.no_grad():
            for ws, wt in zip(single.parameters(), together.parameters()):
                ws.copy_(wt[p:p + 1])
        alone.append(single)

    def train(net, tgt):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(5):
            opt.zero_grad()
            sobolev_loss(net.train()(x), tgt, "sobolev").backward()
            opt.step()

    train(together, target)
    for p, single in enumerate(alone):
        train(single, target[:, p:p + 1])
        for ws, wt in zip(single.parameters(), together.parameters()):
            assert torch.allclose(ws[0], wt[p], atol=1e-6)


def test_jvp_layer_backward_matches_autograd_of_the_reference():
    g = torch.Generator().manual_seed(0)
    h, t = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 2, 3, generator=g)
    w, b = torch.randn(2, 3, 4, generator=g), torch.randn(2, 1, 4, generator=g)
    go, gt = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 2, 4, generator=g)
    for act in ("relu", "none"):
        leaves = [v.clone().requires_grad_(True) for v in (h, t, w, b)]
        out, tout = jvp_layer_reference(*leaves, act)
        ((out * go).sum() + (tout * gt).sum()).backward()
        mine = jvp_layer_backward(h, t, w, out.detach(), act == "relu", go, gt)
        for a, r in zip(mine, leaves):
            assert torch.allclose(a, r.grad, atol=1e-6)


def test_bad_configuration_is_refused():
    with pytest.raises(ReproError, match="valid choices"):
        SobolevNet([0], DOMAINS, derivatives="finite_differences")
    with pytest.raises(ReproError, match="valid choices"):
        StackedMLP(1, [2, 3, 1], activation="gelu")
    with pytest.raises(ReproError, match="domain"):
        SobolevNet([3], DOMAINS)
    with pytest.raises(ReproError, match="expected inputs"):
        _net("autograd")(torch.randn(4, 2))
