"""CGE and RGE: the O(μ) error of CGE on a quadratic, RGE's exact form on linear losses, and the
engine's network-level estimates equal to the pure vector-level ones and to autograd to O(μ)."""

from __future__ import annotations

import torch
from torch.func import functional_call

from repro.models import mlp, small_cnn
from repro_deepzero import engine
from repro_deepzero.estimators import cge, gaussian_directions, reference_directions, rge
from repro_deepzero.models import resnet_s


def _quadratic(d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    a = m @ m.t() / d + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)

    def f(thetas: torch.Tensor) -> torch.Tensor:  # (Q, d) -> (Q,)
        return 0.5 * torch.einsum("qi,ij,qj->q", thetas, a, thetas) + thetas @ b

    return f, a, b


def test_cge_matches_autograd_to_order_mu_on_a_quadratic():
    f, a, b = _quadratic(12)
    theta = torch.linspace(-1, 1, 12, dtype=torch.float64)
    exact = a @ theta + b
    errors = []
    for mu in (1e-2, 5e-3, 2.5e-3):
        g = cge(f, theta, mu)
        # forward difference on a quadratic: exactly the gradient plus (mu / 2) * A_ii
        torch.testing.assert_close(g - exact, 0.5 * mu * torch.diagonal(a), rtol=1e-6, atol=1e-10)
        errors.append((g - exact).abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    assert abs(errors[0] / errors[1] - 2) < 1e-3 and abs(errors[1] / errors[2] - 2) < 1e-3  # O(mu)


def test_cge_on_active_coordinates_only():
    f, a, b = _quadratic(10)
    theta = torch.zeros(10, dtype=torch.float64)
    idx = torch.tensor([1, 4, 7])
    g = cge(f, theta, 1e-3, idx)
    assert torch.count_nonzero(g) == 3
    torch.testing.assert_close(g[idx], b[idx] + 0.5e-3 * torch.diagonal(a)[idx], rtol=1e-6, atol=1e-10)


def test_rge_on_a_linear_loss_is_the_projection_on_its_directions():
    b = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    u = torch.randn(7, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    g = rge(lambda t: t @ b, torch.ones(20, dtype=torch.float64), 1e-2, u)
    torch.testing.assert_close(g, u.t() @ (u @ b) / 7, rtol=1e-9, atol=1e-12)


def test_rge_with_gaussian_directions_is_unbiased_on_average():
    f, a, b = _quadratic(6)
    theta = torch.full((6,), 0.3, dtype=torch.float64)
    dirs = gaussian_directions({"t": (6,)}, 20000, torch.Generator().manual_seed(3), dtype=torch.float64)["t"]
    g = rge(f, theta, 1e-4, dirs)
    exact = a @ theta + b
    assert (g - exact).norm() / exact.norm() < 0.05


def test_reference_directions_have_unit_norm_per_tensor():
    d = reference_directions({"w": (3, 4), "b": (3,)}, 5, torch.Generator().manual_seed(0))
    for v in d.values():
        torch.testing.assert_close(torch.linalg.vector_norm(v.reshape(5, -1), dim=1), torch.ones(5), rtol=1e-6,
                                   atol=1e-6)


def _flat_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def f(thetas: torch.Tensor) -> torch.Tensor:
        out = []
        for t in thetas:
            params = {n: v.reshape(s) for n, v, s in zip(names, torch.split(t, sizes), shapes)}
            out.append(torch.nn.functional.cross_entropy(functional_call(model, params, (x,)), y))
        return torch.stack(out)

    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    return f, theta


def _models():
    torch.manual_seed(0)
    return [
        (mlp([6, 5, 3], "tanh").double(), torch.randn(9, 6, dtype=torch.float64)),
        (small_cnn(1, 3, 4).double(), torch.randn(5, 1, 6, 6, dtype=torch.float64)),
        (resnet_s(8, 3, 4, 1).double(), torch.randn(6, 1, 4, 4, dtype=torch.float64)),
    ]


def _spread(prog: engine.Program, count: int = 40) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """~count flat coordinates spread over all parameters, as global indices and per tensor."""
    total = prog.n_params
    idx = torch.arange(0, total, max(1, total // count))
    coords, start = {}, 0
    for n in prog.names:
        size = prog.params[n].numel()
        local = idx[(idx >= start) & (idx < start + size)] - start
        if len(local):
            coords[n] = local
        start += size
    return idx, coords


def _flat(grads: dict[str, torch.Tensor], prog: engine.Program, idx: torch.Tensor) -> torch.Tensor:
    return torch.cat([grads[n].flatten() for n in prog.names])[idx]


def test_engine_cge_equals_the_vector_estimate_and_autograd_to_order_mu():
    for model, x in _models():
        model.train()
        y = torch.arange(len(x)) % 3
        prog = engine.Program(model)
        f, theta = _flat_loss(model, x, y)
        idx, coords = _spread(prog)
        ref = cge(f, theta, 1e-4, idx)[idx]
        for mode in ("reuse", "rank_one"):  # naive == reuse bitwise: test_deepzero_engine.py
            grads, queries = engine.cge(prog, x, y, coords, 1e-4, mode)
            assert queries == 1 + len(idx)
            torch.testing.assert_close(_flat(grads, prog, idx), ref, rtol=1e-6, atol=1e-8, msg=mode)
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        auto = torch.cat([p.grad.flatten() for p in model.parameters()])[idx]
        diff4 = _flat(engine.cge(prog, x, y, coords, 1e-4, "reuse")[0], prog, idx) - auto
        diff3 = _flat(engine.cge(prog, x, y, coords, 1e-3, "reuse")[0], prog, idx) - auto
        if any(isinstance(m, torch.nn.Tanh) for m in model.modules()):
            # smooth loss: the error is (mu / 2) H_ii + O(mu^2), ten times smaller at a ten times smaller mu
            assert diff4.abs().max() < diff3.abs().max() / 5, (diff3.abs().max(), diff4.abs().max())
        # ReLU networks: a kink within mu of a coordinate breaks the expansion there; typical errors still shrink
        moving = (diff3 != 0) | (diff4 != 0)  # dead ReLU units give exact zeros at both steps
        assert diff4[moving].abs().median() < diff3[moving].abs().median()
        assert diff4[moving].abs().median() < 1e-3 * auto.abs().max()


def test_engine_rge_equals_the_vector_estimate():
    model, x = _models()[0]
    y = torch.arange(len(x)) % 3
    prog = engine.Program(model)
    f, theta = _flat_loss(model, x, y)
    shapes = {n: tuple(p.shape) for n, p in prog.params.items()}
    dirs = gaussian_directions(shapes, 5, torch.Generator().manual_seed(4), dtype=torch.float64)
    grads, queries = engine.rge(prog, x, y, dirs, 1e-3)
    flat_dirs = torch.cat([dirs[n].reshape(5, -1) for n in prog.names], dim=1)
    ref = rge(f, theta, 1e-3, flat_dirs)
    torch.testing.assert_close(torch.cat([grads[n].flatten() for n in prog.names]), ref, rtol=1e-9, atol=1e-12)
    assert queries == 6
