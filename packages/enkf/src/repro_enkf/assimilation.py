"""ES-MDA / EnKF analysis step for an ensemble of network parameter vectors.

Notation (paper, arXiv 2010.02626): the state of member ``j`` is the flattened
parameter vector ``theta_j`` (length P), its predicted observations are
``D_j = g(theta_j)`` (length Nd, the network outputs on the training inputs), the
observations ``d_obs`` have diagonal error covariance ``C_D = diag(obs_var)``.  One
assimilation with inflation ``alpha`` is

    d_j     = d_obs + sqrt(alpha) C_D^{1/2} z_j,             z_j ~ N(0, I)
    dTheta  = (Theta - mean) / sqrt(Ne - 1),   dD = (D - mean) / sqrt(Ne - 1)
    theta_j <- theta_j + dTheta dD^T (dD dD^T + alpha C_D)^{-1} (d_j - D_j)

ES-MDA repeats it ``N_a`` times on all observations with ``sum 1/alpha_i = 1``; the
EnKF applies it once per mini-batch of observations with ``alpha = 1``.

Tensors here store one member per *row* (``theta`` is ``(Ne, P)``,
``predictions`` is ``(Ne, Nd)``), i.e. the transposes of the column matrices above.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

__all__ = [
    "INFLATION_KINDS",
    "analysis_update",
    "analysis_update_reference",
    "ensemble_spread",
    "inflation_schedule",
]

INFLATION_KINDS = ("constant", "geometric")


def inflation_schedule(
    n_assimilations: int, kind: str = "constant", ratio: float = 2.0
) -> list[float]:
    """Inflation coefficients ``alpha_1..alpha_Na`` for ES-MDA, with ``sum 1/alpha = 1``.

    * ``"constant"``: ``alpha_i = N_a`` (Emerick & Reynolds' default).
    * ``"geometric"``: a decreasing geometric sequence ``alpha_i = c * ratio**(Na-1-i)``
      (largest inflation first, so early, most non-linear steps are the most damped),
      with ``c`` chosen so that ``sum 1/alpha_i = 1``.  ``ratio=1`` gives "constant".
    """
    if isinstance(n_assimilations, bool) or not isinstance(n_assimilations, int) or n_assimilations < 1:
        raise ValueError(f"n_assimilations must be an integer >= 1, got {n_assimilations!r}")
    if kind == "constant":
        return [float(n_assimilations)] * n_assimilations
    if kind == "geometric":
        if isinstance(ratio, bool) or not isinstance(ratio, Real) or not math.isfinite(ratio) or ratio < 1:
            raise ValueError(f"ratio must be a finite number >= 1, got {ratio!r}")
        raw = [float(ratio) ** (n_assimilations - 1 - i) for i in range(n_assimilations)]
        scale = sum(1.0 / a for a in raw)  # makes sum 1/(scale * raw_i) == 1
        return [scale * a for a in raw]
    raise ValueError(f"kind must be one of {INFLATION_KINDS}, got {kind!r}")


def ensemble_spread(theta: Tensor) -> float:
    """Mean over parameters of the across-member standard deviation of ``theta`` ``(Ne, P)``."""
    if theta.dim() != 2 or theta.shape[0] < 2:
        raise ValueError(f"theta must have shape (Ne, P) with Ne >= 2, got shape {tuple(theta.shape)}")
    return theta.std(dim=0).mean().item()


def _validate(
    theta: Tensor,
    predictions: Tensor,
    observations: Tensor,
    obs_var: Tensor | float,
    alpha: float,
    noise: Tensor,
) -> tuple[float, Tensor]:
    """Check the analysis inputs; return ``alpha`` as float and ``obs_var`` as ``(Nd,)`` float64."""
    if not isinstance(theta, Tensor) or theta.dim() != 2:
        raise ValueError(f"theta must be a tensor of shape (Ne, P), got {_describe(theta)}")
    ne = theta.shape[0]
    if ne < 2:
        raise ValueError(f"theta must have an ensemble size Ne >= 2 (rows), got Ne={ne}")
    if not isinstance(predictions, Tensor) or predictions.dim() != 2 or predictions.shape[0] != ne:
        raise ValueError(
            f"predictions must be a tensor of shape (Ne={ne}, Nd), got {_describe(predictions)}"
        )
    nd = predictions.shape[1]
    if not isinstance(observations, Tensor) or tuple(observations.shape) != (nd,):
        raise ValueError(f"observations must be a tensor of shape (Nd={nd},), got {_describe(observations)}")
    if not isinstance(noise, Tensor) or tuple(noise.shape) != (ne, nd):
        raise ValueError(f"noise must be a tensor of shape (Ne={ne}, Nd={nd}), got {_describe(noise)}")

    if isinstance(alpha, Tensor) and alpha.numel() == 1:
        alpha = alpha.item()
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")

    if isinstance(obs_var, Tensor):
        if obs_var.dim() == 0:
            obs_var = obs_var.item()
        elif tuple(obs_var.shape) != (nd,):
            raise ValueError(f"obs_var must be a number or a tensor of shape (Nd={nd},), got {_describe(obs_var)}")
        else:
            var = obs_var.to(device=theta.device, dtype=torch.float64)
            bad = ~(torch.isfinite(var) & (var > 0))
            if bad.any():
                i = int(bad.nonzero()[0])
                raise ValueError(f"obs_var must be finite and > 0, got obs_var[{i}]={var[i].item()!r}")
            return float(alpha), var
    if isinstance(obs_var, bool) or not isinstance(obs_var, Real) or not math.isfinite(obs_var) or obs_var <= 0:
        raise ValueError(f"obs_var must be finite and > 0, got {obs_var!r}")
    return float(alpha), torch.full((nd,), float(obs_var), dtype=torch.float64, device=theta.device)


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    return repr(value)


def _anomalies_and_innovations(
    theta: Tensor,
    predictions: Tensor,
    observations: Tensor,
    obs_var: Tensor,
    alpha: float,
    noise: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Float64 ``dTheta^T (Ne, P)``, ``dD^T (Ne, Nd)`` and innovations ``(d_j - D_j)^T (Ne, Nd)``."""
    f64 = dict(dtype=torch.float64, device=theta.device)
    ne = theta.shape[0]
    scale = 1.0 / math.sqrt(ne - 1)
    th = theta.to(**f64)
    pred = predictions.to(**f64)
    d_theta = (th - th.mean(dim=0)) * scale
    d_pred = (pred - pred.mean(dim=0)) * scale
    # Perturbed observations d_j = d_obs + sqrt(alpha) C_D^{1/2} z_j (row j).
    perturbed = observations.to(**f64) + math.sqrt(alpha) * obs_var.sqrt() * noise.to(**f64)
    return d_theta, d_pred, perturbed - pred


def analysis_update(
    theta: Tensor,
    predictions: Tensor,
    observations: Tensor,
    obs_var: Tensor | float,
    alpha: float,
    noise: Tensor,
) -> Tensor:
    """One ES-MDA/EnKF analysis step, computed in ensemble space.

    Args:
        theta: ensemble of parameter vectors, ``(Ne, P)``, ``Ne >= 2``.
        predictions: predicted observations ``D_j = g(theta_j)``, ``(Ne, Nd)``.
        observations: observed data ``d_obs``, ``(Nd,)``.
        obs_var: diagonal of ``C_D``, a positive number or ``(Nd,)`` tensor.
        alpha: inflation coefficient (> 0; 1 for the plain EnKF).
        noise: standard-normal draws ``z``, ``(Ne, Nd)``; passed in so results are
            reproducible and comparable between implementations.

    Returns:
        Updated ensemble, ``(Ne, P)``, same dtype/device as ``theta``.

    Cost is O(Ne^2 (Nd + P) + Ne^3) time and O(Ne (Nd + P)) memory: no P x P, P x Nd or
    Nd x Nd matrix is ever formed.
    """
    alpha, var = _validate(theta, predictions, observations, obs_var, alpha, noise)
    d_theta, d_pred, innov = _anomalies_and_innovations(theta, predictions, observations, var, alpha, noise)
    ne = theta.shape[0]
    # Push-through identity, with A = alpha C_D (diagonal, invertible):
    #   dD^T (dD dD^T + A)^{-1} = (I_Ne + dD^T A^{-1} dD)^{-1} dD^T A^{-1}
    # so the Nd x Nd solve of the textbook gain becomes an Ne x Ne one:
    #   W = (I + dD^T A^{-1} dD)^{-1} dD^T A^{-1} (d - D)   (Ne x Ne),  Theta += dTheta W.
    # Rows of d_pred are columns of dD, hence the transposes below.
    g = d_pred / (alpha * var)  # (Ne, Nd) = (A^{-1} dD)^T
    m = torch.eye(ne, dtype=torch.float64, device=theta.device) + g @ d_pred.T  # I + dD^T A^-1 dD
    w = torch.linalg.solve(m, g @ innov.T)  # (Ne, Ne); column j belongs to member j
    # Row layout: theta_j += (dTheta W)[:, j]  <=>  theta += W^T dTheta^T.
    return (theta.to(torch.float64) + w.T @ d_theta).to(theta.dtype)


def analysis_update_reference(
    theta: Tensor,
    predictions: Tensor,
    observations: Tensor,
    obs_var: Tensor | float,
    alpha: float,
    noise: Tensor,
) -> Tensor:
    """Textbook form of :func:`analysis_update` (same arguments and result).

    Forms the cross-covariance ``C_thetaD`` (P x Nd), ``C_DD`` (Nd x Nd) and the Kalman
    gain ``K = C_thetaD (C_DD + alpha C_D)^{-1}`` (P x Nd), then updates member by
    member, ``theta_j += K (d_j - D_j)``.  Meant for testing and benchmarking only.
    """
    alpha, var = _validate(theta, predictions, observations, obs_var, alpha, noise)
    d_theta, d_pred, innov = _anomalies_and_innovations(theta, predictions, observations, var, alpha, noise)
    c_theta_d = d_theta.T @ d_pred  # (P, Nd)
    c_dd = d_pred.T @ d_pred  # (Nd, Nd)
    # K = C_thetaD S^{-1} with S symmetric, computed as (S^{-1} C_thetaD^T)^T.
    k = torch.linalg.solve(c_dd + torch.diag(alpha * var), c_theta_d.T).T  # (P, Nd)
    out = theta.to(torch.float64).clone()
    for j in range(theta.shape[0]):
        out[j] += k @ innov[j]
    return out.to(theta.dtype)
