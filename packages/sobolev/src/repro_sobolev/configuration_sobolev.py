"""Hyper-parameters of Sobolev training, typed and validated by ``repro.hparams``.

The symbols are those of Czarnecki et al. (NeurIPS 2017), eq. (1) with K = 1: the loss is
ℓ(m(x), f(x)) + ρ ℓ_1(∇_x m(x), ∇_x f(x)); the paper writes the terms with equal weights (ρ = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp

from repro_sobolev.modeling_sobolev import DERIVATIVES
from repro_sobolev.sobolev import LOSS_MODES


@dataclass(frozen=True)
class SobolevConfig:
    """What the training loss fits, and how the model's derivatives are computed."""

    loss: str = hp("sobolev", "what the loss fits: 'value' (regular training), 'sobolev' (values and full "
                              "input gradients) or 'stochastic' (values and the gradient's projection on one "
                              "random unit direction per sample and step) — a fixed switch of each method",
                   choices=LOSS_MODES)
    derivative_weight: float = hp(1.0, "ρ: weight of the derivative term (squared Euclidean norm of the gradient "
                                       "error, or squared projected error) relative to the squared value error",
                                  low=0)
    derivatives: str = hp("autograd", "how the network's input derivatives are computed: 'autograd' (reverse "
                                      "mode, double backpropagation with create_graph=True, the paper's way) or "
                                      "'forward' (forward-mode tangents through the fused JVP layer; same numbers)",
                          choices=DERIVATIVES)
