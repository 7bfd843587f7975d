"""Multiply-accumulate (MAC) accounting: the keep ratio turned into "computation saved".

Counted: the MACs of the conv/linear products of a training step (forward, input gradient,
weight gradient) that each wrapped layer *actually performs* (a Bernoulli draw that keeps 37 of
64 channels counts 37), against the dense count of the same step. The input gradient of a layer
whose input needs no gradient (the first layer) is counted as neither performed nor dense, since
autograd never computes it. Bias additions, activations, norms, pooling and the optimizer are
not counted (they are O(size of the activations), not products).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def linear_macs(batch: int, n_in: int, n_out: int) -> int:
    """MACs of one (batch x n_in) @ (n_in x n_out) product."""
    return int(batch) * int(n_in) * int(n_out)


def conv2d_macs(batch: int, c_in: int, c_out: int, kernel: tuple[int, int], out_hw: tuple[int, int]) -> int:
    """MACs of a (groups=1) convolution producing batch x c_out x out_hw from c_in channels."""
    return int(batch) * int(c_in) * int(c_out) * kernel[0] * kernel[1] * out_hw[0] * out_hw[1]


@dataclass
class MacCounter:
    """Running totals of performed and dense MACs over training steps (saved in checkpoints)."""

    performed: int = 0
    dense: int = 0

    def add(self, performed: int, dense: int) -> None:
        self.performed += int(performed)
        self.dense += int(dense)

    @property
    def saved_fraction(self) -> float:
        """1 - performed / dense (0.0 before any step)."""
        return 1.0 - self.performed / self.dense if self.dense else 0.0

    def reset(self) -> None:
        self.performed = self.dense = 0

    def state_dict(self) -> dict[str, Any]:
        return {"performed": self.performed, "dense": self.dense}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.performed, self.dense = int(state["performed"]), int(state["dense"])


def expected_linear_saving(n_in: int, n_out: int, k: int, input_grad: bool = True) -> float:
    """Saved fraction of a forward-sampled linear layer keeping k of n_in input features (top-k):
    forward, weight gradient and (if computed) input gradient all shrink by k / n_in."""
    del n_out, input_grad  # every product of the layer shrinks by the same factor
    return 1.0 - k / n_in
