"""PreAct-ResNet for CIFAR (He et al. 2016, "Identity Mappings"), as the paper's CIFAR-10 runs use it.

Follows ``image_classification/preact_resnet.py`` + ``resnet.py`` (``ResNetBuilder``) of the
official code: a 3x3 stem conv (16 channels), three stages of ``PreActBlock`` (BN-ReLU-conv3x3,
BN-ReLU-conv3x3; 16/32/64 channels, strides 1/2/2) with a 1x1 conv shortcut taken after the first
BN-ReLU where the shape changes, a final BN-ReLU, 8x8 average pool and a linear head. Convs have
no bias and Kaiming-normal fan-in init; BN weight 1, bias 0. Depth 6n + 2: n = 9 is PreAct-ResNet-56.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.errors import ReproError


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return conv


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    nn.init.constant_(bn.weight, 1.0)
    nn.init.constant_(bn.bias, 0.0)
    return bn


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = _bn(c_in), _conv(c_in, c_out, 3, stride)
        self.bn2, self.conv2 = _bn(c_out), _conv(c_out, c_out, 3)
        self.downsample = nn.Sequential(_conv(c_in, c_out, 1, stride)) if (stride != 1 or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        residual = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + residual


class PreActResNet(nn.Module):
    def __init__(self, depth: int = 56, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ReproError(f"preact_resnet_cifar: depth must be 6n + 2 >= 8, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = _conv(in_channels, 16, 3)
        layers, c_in = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(c_in, planes, stride if i == 0 else 1))
                c_in = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = _bn(64)
        self.pool = nn.AdaptiveAvgPool2d(1)  # = AvgPool2d(8) on 32x32 inputs
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


def preact_resnet_cifar(depth: int = 56, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return PreActResNet(depth, num_classes, in_channels)


def preact_resnet56_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """PreAct-ResNet-56 for 32x32 inputs (0.86M parameters)."""
    return PreActResNet(56, num_classes, in_channels)


def lenet_mnist(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Sequential:
    """A small LeNet-style CNN with batch norm for 28x28 MNIST (our smoke model; ~0.33M MACs per
    sample, 11x fewer than the core's ``small_cnn``): [conv5x5 - BN - ReLU - maxpool2] with *width*
    and 2 *width* channels, then one linear layer 16 * 2 * width -> classes.

    Batch norm after each conv, as in the paper's ResNets: the gradient at a conv's output is then
    dense (BN's backward mixes the batch). Without it (conv - ReLU - max-pool) that gradient is
    mostly exact zeros, which the reference's per-tensor quantizer keeps exact (zero sits on a
    level) and its per-sample one does not, a property of the code rather than of the quantizers'
    variance the paper analyses."""
    if width < 1:
        raise ReproError(f"lenet_mnist: width must be >= 1, got {width}")
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 5), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 5), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 16, num_classes),
    )


MODELS = {"lenet_mnist": lenet_mnist, "preact_resnet_cifar": preact_resnet_cifar, "preact_resnet56_cifar": preact_resnet56_cifar}
