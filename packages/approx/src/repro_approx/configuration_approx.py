"""Hyper-parameters of approximate training, validated (a bad value raises ``ReproError`` naming the key).

Defaults follow the reference code (adelmanm/approx) where it has one: minimal_k 1 (ImageNet
scripts), eps 0.1 (uniform mix), the first layer exact. ``mode`` picks where products are sampled:
"forward" (sample in forward, backprop only through the sampled pairs: the variant the reference
README says performed best), "backward" (exact forward; the input gradient samples output
channels, the weight gradient samples batch rows) or "both".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from repro.errors import ReproError, unknown

from repro_approx.sampling import STRATEGIES

MODES = ("forward", "backward", "both")


@dataclass(frozen=True)
class ApproxConfig:
    """How a layer's products are approximated.

    Attributes:
        ratio: keep ratio in (0, 1]; 1.0 = exact (bit-identical to the plain layer).
        minimal_k: never keep fewer than this many column-row pairs (must be <= each sampled dimension).
        strategy: "topk" | "crs" | "bernoulli" (see ``repro_approx.sampling``).
        mode: "forward" | "backward" | "both".
        eps: weight of the uniform distribution mixed into the sampling probabilities (crs, bernoulli).
        skip_first: leave the model's first conv/linear layer exact (the paper's rule for the
            3-channel input conv).
        layers: names of the modules to approximate (``named_modules`` keys); empty = every
            Linear/Conv2d (minus the first when ``skip_first``).
    """

    ratio: float = 1.0
    minimal_k: int = 1
    strategy: str = "topk"
    mode: str = "forward"
    eps: float = 0.1
    skip_first: bool = True
    layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or not 0 < r <= 1:
            raise ReproError(f"approx hyper-parameter 'ratio' must be in (0, 1], got {r!r}")
        if isinstance(self.minimal_k, bool) or not isinstance(self.minimal_k, int) or self.minimal_k < 1:
            raise ReproError(f"approx hyper-parameter 'minimal_k' must be an integer >= 1, got {self.minimal_k!r}")
        if self.strategy not in STRATEGIES:
            raise unknown("approx hyper-parameter 'strategy'", self.strategy, STRATEGIES)
        if self.mode not in MODES:
            raise unknown("approx hyper-parameter 'mode'", self.mode, MODES)
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 <= self.eps <= 1:
            raise ReproError(f"approx hyper-parameter 'eps' must be in [0, 1], got {self.eps!r}")
        if not isinstance(self.skip_first, bool):
            raise ReproError(f"approx hyper-parameter 'skip_first' must be true or false, got {self.skip_first!r}")

    @property
    def exact(self) -> bool:
        return self.ratio >= 1

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "ApproxConfig":
        kw = {f.name: hparams[f.name] for f in fields(cls) if f.name in hparams}
        if "layers" in kw:
            if isinstance(kw["layers"], str) or not all(isinstance(x, str) for x in kw["layers"]):
                raise ReproError(f"approx hyper-parameter 'layers' must be a list of module names, got {kw['layers']!r}")
            kw["layers"] = tuple(kw["layers"])
        return cls(**kw)


APPROX_KEYS = {f.name for f in fields(ApproxConfig)}
