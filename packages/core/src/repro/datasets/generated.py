"""Synthetic regression functions, generated from a fixed seed so data are identical across runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from repro.datasets.registry import DatasetSpec, register_dataset


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def sine(params: dict[str, Any], raw_dir: Path) -> dict[str, torch.Tensor]:
    """y = sin(x): noisy training targets (the observations), noise-free test targets."""
    g = _rng(params["seed"])
    lo, hi = float(params["x_min"]), float(params["x_max"])

    def draw(n: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, 1, generator=g)

    x_train, x_test = draw(params["n_train"]), draw(params["n_test"])
    y_train = torch.sin(x_train) + params["noise"] * torch.randn(x_train.shape, generator=g)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": torch.sin(x_test)}


def _sinc_2d(xy: torch.Tensor) -> torch.Tensor:
    r = xy.norm(dim=1, keepdim=True)
    # sin(r)/r -> 1 as r -> 0; torch.sinc is sin(pi x)/(pi x), so rescale its argument.
    return torch.sinc(r / math.pi)


def mexican_hat(params: dict[str, Any], raw_dir: Path) -> dict[str, torch.Tensor]:
    """z = sin(r)/r on [-extent, extent]^2 (MATLAB's "Mexican hat" surface)."""
    g = _rng(params["seed"])
    e = float(params["extent"])

    def draw(n: int) -> torch.Tensor:
        return (2 * torch.rand(n, 2, generator=g) - 1) * e

    x_train, x_test = draw(params["n_train"]), draw(params["n_test"])
    y_train = _sinc_2d(x_train) + params["noise"] * torch.randn(x_train.shape[0], 1, generator=g)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": _sinc_2d(x_test)}


register_dataset(
    DatasetSpec(
        name="sine",
        kind="generated",
        task="regression",
        build=sine,
        description="y = sin(x) + noise, x ~ U[-pi, pi] (1-D regression)",
        defaults={"n_train": 200, "n_test": 200, "noise": 0.05, "x_min": -math.pi, "x_max": math.pi, "seed": 1234},
    )
)
register_dataset(
    DatasetSpec(
        name="mexican_hat",
        kind="generated",
        task="regression",
        build=mexican_hat,
        description="z = sin(r)/r + noise on [-8, 8]^2 (2-D regression)",
        defaults={"n_train": 400, "n_test": 400, "noise": 0.02, "extent": 8.0, "seed": 4321},
    )
)
