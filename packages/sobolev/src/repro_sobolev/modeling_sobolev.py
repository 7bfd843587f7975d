"""The network of the regression experiment: independent ReLU MLPs, one per problem, evaluated
together, each predicting a value *and* its input gradient.

``StackedMLP`` holds P MLPs d -> h_1 -> ... -> 1 (ReLU, or tanh) as batched weight tensors (P, n_in, n_out), so
the 14 problems of the suite (7 functions x 2 training-set sizes) train in one process with
batched matrix products; problem p's parameters touch only problem p's outputs, and the loss is a
sum over problems, so every problem trains exactly as it would alone (Adam is per-parameter).
Each layer is initialised as ``torch.nn.Linear`` initialises itself (U(±1/sqrt(fan_in)) for
weights and biases).

``SobolevNet`` maps a batch of rows x (N, F, d) — one point per test function per row — to
(N, P, 1 + d): for each problem p, which reads function column ``columns[p]``, the value m_p(x)
and ∇_x m_p(x). Inputs are in the function's domain coordinates; a fixed (untrained) affine map
sends each problem's domain onto [-1, 1]^d first, so derivatives are w.r.t. the domain
coordinates, as the targets are. The derivatives come from

* ``derivatives="autograd"`` (default, the paper's way): reverse-mode autograd of the value,
  with ``create_graph=True`` while training a method that fits derivatives (double
  backpropagation), or
* ``derivatives="forward"``: forward-mode tangents propagated through every layer with the
  fused forward + JVP layer (``kernels.jvp_layer``: Triton on CUDA, the reference on CPU), an
  ordinary backward pass then trains on them.

Both give the same numbers (tests check values, gradients and the parameter gradients of the
Sobolev loss). While training a method that uses values only (``fit_derivatives = False``, set
by the method's hook) the derivative columns are not computed and are zeros; evaluation always
computes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from repro.errors import ReproError

from repro_sobolev.kernels import jvp_layer
from repro_sobolev.sobolev import value_and_input_gradient

DERIVATIVES = ("autograd", "forward")


ACTIVATIONS = ("relu", "tanh")


class StackedMLP(nn.Module):
    """P independent MLPs ``sizes[0] -> ... -> sizes[-1]`` (*activation* between layers), inputs (P, N, sizes[0])."""

    def __init__(self, problems: int, sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if problems < 1 or len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ReproError(f"StackedMLP: need problems >= 1 and >= 2 positive layer sizes, got {problems}, "
                             f"{list(sizes)}")
        if activation not in ACTIVATIONS:
            raise ReproError(f"StackedMLP: unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
        self.problems, self.sizes, self.activation = int(problems), [int(s) for s in sizes], activation
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            bound = 1.0 / math.sqrt(n_in)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(problems, n_in, n_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(problems, 1, n_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x) if self.activation == "relu" else torch.tanh(x)
        return x

    def forward_with_tangents(self, x: torch.Tensor, t: torch.Tensor,
                              force_reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (P, N, out) and tangents (P, N, D, out) for input tangents t (P, N, D, in)."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x, t = jvp_layer(x, t, w, b, self.activation if i < last else "none", force_reference=force_reference)
        return x, t


class SobolevNet(nn.Module):
    """Values and input gradients of one MLP per problem (see the module docstring)."""

    def __init__(self, columns: Sequence[int], domains: Sequence[Sequence[Sequence[float]]],
                 hidden: Sequence[int] = (256, 256), activation: str = "relu", derivatives: str = "autograd") -> None:
        super().__init__()
        if derivatives not in DERIVATIVES:
            raise ReproError(f"SobolevNet: unknown derivatives {derivatives!r}; "
                             f"valid choices: {', '.join(DERIVATIVES)}")
        if not columns or min(columns) < 0:
            raise ReproError(f"SobolevNet: columns must be a non-empty list of input columns, got {list(columns)}")
        bounds = torch.tensor([[list(map(float, b)) for b in dom] for dom in domains], dtype=torch.float32)
        if bounds.dim() != 3 or bounds.shape[2] != 2 or bool((bounds[..., 1] <= bounds[..., 0]).any()):
            raise ReproError(f"SobolevNet: domains must be [[lo, hi] per input] per function with lo < hi, "
                             f"got {domains}")
        if max(columns) >= len(bounds):
            raise ReproError(f"SobolevNet: column {max(columns)} has no domain ({len(bounds)} given)")
        self.register_buffer("columns", torch.tensor([int(c) for c in columns], dtype=torch.long), persistent=False)
        per_problem = bounds[self.columns]  # (P, d, 2)
        # The fixed input map onto [-1, 1]^d, u = (x - centre) / half_width (not trained).
        self.register_buffer("centre", per_problem.mean(dim=2).unsqueeze(1), persistent=False)  # (P, 1, d)
        self.register_buffer("half_width", ((per_problem[..., 1] - per_problem[..., 0]) / 2).unsqueeze(1),
                             persistent=False)
        self.input_dim = int(bounds.shape[1])
        self.derivatives = derivatives
        self.mlp = StackedMLP(len(columns), [self.input_dim, *[int(h) for h in hidden], 1], activation)
        self.fit_derivatives = True  # set by the method's hook: False -> no derivatives while training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_dim or x.shape[1] <= int(self.columns.max()):
            raise ReproError(f"SobolevNet: expected inputs (N, F > {int(self.columns.max())}, {self.input_dim}), "
                             f"got {tuple(x.shape)}")
        xp = x.index_select(1, self.columns).transpose(0, 1)  # (P, N, d), domain coordinates
        if self.training and not self.fit_derivatives:
            value = self.mlp(self.normalise(xp))
            grad = torch.zeros_like(xp)
        elif self.derivatives == "autograd":
            value, grad = value_and_input_gradient(lambda z: self.mlp(self.normalise(z)), xp,
                                                   create_graph=self.training and torch.is_grad_enabled())
        else:
            p, n, d = xp.shape
            # Tangent of u = (x - c) / s along the unit vector e_i of x: e_i / s_i.
            tangents = torch.diag_embed(1.0 / self.half_width).expand(p, n, d, d)
            value, out_tangents = self.mlp.forward_with_tangents(self.normalise(xp), tangents)
            grad = out_tangents[..., 0]
        return torch.cat([value, grad], dim=-1).transpose(0, 1)  # (N, P, 1 + d)

    def normalise(self, xp: torch.Tensor) -> torch.Tensor:
        return (xp - self.centre) / self.half_width


def sobolev_net(columns: Sequence[int], domains: Sequence[Sequence[Sequence[float]]],
                hidden: Sequence[int] = (256, 256), activation: str = "relu",
                derivatives: str = "autograd") -> SobolevNet:
    """Model-registry builder (``repro.models``): the suite's network."""
    return SobolevNet(columns, domains, hidden, activation, derivatives)
