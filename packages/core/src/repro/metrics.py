"""Quality metrics, computed from predictions so that every method is scored by the same code."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from repro.errors import unknown


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


def higher_is_better(name: str) -> bool:
    base = name.removeprefix("test_").removeprefix("train_")
    if base not in METRICS:
        raise unknown("metric", name, METRICS)
    return METRICS[base][1]


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": lambda pred, y: F.mse_loss(pred.reshape(y.shape), y),
    "cross_entropy": F.cross_entropy,
}
