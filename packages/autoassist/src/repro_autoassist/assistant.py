"""The Assistant: a linear model of "is this instance still worth back-propagating?".

p(keep | x, y) = σ(wᵀ vec(x) + u_y)  (reference code: w ~ 0.001·N(0, 1), u ~ 0.001·N(0, 1))
P(accept)      = b + (1 − b)·p
Target         t_i = 1[ℓ_i > loss_mean], loss_mean = S / n̄ with EMAs (factor α) of the batch
                 size n̄ and of the batch loss sum S, updated with each batch the Boss reports.
Update         logistic-regression SGD on a reported batch of n instances, with the step size
                 η = lr / n (the reference divides its learning rate by the batch size):
                 g_i = p_i − t_i (p from the parameters before the update);
                 for i = 1..n in order: u_{y_i} −= η (g_i + λ u_{y_i})   (sequential: a class seen
                 k times is shrunk k times), then w −= η (Σ_i g_i x_i + λ w).
                 Equivalently w takes the *mean* gradient with step lr and an L2 term λ/n.
                 (Reference: ``AssistantModelBinary.train_step`` in
                 ``image_classification/assistant.py`` of zhangjiong724/autoassist-exp.)

Everything here is a pure function of tensors (no threads, no RNG besides an explicit generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def features(x: torch.Tensor) -> torch.Tensor:
    """vec(x) per instance, float32."""
    return x.reshape(len(x), -1).float()


def keep_score(w: torch.Tensor, u: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p = σ(wᵀ vec(x) + u_y) for every instance of the batch."""
    return torch.sigmoid(features(x) @ w + u[y])


def acceptance_prob(p: torch.Tensor, base_prob: float) -> torch.Tensor:
    """b + (1 − b)·p."""
    return base_prob + (1.0 - base_prob) * p


def ema_update(n_bar: float, s_bar: float, losses: torch.Tensor, alpha: float) -> tuple[float, float]:
    """n̄ ← α n̄ + (1 − α) B, S ← α S + (1 − α) Σℓ; returns (n̄, S). loss_mean = S / n̄."""
    return alpha * n_bar + (1 - alpha) * len(losses), alpha * s_bar + (1 - alpha) * float(losses.sum())


def assistant_sgd(w: torch.Tensor, u: torch.Tensor, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor,
                  lr: float, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of the logistic regression on (x, y) -> targets; returns new (w, u).

    The step size is ``lr / n`` for a batch of n instances (the reference's rule), applied to the
    *sum* of the per-instance gradients and to the L2 term. The per-class biases are updated one
    instance after the other as in the reference loop; closed form of that loop, with η = lr / n
    and r = 1 − ηλ: for class c seen k_c times, u_c ← r^{k_c} u_c − η Σ_{i: y_i = c} r^{m_i} g_i,
    where m_i is the number of *later* instances of the batch with the same class.
    """
    n = len(y)
    if n == 0:
        return w, u
    f = features(x)
    g = torch.sigmoid(f @ w + u[y]) - targets.to(f.dtype)
    eta = lr / n
    # u in float64: r = 1 − ηλ is within a float32 ulp of 1 at the reference's settings (1 − 8e-8)
    r = torch.tensor(1.0 - eta * l2, dtype=torch.float64, device=u.device)
    onehot = torch.nn.functional.one_hot(y, len(u)).to(torch.float64)  # n x C
    later = onehot.flip(0).cumsum(0).flip(0).gather(1, y.view(-1, 1)).squeeze(1) - 1  # m_i
    u_new = torch.pow(r, onehot.sum(0)) * u.double()  # r^{k_c} u_c
    u_new = u_new.index_add(0, y, -eta * torch.pow(r, later) * g.double())
    w = w - eta * (f.t() @ g + l2 * w)
    return w, u_new.to(u.dtype)


@dataclass
class Assistant:
    """The Assistant's parameters and loss statistics (the unit that is trained and checkpointed)."""

    w: torch.Tensor
    u: torch.Tensor
    n_bar: float = 0.0
    s_bar: float = 0.0
    lr: float = 0.01
    l2: float = 1e-3
    alpha: float = 0.75
    updates: int = 0

    @classmethod
    def create(cls, dim: int, num_classes: int, generator: torch.Generator, device: torch.device | str = "cpu",
               **kwargs: Any) -> "Assistant":
        """w ~ 0.001·N(0, 1), then u ~ 0.001·N(0, 1), both from *generator* (the reference's init)."""
        w = (0.001 * torch.randn(dim, generator=generator)).to(device)
        u = (0.001 * torch.randn(num_classes, generator=generator)).to(device)
        return cls(w=w, u=u, **kwargs)

    @property
    def loss_mean(self) -> float:
        return self.s_bar / self.n_bar if self.n_bar > 0 else 0.0

    def score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return keep_score(self.w, self.u, x, y)

    def learn(self, x: torch.Tensor, y: torch.Tensor, losses: torch.Tensor) -> None:
        """Update the loss EMA with the Boss's reported losses, then one SGD step on t = 1[ℓ > mean]."""
        if len(losses) == 0:
            return
        self.n_bar, self.s_bar = ema_update(self.n_bar, self.s_bar, losses, self.alpha)
        targets = (losses > self.loss_mean).float()
        self.w, self.u = assistant_sgd(self.w, self.u, x, y, targets, self.lr, self.l2)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().cpu().clone(), "u": self.u.detach().cpu().clone(), "n_bar": self.n_bar,
                "s_bar": self.s_bar, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.w.device
        self.w, self.u = state["w"].to(device), state["u"].to(device)
        self.n_bar, self.s_bar, self.updates = float(state["n_bar"]), float(state["s_bar"]), int(state["updates"])
