"""Tests for repro_enkf.ensemble: shapes, flattening order, batched forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from repro_enkf.ensemble import (
    ACTIVATIONS,
    ensemble_forward,
    ensemble_forward_reference,
    init_ensemble,
    layer_shapes,
    num_params,
    unflatten_parameters,
)

SIZES = [[1, 1], [1, 10, 1], [2, 20, 1], [3, 7, 5, 2], [4, 8, 8, 8, 3]]
TORCH_ACT = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def make_sequential(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(TORCH_ACT[activation]())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers).double()


def test_layer_shapes_and_num_params() -> None:
    assert layer_shapes([1, 10, 1]) == [((10, 1), (10,)), ((1, 10), (1,))]
    assert num_params([1, 10, 1]) == 10 + 10 + 10 + 1
    assert num_params([2, 20, 1]) == 40 + 20 + 20 + 1


@pytest.mark.parametrize("sizes", SIZES)
def test_num_params_matches_sequential(sizes: list[int]) -> None:
    model = make_sequential(sizes, "tanh")
    assert num_params(sizes) == sum(p.numel() for p in model.parameters())
    shapes = [s for pair in layer_shapes(sizes) for s in pair]
    assert shapes == [tuple(p.shape) for p in model.parameters()]


@pytest.mark.parametrize("bad", [[3], [], [2, 0, 1], [2, -1], [2.0, 3]])
def test_bad_sizes(bad: list) -> None:
    with pytest.raises(ValueError, match="sizes"):
        layer_shapes(bad)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_flattening_matches_sequential(sizes: list[int], activation: str) -> None:
    gen = torch.Generator().manual_seed(0)
    theta = init_ensemble(sizes, 4, gen, dtype=torch.float64)
    x = torch.randn(13, sizes[0], generator=gen, dtype=torch.float64)
    out = ensemble_forward(theta, x, sizes, activation)
    model = make_sequential(sizes, activation)
    for j in range(theta.shape[0]):
        # Member -> model: outputs must agree.
        vector_to_parameters(theta[j], model.parameters())
        torch.testing.assert_close(model(x), out[j])
        # Model -> member: the flattening round-trips exactly.
        assert torch.equal(parameters_to_vector(model.parameters()), theta[j])
    # And the per-layer views are exactly the model's parameters.
    for (w, b), lin in zip(unflatten_parameters(theta, sizes), [m for m in model if isinstance(m, nn.Linear)]):
        assert torch.equal(w[-1], lin.weight) and torch.equal(b[-1], lin.bias)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_matches_reference(sizes: list[int], activation: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    theta = init_ensemble(sizes, 7, gen, dtype=dtype)
    x = torch.randn(31, sizes[0], generator=gen, dtype=dtype)
    out = ensemble_forward(theta, x, sizes, activation)
    assert out.shape == (7, 31, sizes[-1])
    assert out.dtype == dtype
    torch.testing.assert_close(out, ensemble_forward_reference(theta, x, sizes, activation))


def test_unflatten_returns_views() -> None:
    sizes = [2, 5, 3]
    theta = torch.zeros(3, num_params(sizes))
    (w0, b0), (w1, b1) = unflatten_parameters(theta, sizes)
    assert w0.shape == (3, 5, 2) and b0.shape == (3, 5) and w1.shape == (3, 3, 5) and b1.shape == (3, 3)
    w1[1, 2, 4] = 1.0  # writes through to theta: last weight of member 1
    assert theta[1, 10 + 5 + 14] == 1.0


def test_init_ensemble_default_spread() -> None:
    sizes = [4, 50, 1]
    gen = torch.Generator().manual_seed(0)
    theta = init_ensemble(sizes, 2000, gen)
    assert theta.shape == (2000, num_params(sizes)) and theta.dtype == torch.float32
    (w0, b0), (w1, b1) = unflatten_parameters(theta, sizes)
    assert w0.std().item() == pytest.approx(0.5, rel=0.05)  # 1/sqrt(fan_in=4)
    assert w1.std().item() == pytest.approx(50 ** -0.5, rel=0.05)
    assert b0.std().item() == pytest.approx(0.1, rel=0.05)
    assert abs(theta.mean().item()) < 0.01


def test_init_ensemble_reproducible_and_std() -> None:
    a = init_ensemble([2, 3, 1], 5, torch.Generator().manual_seed(3))
    b = init_ensemble([2, 3, 1], 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    c = init_ensemble([2, 3, 1], 5000, torch.Generator().manual_seed(3), std=2.0, dtype=torch.float64)
    assert c.dtype == torch.float64
    assert c.std().item() == pytest.approx(2.0, rel=0.03)
    with pytest.raises(ValueError, match="ensemble_size"):
        init_ensemble([2, 1], 0)
    with pytest.raises(ValueError, match="std"):
        init_ensemble([2, 1], 3, std=-1.0)


def test_bad_activation_names_value_and_choices() -> None:
    theta = torch.zeros(2, num_params([1, 3, 1]))
    x = torch.zeros(4, 1)
    for fn in (ensemble_forward, ensemble_forward_reference):
        with pytest.raises(ValueError, match="activation") as err:
            fn(theta, x, [1, 3, 1], "gelu")
        msg = str(err.value)
        assert "'gelu'" in msg and all(name in msg for name in ACTIVATIONS)


def test_bad_shapes_raise() -> None:
    sizes = [2, 3, 1]
    with pytest.raises(ValueError, match="theta"):
        ensemble_forward(torch.zeros(2, num_params(sizes) + 1), torch.zeros(4, 2), sizes)
    with pytest.raises(ValueError, match="theta"):
        ensemble_forward(torch.zeros(num_params(sizes)), torch.zeros(4, 2), sizes)
    with pytest.raises(ValueError, match="x"):
        ensemble_forward(torch.zeros(2, num_params(sizes)), torch.zeros(4, 3), sizes)
