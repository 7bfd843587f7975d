"""Exact multiply-accumulate (MAC) accounting of the three GEMMs of every training step.

Per Linear / Conv2d layer and training step, with R = rows of the GEMM (batch x output positions),
O output and K reduction (in_features, or C_in kh kw) sizes:

* forward (FF)            Y  = X W̃ᵀ        dense R O K
* activation gradient (BP) dX = dY W_bp     dense R O K (only when the layer's input needs a
  gradient: autograd never computes it for the first layer, so it counts as neither performed
  nor dense)
* weight gradient (WG)     dW = dYᵀ X       dense R O K (always dense: every method here keeps it so)

A pass counts as *performed at N/M* only when its weight operand is N:M sparse along that GEMM's
**reduction** dimension — what N:M sparse hardware (sparse tensor cores, the SAT accelerator) can
skip. STE / SR-STE's BP multiplies by W ⊙ M_f, whose zeros are N:M along K, not along O (the
reduction of dX = dY W): counted dense. BDWP's BP uses a mask along O: counted at N/M.

Bias additions, activations, norms, pooling, mask computation and the optimizer are not counted
(they are O(activations) or O(weights), not products); evaluation is not counted.

These are accounting figures — what an ideal N:M engine would skip — not measured time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PASSES = ("fwd", "bgrad", "wgrad")


@dataclass
class MacCounter:
    """Running totals (performed, dense) per pass over training steps; saved in checkpoints.

    ``sparse_*``: the same totals restricted to the layers that are N:M sparsified *and* compute
    all three GEMMs (their input needs a gradient) — the per-layer ideal of the method.
    ``flips`` / ``flip_total``: forward-mask entries that changed between consecutive steps,
    out of those compared (SR-STE's mask "flip rate").
    """

    fwd_performed: int = 0
    fwd_dense: int = 0
    bgrad_performed: int = 0
    bgrad_dense: int = 0
    wgrad_performed: int = 0
    wgrad_dense: int = 0
    sparse_performed: int = 0
    sparse_dense: int = 0
    flips: int = 0
    flip_total: int = 0

    def add_layer_step(self, macs: int, fwd_ratio: tuple[int, int], bgrad_ratio: tuple[int, int] | None,
                       sparse_layer: bool) -> None:
        """One layer's training step: *macs* = R O K; ``*_ratio`` = (N, M) the pass runs at ((1, 1):
        dense); ``bgrad_ratio`` None: the activation gradient is not computed."""
        f = macs * fwd_ratio[0] // fwd_ratio[1]
        self.fwd_performed += f
        self.fwd_dense += macs
        b = 0
        if bgrad_ratio is not None:
            b = macs * bgrad_ratio[0] // bgrad_ratio[1]
            self.bgrad_performed += b
            self.bgrad_dense += macs
        self.wgrad_performed += macs
        self.wgrad_dense += macs
        if sparse_layer and bgrad_ratio is not None:
            self.sparse_performed += f + b + macs
            self.sparse_dense += 3 * macs

    def add_flips(self, changed: int, total: int) -> None:
        self.flips += int(changed)
        self.flip_total += int(total)

    @property
    def performed(self) -> int:
        return self.fwd_performed + self.bgrad_performed + self.wgrad_performed

    @property
    def dense(self) -> int:
        return self.fwd_dense + self.bgrad_dense + self.wgrad_dense

    def ratio(self, which: str = "total") -> float:
        """performed / dense for one pass ("fwd", "bgrad", "wgrad"), "total" or "sparse_layers"
        (NaN before anything was counted)."""
        if which == "total":
            p, d = self.performed, self.dense
        elif which == "sparse_layers":
            p, d = self.sparse_performed, self.sparse_dense
        elif which in PASSES:
            p, d = getattr(self, f"{which}_performed"), getattr(self, f"{which}_dense")
        else:
            raise ValueError(f"unknown MAC ratio {which!r}")
        return p / d if d else float("nan")

    @property
    def flip_rate(self) -> float:
        return self.flips / self.flip_total if self.flip_total else 0.0

    def summary(self) -> dict[str, float]:
        """What the trial summary records (``ctx.extra``)."""
        out = {f"macs_ratio_{p}": self.ratio(p) for p in PASSES}
        out.update(macs_ratio=self.ratio("total"), macs_ratio_sparse_layers=self.ratio("sparse_layers"),
                   macs_speedup_ideal=(1.0 / self.ratio("total")) if self.performed else float("nan"),
                   macs_performed=float(self.performed), macs_dense=float(self.dense),
                   mask_flip_rate=self.flip_rate)
        return out

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in fields(self):
            setattr(self, f.name, int(state[f.name]))


def ideal_ratio(n: int, m: int, forward_sparse: bool, bgrad_sparse: bool) -> float:
    """Analytic (FF + BP + WG) / (3 dense) of one layer that computes all three GEMMs: BDWP
    (both sparse) at 2:8 gives (1/4 + 1/4 + 1) / 3 = 0.5; SR-STE (forward only) (1/4 + 1 + 1) / 3."""
    r = n / m
    return ((r if forward_sparse else 1.0) + (r if bgrad_sparse else 1.0) + 1.0) / 3.0
