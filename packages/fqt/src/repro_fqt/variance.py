"""The paper's check: the FQT gradient is an unbiased estimator of the QAT gradient, and its
variance depends on the gradient quantizer (per tensor > per sample > block Householder).

``gradient_variance`` takes a quantized model (``wrap.quantize_model``) and one mini-batch, runs
the forward once (the forward of QAT and FQT is the same), and back-propagates it many times:
once with the exact backward (the QAT gradient g) and ``draws`` times with each gradient quantizer
at each bitwidth (FQT gradients g_r, fresh rounding noise each time). Per quantized layer (its
weight and bias) and in total it reports

* ``var`` = mean_r ||g_r - g||^2, relative to ||g||^2: the quantization variance
  E||g_FQT - g_QAT||^2 = tr Var[g_FQT | batch] (what the paper bounds; the reference's
  ``get_var`` measures the same quantity as "quant var" across batches);
* the unbiasedness statistic ``t2``: per gradient coordinate j, the t statistic of the mean error,
  t_j = mean_r (g_rj - g_j) / (s_j / sqrt(R)) (s_j: the sample standard deviation over the draws);
  t2 = mean_j t_j^2 * (R - 3) / (R - 1) over the coordinates that vary. For an unbiased estimator
  t_j follows Student's t with R - 1 degrees of freedom, whose variance is (R - 1) / (R - 3), so
  t2 is close to 1 (an average over thousands of coordinates: tight); a bias b_j adds about
  R b_j^2 / s_j^2 (e.g. rounding noise shifted off zero: t2 >> 1). This is "the mean over draws converges to the
  QAT gradient" at exactly the rate the variance predicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from repro_fqt.autograd import GradSpec
from repro_fqt.wrap import quantized_layers


# The unbiasedness statistic leaves out coordinates whose quantization standard deviation is below
# this fraction of their tensor's RMS gradient: there the float32 round-off of dequantization (a
# deterministic offset of ~1e-7 relative, e.g. a value at its row's maximum is rounded exactly)
# is not negligible against the rounding noise, and t_j would measure round-off, not bias.
ROUND_OFF_FLOOR = 1e-4


@dataclass
class Stats:
    """Accumulated over batches, per layer: sum_r ||g_r - g||^2 and ||g||^2; over all coordinates
    that vary: the sum of t_j^2 and their number."""

    draws: int
    sq_err: dict[str, float] = field(default_factory=dict)
    ref_sq: dict[str, float] = field(default_factory=dict)
    t2_sum: float = 0.0
    t2_count: int = 0

    def add(self, layer: str, sq_err: float, ref_sq: float) -> None:
        self.sq_err[layer] = self.sq_err.get(layer, 0.0) + sq_err
        self.ref_sq[layer] = self.ref_sq.get(layer, 0.0) + ref_sq

    def add_coordinates(self, sum_err: torch.Tensor, sum_sq_err: torch.Tensor, floor: torch.Tensor) -> None:
        """Fold in coordinates from sum_r d_r and sum_r d_r^2 (d_r = g_r - g) over the R draws;
        only coordinates whose standard deviation exceeds *floor* count (see ``ROUND_OFF_FLOOR``)."""
        r = self.draws
        mean = sum_err / r
        var = (sum_sq_err - r * mean * mean) / (r - 1)
        ok = var > floor * floor
        t2 = mean[ok] ** 2 / (var[ok] / r)
        self.t2_sum += float(t2.sum())
        self.t2_count += int(ok.sum())

    def relative_variance(self, layer: str | None = None) -> float:
        keys = [layer] if layer else list(self.sq_err)
        err = sum(self.sq_err[k] for k in keys) / self.draws
        ref = sum(self.ref_sq[k] for k in keys)
        return err / ref if ref > 0 else math.nan

    def t2(self) -> float:
        """mean_j t_j^2 * (R - 3) / (R - 1): about 1 for an unbiased estimator (needs R >= 4)."""
        r = self.draws
        if self.t2_count == 0 or r < 4:
            return math.nan
        return self.t2_sum / self.t2_count * (r - 3) / (r - 1)


def _layer_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    out = {}
    for name, layer in quantized_layers(model).items():
        params = [p for p in (layer.weight, layer.bias) if p is not None and p.requires_grad]
        if params:
            out[name.replace(".", "_")] = params
    return out


def gradient_variance(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], spec: GradSpec,
                      schemes: Sequence[str] = ("ptq", "psq", "bhq"), bits: Sequence[int] = (8, 6, 5, 4),
                      draws: int = 32, generator: torch.Generator | None = None) -> dict[tuple[str, int], Stats]:
    """Per (scheme, bits): the ``Stats`` of ``draws`` FQT gradients against the QAT gradient on *batches*.

    *spec* is the model's shared ``GradSpec`` (restored afterwards); batch-norm running statistics
    are restored too (the probe's forward passes run in training mode, as training does).
    """
    if draws < 2:
        raise ValueError(f"gradient_variance needs draws >= 2 (>= 4 for the unbiasedness statistic), got {draws}")
    layers = _layer_params(model)
    if not layers:
        raise ValueError("gradient_variance: the model has no quantized layer (use wrap.quantize_model first)")
    flat = [p for ps in layers.values() for p in ps]
    saved_spec = (spec.scheme, spec.bbits, spec.generator)
    saved_buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    was_training = model.training
    stats = {(s, b): Stats(draws) for s in schemes for b in bits}
    model.train()
    try:
        for x, y in batches:
            spec.scheme = None
            loss = loss_fn(model(x), y)
            ref = [r.detach() for r in torch.autograd.grad(loss, flat, retain_graph=True)]
            for (scheme, b), st in stats.items():
                spec.scheme, spec.bbits, spec.generator = scheme, b, generator
                sums = [torch.zeros_like(r, dtype=torch.float64) for r in ref]
                sqs = [torch.zeros_like(r, dtype=torch.float64) for r in ref]
                for _ in range(draws):
                    got = torch.autograd.grad(loss, flat, retain_graph=True)
                    for t, r, acc, acc2 in zip(got, ref, sums, sqs):
                        d = (t.detach() - r).double()
                        acc += d
                        acc2 += d * d
                floors = [torch.full_like(r, ROUND_OFF_FLOOR, dtype=torch.float64) * r.double().pow(2).mean().sqrt()
                          for r in ref]
                i = 0
                for k, ps in layers.items():
                    st.add(k, float(sum(q.sum() for q in sqs[i:i + len(ps)])),
                           float(sum((r * r).sum() for r in ref[i:i + len(ps)])))
                    i += len(ps)
                st.add_coordinates(torch.cat([a.flatten() for a in sums]), torch.cat([q.flatten() for q in sqs]),
                                   torch.cat([f.flatten() for f in floors]))
            del loss
    finally:
        spec.scheme, spec.bbits, spec.generator = saved_spec
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(saved_buffers[k])
        model.train(was_training)
    return stats


def summary_values(stats: dict[tuple[str, int], Stats]) -> dict[str, float]:
    """Flat summary numbers for ``ctx.extra`` (what the claims read):

    ``grad_var_<scheme><b>`` (relative variance, all layers), ``grad_var_<scheme><b>_<layer>``,
    ``grad_bias_t2_<scheme><b>`` (the unbiasedness statistic, about 1), and the ratios ``grad_var_ratio_psq_ptq_b<b>``,
    ``grad_var_ratio_bhq_psq_b<b>``, ``grad_var_ratio_bhq_ptq_b<b>`` where both were measured.
    """
    out: dict[str, float] = {}
    for (scheme, b), st in stats.items():
        out[f"grad_var_{scheme}{b}"] = st.relative_variance()
        out[f"grad_bias_t2_{scheme}{b}"] = st.t2()
        for layer in st.sq_err:
            out[f"grad_var_{scheme}{b}_{layer}"] = st.relative_variance(layer)
    for b in sorted({b for _, b in stats}):
        for num, den in (("psq", "ptq"), ("bhq", "psq"), ("bhq", "ptq")):
            if (num, b) in stats and (den, b) in stats:
                d = stats[(den, b)].relative_variance()
                out[f"grad_var_ratio_{num}_{den}_b{b}"] = stats[(num, b)].relative_variance() / d if d > 0 else math.nan
    return out
