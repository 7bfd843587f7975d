"""The HSPG / Prox-SG step: hand-computed cases, and the core-optimizer path equal to the reference step."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from repro_oto import hspg


def _set(seed: int = 0, n: int = 6):
    """A conv-like ZIG set: filters (n, 2, 3, 3), bias, gamma, beta; group 2 zero, group 4 tiny."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(n, 2, 3, 3, generator=g), torch.randn(n, generator=g),
              1 + 0.1 * torch.randn(n, generator=g), 0.1 * torch.randn(n, generator=g)]
    for p in params:
        p[2] = 0
        p[4] *= 1e-3
    grads = [0.3 * torch.randn(p.shape, generator=g) for p in params]
    return params, grads


def test_subgradient_step_by_hand():
    x, grad = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, -1.0]])
    hspg.step_reference([x], [grad], None, mode="subgradient", lr=0.1, lmbda=0.5)
    norm = 5.0 + hspg.DELTA
    expect = torch.tensor([[3 - 0.1 * (1 + 0.5 * 3 / norm), 4 - 0.1 * (-1 + 0.5 * 4 / norm)]])
    assert torch.allclose(x, expect, atol=1e-7)


def test_half_space_projects_a_group_whose_trial_point_reverses_and_keeps_zero_groups():
    # group 0: x = (1, 0), step pushes it to (-0.5, 0): <x_hat, x> < 0 -> 0
    # group 1: x = (1, 0), small step: kept; with eps = 0.9 the same step (ratio 0.95 > 0.9) is kept,
    #          with eps = 0.96 it is projected
    # group 2: x = 0: stays 0 even though its gradient would move it
    def run(eps: float) -> torch.Tensor:
        x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
        g = torch.tensor([[15.0, 0.0], [0.5, 0.3], [1.0, 1.0]])
        hspg.step_reference([x], [g], None, mode="half_space", lr=0.1, lmbda=0.0, eps=eps)
        return x

    x = run(0.0)
    assert torch.equal(x[0], torch.zeros(2)) and torch.equal(x[2], torch.zeros(2))
    assert torch.allclose(x[1], torch.tensor([0.95, -0.03]))
    assert torch.allclose(run(0.9)[1], torch.tensor([0.95, -0.03]))
    assert torch.equal(run(0.96)[1], torch.zeros(2))


def test_prox_step_is_the_group_soft_threshold():
    x = torch.tensor([[3.0, 4.0], [0.03, 0.04]])
    g = torch.zeros(2, 2)
    hspg.step_reference([x], [g], None, mode="prox", lr=0.1, lmbda=1.0)  # threshold 0.1
    assert torch.allclose(x[0], torch.tensor([3.0, 4.0]) * (1 - 0.1 / 5))
    assert torch.equal(x[1], torch.zeros(2))  # ||z|| = 0.05 <= 0.1


def test_group_norm_spans_every_member_tensor():
    params, _ = _set()
    sq = hspg.sq_norms(params)
    by_hand = torch.stack([sum(p[k].pow(2).sum() for p in params) for k in range(6)])
    assert torch.allclose(sq, by_hand)
    assert sq[2] == 0


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("mode", hspg.MODES)
def test_optimizer_path_equals_reference_step(mode, momentum, weight_decay):
    """torch SGD + subgradient_ before / projection after == step_reference, over three steps."""
    params, grads0 = _set(1)
    ref = [p.clone() for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    leaves = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.SGD(leaves, lr=0.2, momentum=momentum, weight_decay=weight_decay)
    lmbda, eps = 0.3, 0.2
    for step in range(3):
        grads = [g * (step + 1) for g in grads0]
        hspg.step_reference(ref, grads, bufs if momentum else None, mode=mode, lr=0.2, lmbda=lmbda, eps=eps,
                            momentum=momentum, weight_decay=weight_decay)
        for p, g in zip(leaves, grads):
            p.grad = g.clone()
        if mode != "prox":
            hspg.subgradient_(leaves, [p.grad for p in leaves], lmbda)
        saved = [p.detach().clone() for p in leaves]
        opt.step()
        if mode == "half_space":
            hspg.half_space_project_(leaves, saved, eps)
        elif mode == "prox":
            hspg.group_prox_(leaves, 0.2 * lmbda)
        for a, b in zip(leaves, ref):
            assert torch.allclose(a.detach(), b, atol=1e-6), (mode, step)
    if mode == "half_space":
        assert hspg.sq_norms(ref)[2] == 0  # the zero group stayed zero


def test_half_space_stage_zeroes_more_than_it_revives():
    """Repeated half-space steps on a group whose loss gradient is tiny drive it to exactly zero."""
    x = torch.tensor([[0.05, -0.02], [2.0, 1.0]])
    for _ in range(20):
        g = torch.tensor([[1e-4, 0.0], [0.01, -0.01]])
        hspg.step_reference([x], [g], None, mode="half_space", lr=0.1, lmbda=0.05)
    assert torch.equal(x[0], torch.zeros(2))
    assert x[1].norm() > 1.5
    assert math.isclose(float(hspg.sq_norms([x])[0]), 0.0)


def test_in_place_helpers_need_views():
    t = torch.randn(2, 3, 4).transpose(0, 1)  # not contiguous: a silent copy would lose the update
    with pytest.raises(RuntimeError):
        hspg.rows(t)
    p = torch.randn(3, 4)
    q = copy.deepcopy(p)
    hspg.zero_rows_([p], torch.tensor([True, False, False]))
    assert torch.equal(p[0], torch.zeros(4)) and torch.equal(p[1:], q[1:])


def test_decoupled_subgradient_step_over_plain_sgd_is_the_coupled_step():
    """Over an adaptive optimizer the subgradient is applied after its step; over plain SGD (no
    momentum) that decoupled step is the same as feeding the subgradient through the gradient."""
    params, grads = _set(3)
    coupled = [p.clone() for p in params]
    hspg.step_reference(coupled, grads, None, mode="subgradient", lr=0.1, lmbda=0.4)
    saved = [p.clone() for p in params]
    for p, g in zip(params, grads):
        p.sub_(0.1 * g)  # the base optimizer's step on the loss alone
    hspg.subgradient_step_(params, saved, 0.1 * 0.4)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params, coupled))
