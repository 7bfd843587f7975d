"""The pure functions of Sobolev training: losses, masks, random directions, input gradients, and
the Jacobian-matching distillation loss against explicit Jacobians."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from repro.errors import ReproError

from repro_sobolev.sobolev import (gradient_errors, jacobian_matching_loss, observed, projected_gradient_errors,
                                   random_directions, sobolev_loss, value_and_input_gradient, value_errors)


def _pair(n=6, p=2, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, 1 + d, generator=g), torch.randn(n, p, 1 + d, generator=g)


def test_errors_by_hand():
    pred, target = _pair()
    assert torch.allclose(value_errors(pred, target), ((pred[..., 0] - target[..., 0]) ** 2).mean(0))
    assert torch.allclose(gradient_errors(pred, target), ((pred[..., 1:] - target[..., 1:]) ** 2).sum(-1).mean(0))


def test_unobserved_targets_are_left_out():
    pred, target = _pair(n=8)
    target[5:, 1] = float("nan")  # problem 1 observes only its first 5 rows
    assert observed(target).sum(0).tolist() == [8.0, 5.0]
    v, g = value_errors(pred, target), gradient_errors(pred, target)
    assert torch.isfinite(v).all() and torch.isfinite(g).all()
    assert torch.allclose(v[1], ((pred[:5, 1, 0] - target[:5, 1, 0]) ** 2).mean())
    loss = sobolev_loss(pred.requires_grad_(True), target, "sobolev")
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(grad).all() and float(grad[5:, 1].abs().sum()) == 0.0


def test_loss_modes():
    pred, target = _pair()
    v = random_directions((6, 2), 2, torch.Generator().manual_seed(0))
    assert torch.allclose(sobolev_loss(pred, target, "value"), value_errors(pred, target).sum())
    assert torch.allclose(sobolev_loss(pred, target, "sobolev", 0.5),
                          (value_errors(pred, target) + 0.5 * gradient_errors(pred, target)).sum())
    assert torch.allclose(sobolev_loss(pred, target, "stochastic", 2.0, v),
                          (value_errors(pred, target) + 2.0 * projected_gradient_errors(pred, target, v)).sum())
    with pytest.raises(ReproError, match="valid choices"):
        sobolev_loss(pred, target, "hessian")
    with pytest.raises(ReproError, match="directions"):
        sobolev_loss(pred, target, "stochastic")


def test_random_directions_are_uniform_unit_vectors_and_project_on_average_to_a_dth():
    g = torch.Generator().manual_seed(0)
    v = random_directions((20000,), 3, g)
    assert torch.allclose(v.norm(dim=-1), torch.ones(20000), atol=1e-5)
    assert float(v.mean(0).abs().max()) < 0.02
    grad = torch.tensor([1.0, -2.0, 0.5])
    # E[<g, v>^2] = |g|^2 / d for v uniform on the sphere
    assert float(((v @ grad) ** 2).mean()) == pytest.approx(float(grad @ grad) / 3, rel=0.03)
    again = random_directions((20000,), 3, torch.Generator().manual_seed(0))
    assert torch.equal(v, again)


def test_value_and_input_gradient_double_backprop():
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(5, 2)
    value, grad = value_and_input_gradient(net, x, create_graph=True)
    assert grad.requires_grad  # differentiable: a loss on it reaches the parameters
    (gw,) = torch.autograd.grad(grad.pow(2).sum(), net[0].weight)
    assert float(gw.abs().sum()) > 0
    with torch.no_grad():
        v2, g2 = value_and_input_gradient(net, x, create_graph=False)
    assert not g2.requires_grad and not v2.requires_grad
    assert torch.allclose(g2, grad.detach()) and torch.allclose(v2, value.detach())
    jac = torch.func.vmap(torch.func.jacrev(lambda z: net(z)[0]))(x)
    assert torch.allclose(grad.detach(), jac, atol=1e-6)


def test_jacobian_matching_loss_against_explicit_jacobians():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    teacher = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x = torch.randn(7, 4)
    loss = jacobian_matching_loss(student, teacher, x, torch.Generator().manual_seed(3), weight=0.7)
    v = random_directions((7,), 3, torch.Generator().manual_seed(3))
    js = torch.func.vmap(torch.func.jacrev(student))(x)  # (N, C, D)
    jt = torch.func.vmap(torch.func.jacrev(teacher))(x)
    with torch.no_grad():
        expected = ((student(x) - teacher(x)) ** 2).sum(1).mean() + 0.7 * (
            (torch.einsum("nc,ncd->nd", v, js - jt)) ** 2).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()  # trains the student only
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert math.isfinite(float(loss.detach()))
