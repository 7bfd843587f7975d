"""Our quantizers and layers against the official code (cjf00000/StatQuant, commit 8cde082) on identical inputs.

``golden/reference_golden.json`` holds fixed inputs and what the reference returns on them, with
every stochastic-rounding draw it made recorded (``events``: the preconditioner that drew it and
its number of levels, then the noise). We feed the same noise to our code (by replacing
``repro_fqt.quantizers.draw_noise``, the one place our reference path draws it) and compare:

* the preconditioners (``image_classification/preconditioner.py``): ``ScalarPreconditioner``
  (PTQ gradients, weights: zero point and scale, then the output), ``ScalarPreconditionerAct``
  (activations), ``DiagonalPreconditioner`` (PSQ per row; per column, the weight-gradient path),
  ``BlockwiseHouseholderPreconditioner`` (BHQ: the dense T and T^{-1} of ``quantizers.cpp`` vs our
  ``BHQPlan.dense()``, and the output, where ours applies T as block reflections);
* the layers (``image_classification/quantize.py``: ``QLinear``, ``QConv2d`` with
  ``linear_biprec`` / ``conv2d_biprec``) under the README's QAT / PTQ / PSQ / BHQ commands with
  bbits 4, bwbits 8: the output and the input, weight and bias gradients for a fixed upstream
  gradient — the forward quantizers, the STE and gradient bifurcation end to end.

Regenerate (needs the reference and a C++ compiler; the tests never import the reference)::

    git clone https://github.com/cjf00000/StatQuant /tmp/statquant
    uv run --frozen python packages/fqt/tests/golden/make_reference_golden.py /tmp/statquant
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from repro_fqt import kernels as K
from repro_fqt import quantizers as Q
from repro_fqt.autograd import ForwardSpec, GradSpec
from repro_fqt.wrap import quantize_model

GOLDEN = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
CASES = {c["name"]: c for c in GOLDEN["cases"]}
F32 = torch.finfo(torch.float32).eps


def t(v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


def noises(events, bins=None):
    """The recorded noises, in order, optionally only those drawn by a quantizer with *bins* levels."""
    out, kind_bins = [], None
    for e in events:
        if "kind" in e:
            kind_bins = e["bins"]
        elif bins is None or kind_bins == bins:
            out.append(t(e["noise"]))
    return out


def feed(monkeypatch, queue):
    """Make our reference path draw the given noises, in order (each must have the requested shape)."""
    queue = list(queue)

    def draw(shape, device, generator=None):
        assert queue, "our code drew more rounding noise than the reference"
        n = queue.pop(0)
        assert tuple(n.shape) == tuple(shape), f"noise shape {tuple(n.shape)} vs requested {tuple(shape)}"
        return n

    monkeypatch.setattr(Q, "draw_noise", draw)
    return queue


def assert_close(got, want, scale, what=""):
    """Equal up to float32 round-off at the tensor's magnitude (a different rounding decision
    would be off by a whole quantization level, orders of magnitude more)."""
    got, want = torch.as_tensor(got, dtype=torch.float32), torch.as_tensor(want, dtype=torch.float32)
    assert got.shape == want.shape, what
    tol = 16 * F32 * scale
    assert torch.allclose(got, want, rtol=0, atol=tol), f"{what}: max err {(got - want).abs().max():.3g} > {tol:.3g}"


def test_per_tensor_gradient_quantizer_matches_scalar_preconditioner(monkeypatch):
    case = CASES["ptq_grad_4bit"]
    x = t(case["x"])
    zero, scale = Q.per_tensor_range(x, 4, align_zero=True)
    assert float(zero) == pytest.approx(case["zero_point"], rel=1e-6)
    assert float(scale) == pytest.approx(case["scale"], rel=1e-6)
    feed(monkeypatch, noises(case["events"]))
    assert_close(K.quantize_gradient(x, "ptq", 4, force_reference=True), case["out"], float(x.abs().max()))


def test_weight_and_activation_quantizers_match(monkeypatch):
    w = CASES["weight_8bit"]
    zero, scale = Q.per_tensor_range(t(w["x"]), 8, align_zero=True)
    assert float(zero) == pytest.approx(w["zero_point"], rel=1e-6)
    assert float(scale) == pytest.approx(w["scale"], rel=1e-6)
    assert_close(K.quantize_tensor(t(w["x"]), 8, stochastic=False, align_zero=True), w["out"], 4.0)
    a = CASES["act_8bit"]
    assert_close(K.quantize_tensor(t(a["x"]), 8, stochastic=False, align_zero=False), a["out"], 4.0)


def test_per_sample_and_per_column_quantizers_match(monkeypatch):
    psq = CASES["psq_grad_4bit"]
    feed(monkeypatch, noises(psq["events"]))
    assert_close(K.quantize_gradient(t(psq["x"]), "psq", 4, force_reference=True), psq["out"], 3.0)
    col = CASES["per_column_grad_8bit"]
    feed(monkeypatch, noises(col["events"]))
    assert_close(K.quantize_weight_gradient(t(col["x"]), True, 8, force_reference=True), col["out"], 3.0)


@pytest.mark.parametrize("name", ["bhq_transform_g", "bhq_transform_g16"])
def test_bhq_transform_matches_the_reference_construction(name):
    """Our vectorised plan (blocks, Householder vectors, scales) is the reference's T = H diag(s)."""
    case = CASES[name]
    plan = Q.bhq_plan(t(case["ranges"]))
    T, T_inv = t(case["T"]), t(case["T_inv"])
    scale = float(T.abs().max())
    assert_close(plan.dense(), T, scale, "T")
    assert_close(plan.dense_reflection() / plan.s[:, None], T_inv, float(T_inv.abs().max()), "T^-1")
    assert torch.allclose(T_inv @ T, torch.eye(len(T)), atol=1e-4)  # the reference's T^-1 is the inverse
    x = torch.randn(len(T), 7, generator=torch.Generator().manual_seed(0))
    assert_close(Q.householder_apply(x, plan), T @ x, scale * float(x.abs().max()) * len(T), "T x as reflections")
    assert_close(Q.householder_apply(x, plan, inverse=True), T_inv @ x,
                 float(T_inv.abs().max()) * float(x.abs().max()) * len(T), "T^-1 x as reflections")


