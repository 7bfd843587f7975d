"""Model builders by name. A workload names its model; papers build the same one by the same name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError, unknown

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def mlp(sizes: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """Fully connected net ``sizes[0] -> ... -> sizes[-1]``, *activation* between hidden layers.

    Inputs with more than one feature dimension (images) are flattened first.
    """
    if activation not in ACTIVATIONS:
        raise unknown("activation", activation, ACTIVATIONS)
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ReproError(f"mlp sizes must be >= 2 positive layer widths, got {list(sizes)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """Two conv blocks + linear head for 8x8 digits / 28x28 MNIST (global pooling: any input size)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "small_cnn": small_cnn}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    if name in MODELS and MODELS[name] is not builder:
        raise ReproError(f"model {name!r} is registered twice")
    MODELS[name] = builder


def build_model(name: str, **kwargs: Any) -> nn.Module:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise ReproError(f"model {name!r}: bad arguments {kwargs}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach()
