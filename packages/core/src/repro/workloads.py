"""Workloads: dataset + model + loss + quality metric + target + budget (the AlgoPerf split).

Training algorithms are compared *on* a workload and never change it: the same data, the same
architecture, the same metric code and the same target for the method and its baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from repro import metrics as M
from repro.datasets import TensorData
from repro.errors import ReproError, unknown
from repro.models import build_model


@dataclass(frozen=True)
class Workload:
    """A fixed learning problem.

    Attributes:
        name: registry key.
        dataset: dataset registry key.
        model: model registry key; ``model_kwargs`` are passed to its builder.
        loss: key of ``repro.metrics.LOSSES``.
        metrics: evaluated on the test split each evaluation; the first is the quality metric.
        target: value of the quality metric that counts as "reached" (time-to-target).
        batch_size, max_epochs: the default budget of a gradient baseline.
    """

    name: str
    dataset: str
    model: str
    model_kwargs: dict[str, Any]
    loss: str
    metrics: tuple[str, ...]
    target: float
    batch_size: int = 32
    max_epochs: int = 100
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def quality_metric(self) -> str:
        return self.metrics[0]

    @property
    def higher_is_better(self) -> bool:
        return M.higher_is_better(self.quality_metric)

    def reached(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    def build_model(self) -> nn.Module:
        return build_model(self.model, **self.model_kwargs)

    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return M.LOSSES[self.loss]

    def score(self, predictions: torch.Tensor, targets: torch.Tensor, split: str = "test") -> dict[str, float]:
        """All workload metrics of *predictions* against *targets*, keyed ``<split>_<metric>``."""
        out = {}
        for name in self.metrics:
            base = name.split("_", 1)[1]
            out[f"{split}_{base}"] = M.METRICS[base][0](predictions, targets)
        return out

    @torch.no_grad()
    def evaluate(self, predict: Callable[[torch.Tensor], torch.Tensor], data: TensorData,
                 batch_size: int = 4096) -> dict[str, float]:
        """Score ``predict`` (inputs -> outputs/logits) on the test split, in chunks."""
        preds = torch.cat([predict(data.x_test[i:i + batch_size]) for i in range(0, len(data.x_test), batch_size)])
        return self.score(preds.detach(), data.y_test)


_REGISTRY: dict[str, Workload] = {}


def register_workload(workload: Workload) -> Workload:
    for m in workload.metrics:
        if not m.startswith("test_"):
            raise ReproError(f"workload {workload.name!r}: metric {m!r} must be named test_<metric>")
        M.higher_is_better(m)
    if workload.loss not in M.LOSSES:
        raise unknown(f"loss of workload {workload.name!r}", workload.loss, M.LOSSES)
    if workload.name in _REGISTRY and _REGISTRY[workload.name] != workload:
        raise ReproError(f"workload {workload.name!r} is registered twice with different settings")
    _REGISTRY[workload.name] = workload
    return workload


def _ensure_loaded() -> None:
    from repro.registry import papers

    for paper in papers().values():
        for w in paper.load().workloads:
            register_workload(w)


def get_workload(name: str) -> Workload:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise unknown("workload", name, _REGISTRY)
    return _REGISTRY[name]


def workload_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


# Built-in workloads, reusable by every paper.
register_workload(Workload(
    name="sine", dataset="sine", model="mlp", model_kwargs={"sizes": [1, 10, 1], "activation": "tanh"},
    loss="mse", metrics=("test_rmse", "test_r2"), target=0.1, batch_size=200, max_epochs=2000,
    description="1-D sine regression with a 1-10-1 tanh network",
))
register_workload(Workload(
    name="mexican_hat", dataset="mexican_hat", model="mlp", model_kwargs={"sizes": [2, 20, 1], "activation": "tanh"},
    loss="mse", metrics=("test_rmse", "test_r2"), target=0.1, batch_size=400, max_epochs=2000,
    description="2-D Mexican-hat (sin r / r) regression with a 2-20-1 tanh network",
))
register_workload(Workload(
    name="sine_wide", dataset="sine", model="mlp", model_kwargs={"sizes": [1, 50, 1], "activation": "tanh"},
    loss="mse", metrics=("test_rmse", "test_r2"), target=0.05, batch_size=200, max_epochs=5000,
    description="1-D sine regression with a 1-50-1 tanh network (paper scale)",
))
register_workload(Workload(
    name="mexican_hat_wide", dataset="mexican_hat", model="mlp",
    model_kwargs={"sizes": [2, 50, 1], "activation": "tanh"},
    loss="mse", metrics=("test_rmse", "test_r2"), target=0.05, batch_size=400, max_epochs=5000,
    description="2-D Mexican-hat regression with a 2-50-1 tanh network (paper scale)",
))
register_workload(Workload(
    name="digits_mlp", dataset="digits", model="mlp", model_kwargs={"sizes": [64, 64, 10], "activation": "relu"},
    loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.95, batch_size=64,
    max_epochs=30, description="scikit-learn digits, 64-64-10 ReLU MLP",
))
register_workload(Workload(
    name="mnist_mlp", dataset="mnist", model="mlp", model_kwargs={"sizes": [784, 256, 10], "activation": "relu"},
    loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.97, batch_size=128,
    max_epochs=10, description="MNIST, 784-256-10 ReLU MLP",
))
