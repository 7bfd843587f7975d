"""Datasets that ship inside a wheel and need no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repro.datasets.registry import DatasetSpec, register_dataset


def digits(params: dict[str, Any], raw_dir: Path) -> dict[str, torch.Tensor]:
    """scikit-learn's 1,797 real 8x8 digits as (N, 1, 8, 8) floats in [0, 1], stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        range(len(labels)),
        test_size=params["test_fraction"],
        random_state=params["seed"],
        stratify=labels.numpy(),
    )
    idx_train, idx_test = torch.tensor(idx_train), torch.tensor(idx_test)
    return {
        "x_train": images[idx_train],
        "y_train": labels[idx_train],
        "x_test": images[idx_test],
        "y_test": labels[idx_test],
    }


register_dataset(
    DatasetSpec(
        name="digits",
        kind="embedded",
        task="classification",
        build=digits,
        description="scikit-learn load_digits: 1,797 real 8x8 handwritten digits, 10 classes",
        num_classes=10,
        defaults={"test_fraction": 0.25, "seed": 0},
    )
)
