"""Regenerate ``reference_golden.json`` by running the official SR-STE code (NM-sparsity/NM-sparsity,
commit 3cebd6b, ``devkit/sparse_ops/sparse_ops.py``) on fixed inputs.

Usage (the reference is only *run* here, never imported by the package or the tests)::

    git clone https://github.com/NM-sparsity/NM-sparsity /tmp/nm-ref          # or that one file
    uv run --frozen python packages/nm_sparse/tests/golden/make_reference_golden.py /tmp/nm-ref

The file imports ``from torch._six import container_abcs`` (gone from torch 2.x): a stand-in
module (``collections.abc``) is put in ``sys.modules`` first; nothing else is changed. The script
loads ``sparse_ops.py`` by path (not the package ``__init__``, which imports SyncBN) and records,
in float64 on random inputs (no ties in |w|, so the reference's ``argsort`` and our tie rule agree):

* ``Sparse`` (linear weights, groups of M consecutive elements of the flattened (O, K) weight):
  the masked weight and the gradient it returns for an upstream gradient G (= G + decay (1 - mask) W);
* ``SparseLinear.forward`` (F.linear(x, Sparse(W)); note: the reference layer drops its bias):
  output, dL/dx and dL/dW for an upstream gradient;
* ``Sparse_NHWC`` / ``SparseConv.forward`` (conv weights grouped along the NHWC-flattened kernel,
  consecutive input channels of one tap): masked weight, output (with bias), dL/dx, dL/dW, dL/db.

Every case runs at the default decay 2e-4 and once more with the decay 0.02 (a visible SR-STE term),
at 2:4 and 2:8 (and 1:4 for the linear weight). The reference's ``backward`` returns three gradients
for four inputs when ``decay`` is passed to ``apply`` (torch 2.x rejects that), so the functions are
always applied as the reference layers do, ``apply(weight, N, M)``, and the 0.02 cases set the
default of ``forward``'s ``decay`` argument (``__defaults__``) instead — the code is not changed.
"""

from __future__ import annotations

import collections.abc
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import torch

OUT = Path(__file__).with_name("reference_golden.json")


def load_reference(root: Path):
    sys.modules.setdefault("torch._six", types.SimpleNamespace(container_abcs=collections.abc))
    path = root / "devkit" / "sparse_ops" / "sparse_ops.py"
    spec = importlib.util.spec_from_file_location("nm_reference_sparse_ops", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def with_decay(fn, decay: float):
    """Apply the reference autograd function *fn* as its layers do, with *decay* as forward's default."""
    fn.forward.__defaults__ = (decay,)
    return fn


def main() -> None:
    root = Path(sys.argv[1])
    ref = load_reference(root)
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "3cebd6be99052ef3e5e216299069d6ca066757d7"
    g = torch.Generator().manual_seed(2021)
    d = torch.float64
    lin = {"x": torch.randn(5, 16, generator=g, dtype=d), "w": torch.randn(8, 16, generator=g, dtype=d),
           "grad_out": torch.randn(5, 8, generator=g, dtype=d), "grad_w_upstream": torch.randn(8, 16, generator=g, dtype=d)}
    conv = {"x": torch.randn(2, 8, 5, 5, generator=g, dtype=d), "w": torch.randn(4, 8, 3, 3, generator=g, dtype=d),
            "bias": torch.randn(4, generator=g, dtype=d), "grad_out": torch.randn(2, 4, 5, 5, generator=g, dtype=d),
            "grad_w_upstream": torch.randn(4, 8, 3, 3, generator=g, dtype=d)}
    cases = []
    for n, m in ((2, 4), (2, 8), (1, 4)):
        for decay in (0.0002, 0.02):
            # Sparse: the weight function alone
            w = lin["w"].clone().requires_grad_(True)
            ws = with_decay(ref.Sparse, decay).apply(w, n, m)
            ws.backward(lin["grad_w_upstream"])
            # SparseLinear: the layer (bias-free in the reference)
            layer = ref.SparseLinear(16, 8, N=n, M=m).double()
            with torch.no_grad():
                layer.weight.copy_(lin["w"])
            x = lin["x"].clone().requires_grad_(True)
            y = layer(x)  # get_sparse_weights -> Sparse.apply(weight, N, M)
            y.backward(lin["grad_out"])
            cases.append({"layer": "linear", "n": n, "m": m, "decay": decay,
                          "masked_weight": ws.detach().tolist(), "grad_w_function": w.grad.tolist(),
                          "out": y.detach().tolist(), "grad_x": x.grad.tolist(), "grad_w": layer.weight.grad.tolist(),
                          "reference": "Sparse.forward/backward L9-32; SparseLinear.get_sparse_weights/forward L98-109"})
        if (n, m) == (1, 4):
            continue
        for decay in (0.0002, 0.02):
            w = conv["w"].clone().requires_grad_(True)
            ws = with_decay(ref.Sparse_NHWC, decay).apply(w, n, m)
            ws.backward(conv["grad_w_upstream"])
            layer = ref.SparseConv(8, 4, 3, padding=1, N=n, M=m).double()
            with torch.no_grad():
                layer.weight.copy_(conv["w"])
                layer.bias.copy_(conv["bias"])
            x = conv["x"].clone().requires_grad_(True)
            y = layer(x)  # get_sparse_weights -> Sparse_NHWC.apply(weight, N, M)
            y.backward(conv["grad_out"])
            cases.append({"layer": "conv", "n": n, "m": m, "decay": decay, "stride": 1, "padding": 1,
                          "masked_weight": ws.detach().tolist(), "grad_w_function": w.grad.tolist(),
                          "out": y.detach().tolist(), "grad_x": x.grad.tolist(), "grad_w": layer.weight.grad.tolist(),
                          "grad_b": layer.bias.grad.tolist(),
                          "reference": "Sparse_NHWC.forward/backward L34-60; SparseConv.forward L74-86"})
    doc = {"reference": "NM-sparsity/NM-sparsity devkit/sparse_ops/sparse_ops.py", "commit": commit,
           "torch": torch.__version__,
           "inputs": {"linear": {k: v.tolist() for k, v in lin.items()}, "conv": {k: v.tolist() for k, v in conv.items()}},
           "cases": cases}
    OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
