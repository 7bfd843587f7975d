"""Golden values from the official SR-STE code (NM-sparsity/NM-sparsity @ 3cebd6b,
``devkit/sparse_ops/sparse_ops.py``), run on fixed float64 inputs by ``golden/make_reference_golden.py``.

What each value follows (lines of ``sparse_ops.py``):

* ``Sparse`` L9-32: mask = 1 except the M - N smallest |w| of every group of M consecutive elements
  of the flattened weight (argsort ascending); forward W ⊙ mask; backward G + decay (1 - mask) W.
  Compared with ``masks.layer_mask(w, n, m, "forward")`` and ``masks.srste_gradient``.
* ``Sparse_NHWC`` L34-60: the same on the weight permuted to (O, kh, kw, C_in) — our
  ``masks.weight_2d`` grouping. Compared likewise for conv weights.
* ``SparseLinear.forward`` L98-109 / ``SparseConv.forward`` L74-86: the layer output and the x, W
  (and conv bias) gradients. Compared with our ``srste`` path (``autograd.nm_linear`` /
  ``nm_conv2d`` with M_b = M_f), and with ``ste`` (decay 0) against the same values minus the
  decay term. Departure asserted, not hidden: the reference ``SparseLinear`` drops its bias
  (``F.linear(x, w)``); ours adds it, so the linear cases compare bias-free.

Tolerance: the reference multiplies ``decay`` by a float32 mask (``torch.ones`` default dtype), so
its decay term carries the float32 rounding of the decay (relative 3e-8 of the term): weight
gradients compare to within 1e-7 of the decay term, elementwise (masked weights exactly, outputs
and input gradients at 1e-12).

Regenerate (needs the reference; the tests never import it)::

    git clone https://github.com/NM-sparsity/NM-sparsity /tmp/nm-ref
    uv run --frozen python packages/nm_sparse/tests/golden/make_reference_golden.py /tmp/nm-ref
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from repro_nm_sparse.autograd import nm_conv2d, nm_linear
from repro_nm_sparse.masks import layer_mask, srste_gradient

GOLDEN = json.loads((Path(__file__).parent / "golden" / "reference_golden.json").read_text())
D = torch.float64


def t(v):
    return torch.tensor(v, dtype=D)


def close_grad_w(got, want, decay, w):
    """Equal up to the float32 rounding of the reference's decay term (elementwise)."""
    return bool(((got - want).abs() <= 1e-7 * decay * w.detach().abs() + 1e-12).all())


CASES = GOLDEN["cases"]
IDS = [f"{c['layer']}-{c['n']}to{c['m']}-decay{c['decay']}" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_masked_weight_and_weight_function_gradient(case):
    inp = GOLDEN["inputs"][case["layer"]]
    w, g = t(inp["w"]), t(inp["grad_w_upstream"])
    mask = layer_mask(w, case["n"], case["m"], "forward")
    assert torch.equal(w * mask, t(case["masked_weight"]))
    got = srste_gradient(g, w, mask, case["decay"])
    assert close_grad_w(got, t(case["grad_w_function"]), case["decay"], w)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layer_output_and_gradients(case):
    inp = GOLDEN["inputs"][case["layer"]]
    n, m, decay = case["n"], case["m"], case["decay"]
    x = t(inp["x"]).requires_grad_(True)
    w = t(inp["w"]).requires_grad_(True)
    mask = layer_mask(w, n, m, "forward")
    if case["layer"] == "linear":
        y = nm_linear(x, w, None, mask, mask, decay)
        b = None
    else:
        b = t(inp["bias"]).requires_grad_(True)
        y = nm_conv2d(x, w, b, mask, mask, decay, case["stride"], case["padding"])
    y.backward(t(inp["grad_out"]))
    assert torch.allclose(y, t(case["out"]), rtol=1e-12, atol=1e-12)
    assert torch.allclose(x.grad, t(case["grad_x"]), rtol=1e-12, atol=1e-12)
    assert close_grad_w(w.grad, t(case["grad_w"]), decay, w)
    if b is not None:
        assert torch.allclose(b.grad, t(case["grad_b"]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c["decay"] == 0.02], ids=lambda c: f"{c['layer']}-{c['n']}to{c['m']}")
def test_plain_ste_is_the_reference_minus_the_decay_term(case):
    """STE (decay 0) differs from the reference SR-STE gradient by exactly decay (1 - M) W, and the
    difference is visible at decay 0.02 (the test would fail if the term were dropped)."""
    inp = GOLDEN["inputs"][case["layer"]]
    x, w = t(inp["x"]), t(inp["w"]).requires_grad_(True)
    mask = layer_mask(w, case["n"], case["m"], "forward")
    if case["layer"] == "linear":
        y = nm_linear(x, w, None, mask, mask, 0.0)
    else:
        y = nm_conv2d(x, w, t(inp["bias"]), mask, mask, 0.0, case["stride"], case["padding"])
    y.backward(t(inp["grad_out"]))
    term = case["decay"] * (1 - mask.to(D)) * w.detach()
    assert term.abs().max() > 1e-3
    assert close_grad_w(w.grad + term, t(case["grad_w"]), case["decay"], w)
    assert not torch.allclose(w.grad, t(case["grad_w"]), rtol=1e-6, atol=1e-6)


def test_golden_file_names_the_reference_commit():
    assert GOLDEN["commit"].startswith("3cebd6b")
    assert {(c["layer"], c["n"], c["m"]) for c in CASES} >= {("linear", 2, 4), ("linear", 2, 8), ("conv", 2, 8)}
