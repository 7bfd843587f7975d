"""Regenerate ``reference_golden.json`` by running the official code (cjf00000/StatQuant) on fixed inputs.

Usage (the reference is only *run* here, never imported by the package or the tests)::

    git clone https://github.com/cjf00000/StatQuant /tmp/statquant      # commit 8cde082
    uv run --frozen python packages/fqt/tests/golden/make_reference_golden.py /tmp/statquant

What it runs, on the CPU:

* ``quantizers/quantizers.cpp`` (the BHQ transform ``get_transform``) is compiled as it is with
  ``torch.utils.cpp_extension.load`` (needs a C++ compiler; ~30 s) and installed as the module
  ``quantizers`` the reference imports;
* ``pytorch_minimax`` (a CUDA-only row min/max extension) is replaced by a shim with the same
  semantics, ``min(x) = x.min(1)[0]``, ``max(x) = x.max(1)[0]`` (its own test asserts exactly this);
* ``Tensor.cuda`` is made the identity (``BlockwiseHouseholderPreconditioner`` moves T to the GPU);
* ``image_classification/preconditioner.py`` and ``image_classification/quantize.py`` are imported
  unchanged (the package's ``__init__``, which imports the apex training loop, is skipped);
  ``preconditioner.init(16)`` builds the Householder tables as ``main.py`` does.

Every stochastic-rounding draw of the reference (``output.new(shape).uniform_(-0.5, 0.5)`` in
``UniformQuantize.forward``) is recorded with the number of levels of the quantizer that drew it, so
the tests can feed the same noise to our code. Cases:

* ``preconditioners``: each preconditioner on a fixed matrix (rows of very different magnitude):
  per-tensor gradient/weight (``ScalarPreconditioner``: zero point, scale, output), activation
  (``ScalarPreconditionerAct``), per-row and per-column (``DiagonalPreconditioner`` left=True/False)
  and BHQ (``BlockwiseHouseholderPreconditioner``: the dense T and T^{-1} and the output), with
  stochastic rounding where the reference uses it;
* ``layers``: ``QLinear`` (5 -> 3, bias) and ``QConv2d`` (2 -> 3 channels, 3x3, padding 1, bias) in the
  configurations of the README's commands — QAT (``--qg=False``), PTQ, PSQ, BHQ — with
  ``bbits = 4`` and ``bwbits = 8`` (so that the recorded noise says which path drew it: 15 levels
  for the activation-gradient path, 255 for the weight-gradient path): output, and the gradients of
  the input, weight and bias for the upstream gradient R (loss = sum(out * R)).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch

OUT = Path(__file__).with_name("reference_golden.json")


def lst(t: torch.Tensor) -> list:
    """Nested lists of 9 significant digits (enough to round-trip float32 exactly)."""
    def short(v):
        return [short(u) for u in v] if isinstance(v, list) else float(f"{v:.9g}")
    return short(t.detach().double().tolist())


def main(ref: Path) -> None:
    from torch.utils.cpp_extension import load

    quantizers = load("quantizers", [str(ref / "quantizers" / "quantizers.cpp")], verbose=False)
    sys.modules["quantizers"] = quantizers
    shim = types.ModuleType("pytorch_minimax")
    shim.min = lambda x: x.min(1)[0]
    shim.max = lambda x: x.max(1)[0]
    sys.modules["pytorch_minimax"] = shim
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(ref))
    pkg = types.ModuleType("image_classification")  # its __init__ imports the training loop (apex): skipped
    pkg.__path__ = [str(ref / "image_classification")]
    sys.modules["image_classification"] = pkg
    from image_classification import preconditioner as P
    from image_classification import quantize as RQ

    P.init(16)
    events: list[dict] = []
    uniform = torch.Tensor.uniform_

    def recording_uniform(self, a=0.0, b=1.0, *args, **kwargs):
        out = uniform(self, a, b, *args, **kwargs)
        events.append({"noise": lst(self)})
        return out

    torch.Tensor.uniform_ = recording_uniform
    init = P.Preconditioner.__init__

    def recording_init(self, x, num_bits, left=True):
        init(self, x, num_bits, left)
        events.append({"kind": type(self).__name__, "bins": self.num_bins, "left": left})

    P.Preconditioner.__init__ = recording_init

    gen = torch.Generator().manual_seed(2020)
    mag = torch.tensor([3.0, 0.01, 0.5, 0.02, 1.0, 0.003, 0.2, 0.05])[:, None]
    g = torch.randn(8, 6, generator=gen) * mag  # one gradient-like matrix, rows over three decades
    x_act = torch.rand(8, 6, generator=gen) * 4 - 1
    w = torch.randn(4, 7, generator=gen)
    g16 = torch.randn(16, 5, generator=gen) * (torch.rand(16, 1, generator=gen) ** 3 + 1e-3)

    cases = []

    def run(name: str, x: torch.Tensor, make, stochastic: bool, extra=None) -> None:
        events.clear()
        torch.manual_seed(len(cases))
        out = RQ.quantize(x.clone(), make, stochastic=stochastic)
        case = {"name": name, "x": lst(x), "out": lst(out), "events": list(events)}
        if extra:
            case.update(extra(x))
        cases.append(case)

    def scalar_info(bits):
        def f(x):
            p = P.ScalarPreconditioner(x.clone(), bits)
            return {"zero_point": float(p.zero_point), "scale": float(p.scale)}
        return f

    def bhq_info(bits):
        def f(x):
            x2 = x.reshape(x.shape[0], -1)
            mvec = x2.max(1)[0] - x2.min(1)[0] + 1e-8
            t, t_inv = quantizers.get_transform(mvec.cpu(), P.Qqs, P.Qmax)
            return {"ranges": lst(mvec), "T": lst(t), "T_inv": lst(t_inv)}
        return f

    run("ptq_grad_4bit", g, lambda x: P.ScalarPreconditioner(x, 4), True, scalar_info(4))
    run("weight_8bit", w, lambda x: P.ScalarPreconditioner(x, 8), False, scalar_info(8))
    run("act_8bit", x_act, lambda x: P.ScalarPreconditionerAct(x, 8), False)
    run("psq_grad_4bit", g, lambda x: P.DiagonalPreconditioner(x, 4), True)
    run("per_column_grad_8bit", g, lambda x: P.DiagonalPreconditioner(x, 8, left=False), True)
    run("bhq_grad_4bit", g, lambda x: P.BlockwiseHouseholderPreconditioner(x, 4), True, bhq_info(4))
    run("bhq_grad16_5bit", g16, lambda x: P.BlockwiseHouseholderPreconditioner(x, 5), True, bhq_info(5))
    for name, x in (("g", g), ("g16", g16)):
        x2 = x.reshape(x.shape[0], -1)
        mvec = x2.max(1)[0] - x2.min(1)[0] + 1e-8
        t, t_inv = quantizers.get_transform(mvec.cpu(), P.Qqs, P.Qmax)
        cases.append({"name": f"bhq_transform_{name}", "ranges": lst(mvec), "T": lst(t), "T_inv": lst(t_inv)})

    # layers under the README's configurations
    configs = {
        "qat": dict(quantize_gradient=False, backward_persample=False, hadamard=False),
        "ptq": dict(quantize_gradient=True, backward_persample=False, hadamard=False),
        "psq": dict(quantize_gradient=True, backward_persample=True, hadamard=False),
        "bhq": dict(quantize_gradient=True, backward_persample=True, hadamard=True),
    }
    lin_x = torch.randn(8, 5, generator=gen) * mag
    lin_w = torch.randn(3, 5, generator=gen) * 0.5
    lin_b = torch.tensor([0.1, -0.2, 0.05])
    lin_r = torch.randn(8, 3, generator=gen) * mag
    conv_x = torch.randn(6, 2, 5, 5, generator=gen)
    conv_w = torch.randn(3, 2, 3, 3, generator=gen) * 0.3
    conv_b = torch.tensor([0.2, -0.1, 0.0])
    conv_r = torch.randn(6, 3, 5, 5, generator=gen) * torch.tensor([1.0, 0.02, 0.3, 0.005, 2.0, 0.1])[:, None, None, None]
    layers = []
    for cfg_name, cfg in configs.items():
        RQ.config.quantize_activation = True
        RQ.config.quantize_weights = True
        RQ.config.backward_num_bits = 4
        RQ.config.bweight_num_bits = 8
        for k, v in cfg.items():
            setattr(RQ.config, k, v)
        for kind in ("linear", "conv"):
            torch.manual_seed(100 + len(layers))
            if kind == "linear":
                layer = RQ.QLinear(5, 3)
                x0, w0, b0, r = lin_x, lin_w, lin_b, lin_r
            else:
                layer = RQ.QConv2d(2, 3, 3, padding=1, bias=True)
                x0, w0, b0, r = conv_x, conv_w, conv_b, conv_r
            with torch.no_grad():
                layer.weight.copy_(w0)
                layer.bias.copy_(b0)
            x = x0.clone().requires_grad_(True)
            events.clear()
            out = layer(x)
            (out * r).sum().backward()
            layers.append({"config": cfg_name, "layer": kind, "out": lst(out), "grad_x": lst(x.grad),
                           "grad_w": lst(layer.weight.grad), "grad_b": lst(layer.bias.grad),
                           "events": list(events)})
    doc = {
        "reference": "cjf00000/StatQuant, commit 8cde082 (image_classification/preconditioner.py, "
                     "image_classification/quantize.py, quantizers/quantizers.cpp), run on CPU by "
                     "tests/golden/make_reference_golden.py",
        "inputs": {"linear": {"x": lst(lin_x), "w": lst(lin_w), "b": lst(lin_b), "r": lst(lin_r)},
                   "conv": {"x": lst(conv_x), "w": lst(conv_w), "b": lst(conv_b), "r": lst(conv_r),
                            "stride": 1, "padding": 1},
                   "bbits": 4, "bwbits": 8},
        "cases": cases,
        "layers": layers,
    }
    OUT.write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    main(Path(sys.argv[1]))