@pytest.mark.parametrize(("name", "bits"), [("bhq_grad_4bit", 4), ("bhq_grad16_5bit", 5)])
def test_bhq_quantizer_matches(monkeypatch, name, bits):
    case = CASES[name]
    x = t(case["x"])
    feed(monkeypatch, noises(case["events"]))
    assert_close(K.quantize_gradient(x, "bhq", bits, force_reference=True), case["out"], 64 * float(x.abs().max()))


LAYER_CASES = [(c["config"], c["layer"]) for c in GOLDEN["layers"]]


@pytest.mark.parametrize(("config", "kind"), LAYER_CASES, ids=[f"{c}-{k}" for c, k in LAYER_CASES])
def test_quantized_layers_match_the_reference(monkeypatch, config, kind):
    """Forward (8-bit input and weight, 16-bit linear bias), STE, and gradient bifurcation: the
    input gradient from the bbits quantizer, the weight and bias gradients from the bwbits one."""
    case = next(c for c in GOLDEN["layers"] if c["config"] == config and c["layer"] == kind)
    inp = GOLDEN["inputs"][kind]
    layer = nn.Linear(5, 3) if kind == "linear" else nn.Conv2d(2, 3, 3, padding=inp["padding"])
    with torch.no_grad():
        layer.weight.copy_(t(inp["w"]))
        layer.bias.copy_(t(inp["b"]))
    model = nn.Sequential(layer)
    spec = GradSpec(None if config == "qat" else config, GOLDEN["inputs"]["bbits"], GOLDEN["inputs"]["bwbits"])
    quantize_model(model, ForwardSpec(), spec)
    # our backward quantizes the input-gradient path first, then the weight-gradient path
    queue = feed(monkeypatch, noises(case["events"], bins=15) + noises(case["events"], bins=255)[-1:]
                 if config != "qat" else [])
    x = t(inp["x"]).requires_grad_(True)
    out = model(x)
    (out * t(inp["r"])).sum().backward()
    assert not queue, "our code drew less rounding noise than the reference"
    assert_close(out, case["out"], float(t(case["out"]).abs().max()), "output")
    assert_close(x.grad, case["grad_x"], 8 * float(t(case["grad_x"]).abs().max()), "input gradient")
    assert_close(layer.weight.grad, case["grad_w"], 64 * float(t(case["grad_w"]).abs().max()), "weight gradient")
    assert_close(layer.bias.grad, case["grad_b"], 64 * float(t(case["grad_b"]).abs().max()), "bias gradient")
