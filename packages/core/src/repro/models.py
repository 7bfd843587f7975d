"""Model builders by name. A workload names its model; papers build the same one by the same name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError, unknown
from repro.registry import Registry

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


# CIFAR-style image classifiers (32x32x3 input), built from torchvision's architectures.
# torchvision is imported inside each builder so listing models does not import it.


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-18 adapted to 32x32 inputs (the usual CIFAR variant, He et al. 2016 §4.2 style).

    Adaptation: ``conv1`` is a 3x3 convolution with stride 1 (instead of 7x7 stride 2) and the
    stem's max-pool is removed, so the four stages see 32, 16, 8 and 4 pixels; everything else
    (BasicBlocks [2, 2, 2, 2], batch norm, global average pool, one linear head) is torchvision's.
    """
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _vgg_cifar(builder_name: str, num_classes: int, hidden: int, dropout: float) -> nn.Module:
    import torchvision

    features = getattr(torchvision.models, builder_name)().features  # conv + BN + ReLU, 5 max-pools
    return nn.Sequential(
        features,  # 32x32 -> 512 x 1 x 1 after the five 2x2 max-pools
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(512, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def vgg11_cifar(num_classes: int = 10, hidden: int = 512, dropout: float = 0.5) -> nn.Module:
    """torchvision ``vgg11_bn`` features (8 conv layers with batch norm) + a small classifier for 32x32.

    Adaptation: torchvision's 7x7 adaptive pool and 4096-4096 classifier (sized for 224x224
    ImageNet) are replaced by flatten of the 512x1x1 map -> Linear(512, hidden) -> ReLU ->
    Linear(hidden, num_classes), with dropout, as in the common CIFAR VGG variants.
    """
    return _vgg_cifar("vgg11_bn", num_classes, hidden, dropout)


def vgg16_cifar(num_classes: int = 10, hidden: int = 512, dropout: float = 0.5) -> nn.Module:
    """torchvision ``vgg16_bn`` features (13 conv layers with batch norm) + the small 32x32 classifier
    of :func:`vgg11_cifar`."""
    return _vgg_cifar("vgg16_bn", num_classes, hidden, dropout)


def alexnet_cifar(num_classes: int = 10, dropout: float = 0.5) -> nn.Module:
    """AlexNet for 32x32 inputs: torchvision's five-conv layout (64-192-384-256-256 channels, ReLU,
    three max-pools) with the first convolution changed from 11x11 stride 4 to 3x3 stride 1 and
    the other kernels to 3x3, three 2x2 max-pools (32 -> 4 pixels), and a 3-layer classifier
    (256*4*4 -> 1024 -> 1024 -> num_classes) scaled down from torchvision's 4096-wide head.
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 192, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(256 * 4 * 4, 1024),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(1024, 1024),
        nn.ReLU(inplace=True),
        nn.Linear(1024, num_classes),
    )


class _WideBasic(nn.Module):
    """Pre-activation wide residual block (BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3 + shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=stride, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(self.dropout(out))))
        return out + self.shortcut(x)


def wide_resnet_cifar(depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0,
                      in_channels: int = 3) -> nn.Module:
    """Wide ResNet WRN-depth-widen for 32x32 inputs (Zagoruyko & Komodakis 2016), the layout of the
    ``wide-resnet.pytorch`` code used by Adelman et al.: 3x3 stem conv (16 channels), three groups
    of (depth-4)/6 pre-activation blocks with 16k/32k/64k channels (strides 1, 2, 2), BN-ReLU,
    8x8 average pool, linear head. Convs have no bias (the reference code's convs do; BN follows)."""
    if (depth - 4) % 6 or depth < 10 or widen < 1:
        raise ReproError(f"wide_resnet_cifar: depth must be 6n+4 >= 10 and widen >= 1, got {depth}, {widen}")
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)]
    c_in = widths[0]
    for g, stride in enumerate((1, 2, 2)):
        for i in range(n):
            layers.append(_WideBasic(c_in, widths[g + 1], stride if i == 0 else 1, dropout))
            c_in = widths[g + 1]
    layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def wrn28_10_cifar(num_classes: int = 10, dropout: float = 0.0) -> nn.Module:
    """WRN-28-10 for CIFAR (36.5M parameters)."""
    return wide_resnet_cifar(28, 10, num_classes, dropout)


MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str, builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    return MODELS.register(name, builder)


for _name, _builder in {
    "mlp": mlp,
    "small_cnn": small_cnn,
    "alexnet_cifar": alexnet_cifar,
    "vgg11_cifar": vgg11_cifar,
    "vgg16_cifar": vgg16_cifar,
    "resnet18_cifar": resnet18_cifar,
    "wide_resnet_cifar": wide_resnet_cifar,
    "wrn28_10_cifar": wrn28_10_cifar,
}.items():
    register_model(_name, _builder)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    builder = MODELS.get(name)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise ReproError(f"model {name!r}: bad arguments {kwargs}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach()
