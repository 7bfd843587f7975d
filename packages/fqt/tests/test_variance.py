"""The gradient-variance probe: unbiasedness statistic ~ 1 for stochastic rounding, >> 1 for a
biased quantizer; variance grows as the bitwidth shrinks; the model is left as it was."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repro_fqt import quantizers as Q
from repro_fqt.autograd import ForwardSpec, GradSpec
from repro_fqt.models import lenet_mnist
from repro_fqt.variance import gradient_variance, summary_values
from repro_fqt.wrap import quantize_model


def probe_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Linear(24, 5))
    spec = GradSpec(None, 8, 8)
    quantize_model(model, ForwardSpec(), spec)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, 12, generator=g) * torch.rand(48, 1, generator=g) ** 2
    y = torch.randint(0, 5, (48,), generator=g)
    return model, spec, [(x, y)]


def test_probe_values_and_restores_the_model():
    model, spec, batches = probe_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    stats = gradient_variance(model, batches, F.cross_entropy, spec, ("ptq", "psq", "bhq"), (8, 4), draws=24,
                              generator=torch.Generator().manual_seed(0))
    values = summary_values(stats)
    assert spec.scheme is None and not model.training  # restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN buffers restored
    for q in ("ptq", "psq", "bhq"):
        assert values[f"grad_var_{q}4"] > values[f"grad_var_{q}8"] > 0  # fewer bits, more variance
        assert 0.5 < values[f"grad_bias_t2_{q}4"] < 1.5  # unbiased
        assert {f"grad_var_{q}4_0", f"grad_var_{q}4_3"} <= set(values)  # per layer
    assert values["grad_var_ratio_psq_ptq_b4"] == values["grad_var_psq4"] / values["grad_var_ptq4"]


def test_probe_detects_a_biased_gradient_quantizer(monkeypatch):
    model, spec, batches = probe_model()
    draw = Q.draw_noise
    monkeypatch.setattr(Q, "draw_noise", lambda shape, device, generator=None: draw(shape, device, generator) + 0.25)
    values = summary_values(gradient_variance(model, batches, F.cross_entropy, spec, ("psq",), (4,), draws=24))
    assert values["grad_bias_t2_psq4"] > 5


def test_probe_on_the_smoke_model_orders_the_quantizers():
    """On the smoke CNN (batch norm after each conv), at 4 bits: PTQ > PSQ > BHQ."""
    torch.manual_seed(0)
    model = lenet_mnist()
    spec = GradSpec(None, 8, 8)
    quantize_model(model, ForwardSpec(), spec)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(30):  # fit the batch a little: per-sample gradients become uneven, as in training
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    values = summary_values(gradient_variance(model, [(x, y)], F.cross_entropy, spec, ("ptq", "psq", "bhq"), (4,),
                                              draws=8, generator=torch.Generator().manual_seed(0)))
    assert values["grad_var_ptq4"] > values["grad_var_psq4"] > values["grad_var_bhq4"]
    assert all(math.isfinite(v) for v in values.values())
