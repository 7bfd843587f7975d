"""The batched perturbation engine: its forward is the model's, feature reuse is bit-identical to
the naive path, the rank-one path agrees to rounding, and queries are batched, never looped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError
from repro.models import mlp, small_cnn
from repro_deepzero import engine
from repro_deepzero.kernels import structured_delta_reference
from repro_deepzero.models import resnet20_cifar, resnet_s


def _models():
    torch.manual_seed(0)
    return {
        "mlp": (mlp([64, 16, 10], "relu"), torch.rand(32, 1, 8, 8)),
        "mlp_tanh3": (mlp([12, 7, 5, 4], "tanh"), torch.randn(16, 12)),
        "small_cnn": (small_cnn(1, 10, 4), torch.rand(16, 1, 8, 8)),
        "resnet8": (resnet_s(8, 10, 4, 1), torch.rand(16, 1, 8, 8)),
    }


def _subset(prog: engine.Program, per_tensor: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {n: torch.randperm(p.numel(), generator=g)[:per_tensor].sort().values for n, p in prog.params.items()}


@pytest.mark.parametrize("name", list(_models()))
def test_engine_forward_is_the_models_training_forward(name):
    model, x = _models()[name]
    model.train()
    logits = engine.Program(model).base(x).logits[0]
    torch.testing.assert_close(logits, model(x), rtol=1e-5, atol=1e-5)


def test_resnet20_forward_matches_at_cifar_size():
    torch.manual_seed(0)
    model = resnet20_cifar().train()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(engine.Program(model).base(x).logits[0], model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(_models()))
def test_feature_reuse_is_bit_identical_to_the_naive_forward(name):
    model, x = _models()[name]
    prog = engine.Program(model)
    y = torch.arange(len(x)) % 4
    coords = _subset(prog, 6 if name == "resnet8" else 24)
    naive, qn = engine.cge(prog, x, y, coords, 5e-3, "naive")
    reuse, qr = engine.cge(prog, x, y, coords, 5e-3, "reuse")
    assert qn == qr == 1 + sum(len(v) for v in coords.values())
    for n in prog.names:
        assert torch.equal(naive[n], reuse[n]), n


@pytest.mark.parametrize("name", list(_models()))
def test_rank_one_agrees_with_reuse_to_rounding(name):
    model, x = _models()[name]
    prog = engine.Program(model)
    y = torch.arange(len(x)) % 4
    coords = _subset(prog, 8 if name == "resnet8" else 24)
    reuse, _ = engine.cge(prog, x, y, coords, 5e-3, "reuse")
    rank1, _ = engine.cge(prog, x, y, coords, 5e-3, "rank_one")
    for n in prog.names:
        # the estimate divides a float32 loss difference by mu: rounding of ~1e-7 * loss / mu
        torch.testing.assert_close(rank1[n], reuse[n], rtol=0, atol=2e-4, msg=n)


def test_rank_one_matches_in_float64_exactly_enough():
    model, x = _models()["resnet8"]
    model.double()
    prog = engine.Program(model)
    x = x[:8].double()
    y = torch.arange(len(x)) % 4
    coords = _subset(prog, 3)
    reuse, _ = engine.cge(prog, x, y, coords, 5e-3, "reuse")
    rank1, _ = engine.cge(prog, x, y, coords, 5e-3, "rank_one")
    for n in prog.names:
        torch.testing.assert_close(rank1[n], reuse[n], rtol=1e-7, atol=1e-10, msg=n)


def test_queries_are_batched_not_looped(monkeypatch):
    """One engine evaluation per (parameter tensor, chunk), however many coordinates it holds."""
    model, x = _models()["mlp"]
    prog = engine.Program(model)
    y = torch.arange(len(x)) % 4
    calls = []
    run = engine.Program.run

    def counting(self, *a, **k):
        calls.append(1)
        return run(self, *a, **k)

    monkeypatch.setattr(engine.Program, "run", counting)
    name = prog.names[0]
    for count in (5, 500):
        calls.clear()
        engine.cge(prog, x, y, {name: torch.arange(count)}, 5e-3, "reuse")
        assert len(calls) == 1


def _brute(op: str, shape_in, w_shape, stride=1, padding=0):
    """(base, perturbed outputs recomputed with W + mu e_i, and the delta's arguments)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(*shape_in, generator=g, dtype=torch.float64)
    w = torch.randn(*w_shape, generator=g, dtype=torch.float64)
    mu = 0.01
    if op == "linear":
        fn = lambda w_: F.linear(x, w_)  # noqa: E731
    elif op == "conv":
        fn = lambda w_: F.conv2d(x, w_, stride=stride, padding=padding)  # noqa: E731
    base = fn(w)
    idx = torch.randperm(w.numel(), generator=g)[:9]
    outs = []
    for i in idx:
        wp = w.clone().flatten()
        wp[i] += mu
        outs.append(fn(wp.reshape(w.shape)))
    return x, w, base, idx, torch.stack(outs), mu


def test_structured_delta_is_the_recomputed_linear_output():
    x, w, base, idx, want, mu = _brute("linear", (5, 7), (4, 7))
    co, ci = idx // 7, idx % 7
    z = torch.zeros_like(idx)
    got = structured_delta_reference(base[:, :, None, None], x[:, :, None, None], co, ci, z, z, 1, 0, mu)
    torch.testing.assert_close(got[..., 0, 0], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 1), (2, 0), (1, 0)])
def test_structured_delta_is_the_recomputed_conv_output(stride, padding):
    x, w, base, idx, want, mu = _brute("conv", (3, 2, 7, 7), (4, 2, 3, 3), stride, padding)
    co, rest = idx // 18, idx % 18
    ci, tap = rest // 9, rest % 9
    got = structured_delta_reference(base, x, co, ci, tap // 3, tap % 3, stride, padding, mu)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_structured_delta_bias_adds_mu_to_one_channel():
    base = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    co = torch.tensor([0, 2])
    z = torch.zeros_like(co)
    got = structured_delta_reference(base, None, co, z, z, z, 1, 0, 0.5)
    want = base.unsqueeze(0).repeat(2, 1, 1, 1, 1)
    want[0, :, 0] += 0.5
    want[1, :, 2] += 0.5
    torch.testing.assert_close(got, want)


def test_unsupported_models_are_refused_naming_the_module():
    with pytest.raises(ReproError, match="Dropout"):
        engine.Program(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(3, 2)))
    with pytest.raises(ReproError, match="LSTM"):
        engine.Program(nn.LSTM(3, 3))
    with pytest.raises(ReproError, match="not supported"):
        engine.loss_rows("huber")
