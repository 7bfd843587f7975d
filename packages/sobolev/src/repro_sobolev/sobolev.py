"""The math of Sobolev training as pure functions (no Trainer, no state).

Sobolev training (Czarnecki et al., NeurIPS 2017, eq. 1 with K = 1) fits a model m to a target f
*and* its input derivatives:

    L = Σ_i  ℓ(m(x_i), f(x_i)) + ρ ℓ_1(∇_x m(x_i), ∇_x f(x_i)),

ℓ the squared error and ℓ_1 the squared Euclidean norm of the gradient error. Stochastic Sobolev
training (the paper's Fig. 1b) fits the projection on a random direction v drawn uniformly from
the unit sphere instead, ℓ_1 = (⟨∇_x m(x_i) − ∇_x f(x_i), v_i⟩)², one v per sample and step; it
needs one directional derivative instead of the full Jacobian (E_v[(⟨g, v⟩)²] = ||g||² / d, so its
derivative term is on average 1/d of the full one; no rescaling, as in the paper's definition).

Layout shared by the model, the data and these functions: a prediction or target is a tensor
(N, P, 1 + d) — N samples, P independent problems (a network each), the value then the d input
derivatives. A target whose value is NaN is *not observed* for that problem (a problem with fewer
training points than the table has rows); every loss and error averages over the observed rows of
each problem, then sums (losses) or reports (errors) per problem.
"""

from __future__ import annotations

import torch

from repro.errors import ReproError

LOSS_MODES = ("value", "sobolev", "stochastic")


def observed(target: torch.Tensor) -> torch.Tensor:
    """(N, P) float mask: 1 where the problem's target is observed (its value is not NaN)."""
    return (~torch.isnan(target[..., 0])).to(target.dtype)


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-problem mean of err (N, P) over the observed rows (mask (N, P)); (P,)."""
    count = mask.sum(dim=0)
    return (err * mask).sum(dim=0) / count.clamp(min=1)


def _clean(target: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(target, nan=0.0)


def value_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per problem: mean over observed samples of (m(x) − f(x))²; (P,)."""
    mask = observed(target)
    return _masked_mean((pred[..., 0] - _clean(target)[..., 0]) ** 2, mask)


def gradient_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per problem: mean over observed samples of ||∇m(x) − ∇f(x)||² (squared Euclidean norm); (P,)."""
    mask = observed(target)
    diff = pred[..., 1:] - _clean(target)[..., 1:]
    return _masked_mean((diff ** 2).sum(dim=-1), mask)


def projected_gradient_errors(pred: torch.Tensor, target: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Per problem: mean over observed samples of ⟨∇m(x) − ∇f(x), v⟩², v = *directions* (N, P, d); (P,)."""
    mask = observed(target)
    diff = pred[..., 1:] - _clean(target)[..., 1:]
    return _masked_mean((diff * directions).sum(dim=-1) ** 2, mask)


def random_directions(shape: tuple[int, ...], d: int, generator: torch.Generator) -> torch.Tensor:
    """Directions uniform on the unit sphere S^{d-1}, shape (*shape, d), drawn on the CPU from *generator*
    (normalised Gaussians)."""
    v = torch.randn(*shape, d, generator=generator, dtype=torch.float64)
    return (v / v.norm(dim=-1, keepdim=True)).to(torch.float32)


def sobolev_loss(pred: torch.Tensor, target: torch.Tensor, mode: str, weight: float = 1.0,
                 directions: torch.Tensor | None = None) -> torch.Tensor:
    """The training objective, summed over the P problems (each problem's parameters then get
    exactly the gradient of its own loss, as if trained alone).

    *mode*: ``value`` (regular training: values only), ``sobolev`` (values + ρ · gradient errors)
    or ``stochastic`` (values + ρ · errors of the projections on *directions*). *weight* is ρ.
    """
    if mode not in LOSS_MODES:
        raise ReproError(f"sobolev_loss: unknown mode {mode!r}; valid choices: {', '.join(LOSS_MODES)}")
    loss = value_errors(pred, target)
    if mode == "sobolev":
        loss = loss + weight * gradient_errors(pred, target)
    elif mode == "stochastic":
        if directions is None:
            raise ReproError("sobolev_loss: mode 'stochastic' needs directions (N, P, d)")
        loss = loss + weight * projected_gradient_errors(pred, target, directions)
    return loss.sum()


def value_and_input_gradient(fn, u: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """m(u) and ∇_u m(u) by reverse-mode autograd: *fn* maps (..., d) -> (..., 1), every output
    depending only on its own input row. With ``create_graph=True`` the gradient is itself
    differentiable (double backpropagation: a loss on it trains the parameters); otherwise it is
    detached. Works under ``torch.no_grad()`` too (evaluation)."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        value = fn(u)
        (grad,) = torch.autograd.grad(value.sum(), u, create_graph=create_graph)
    if not create_graph:
        value, grad = value.detach() if not torch.is_grad_enabled() else value, grad.detach()
    return value, grad


def jacobian_matching_loss(student, teacher, x: torch.Tensor, generator: torch.Generator,
                           weight: float = 1.0) -> torch.Tensor:
    """Sobolev distillation of a teacher network into a student (the paper's §4.2, stochastic form):

        mean_i ||s(x_i) − t(x_i)||² + ρ mean_i ||v_iᵀ J_s(x_i) − v_iᵀ J_t(x_i)||²,

    s, t: (N, ...) -> (N, C) outputs (e.g. logits), J the input Jacobians (C x input size), v_i one
    random unit vector of the output space per sample (from *generator*). Each vector-Jacobian
    product is one backward pass; the student's is differentiable (``create_graph=True``), the
    teacher's is a fixed target. Not run at scale here (no teacher is trained; see claims.yaml).
    """
    x = x.detach().requires_grad_(True)
    out_s = student(x)
    with torch.enable_grad():
        x_t = x.detach().requires_grad_(True)
        out_t = teacher(x_t)
    v = random_directions((out_s.shape[0],), out_s.shape[1], generator).to(out_s)
    (vjp_s,) = torch.autograd.grad((out_s * v).sum(), x, create_graph=True)
    (vjp_t,) = torch.autograd.grad((out_t * v).sum(), x_t)
    values = ((out_s - out_t.detach()) ** 2).sum(dim=1).mean()
    derivs = ((vjp_s - vjp_t) ** 2).flatten(1).sum(dim=1).mean()
    return values + weight * derivs
