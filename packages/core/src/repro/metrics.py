"""Quality metrics, computed from predictions so that every method is scored by the same code."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from repro.errors import ReproError, unknown


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.sqrt(F.mse_loss(pred.reshape(target.shape).double(), target.double())))


def r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination: 1 - SS_res / SS_tot."""
    target = target.double()
    pred = pred.reshape(target.shape).double()
    ss_res = ((target - pred) ** 2).sum()
    ss_tot = ((target - target.mean(dim=0)) ** 2).sum()
    return float(1.0 - ss_res / ss_tot)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == target).double().mean())


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.double(), target))


def mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(F.mse_loss(pred.reshape(target.shape).double(), target.double()))


# name -> (function, higher_is_better)
METRICS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], float], bool]] = {
    "rmse": (rmse, False),
    "r2": (r2, True),
    "mse": (mse, False),
    "accuracy": (accuracy, True),
    "cross_entropy": (cross_entropy, False),
}


# The values each metric can take: a target outside its range could never be reached.
RANGES: dict[str, tuple[float, float]] = {
    "rmse": (0.0, math.inf),
    "mse": (0.0, math.inf),
    "cross_entropy": (0.0, math.inf),
    "accuracy": (0.0, 1.0),
    "r2": (-math.inf, 1.0),
}


def base_name(metric: str) -> str:
    """``val_accuracy`` / ``test_accuracy`` / ``train_accuracy`` -> ``accuracy``."""
    for prefix in ("val_", "test_", "train_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def check_target(metric: str, target: float, where: str) -> None:
    base = base_name(metric)
    lo, hi = RANGES[base]
    if not (math.isfinite(target) and lo <= target <= hi):
        raise ReproError(f"{where}: target {target!r} for {metric} is outside what the metric can take "
                         f"([{lo}, {hi}]{'; accuracy is a fraction, e.g. 0.95 not 95' if base == 'accuracy' else ''})")


def higher_is_better(name: str) -> bool:
    base = base_name(name)
    if base not in METRICS:
        raise unknown("metric", name, METRICS)
    return METRICS[base][1]


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": lambda pred, y: F.mse_loss(pred.reshape(y.shape), y),
    "cross_entropy": F.cross_entropy,
}
