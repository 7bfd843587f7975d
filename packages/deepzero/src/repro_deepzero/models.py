"""CIFAR ResNet-s (He et al. 2016, §4.2): ResNet-20 and its narrow/shallow relatives.

The architecture of the official DeepZero code (``models/resnet_s.py``, after Y. Idelbayev's
CIFAR ResNets): a 3x3 stem conv (``width`` channels, no bias) + batch norm + ReLU, three stages of
``n`` BasicBlocks with ``width``, 2*``width``, 4*``width`` channels (strides 1, 2, 2), option-A
shortcuts (strided identity, zero-padded channels: no parameters), global average pooling and a
linear head; Kaiming-normal initialisation of every conv and linear weight. Depth = 6n + 2
(ResNet-20: n = 3, width 16, 0.27M parameters). Parameter names match the official code
(``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv{1,2}``, ``...bn{1,2}``, ``fc``), so its state dicts
load into these models unchanged (the golden test does this).

Every model here also describes itself as a flat list of operations (``zo_ops``) for the
zeroth-order engine (``repro_deepzero.engine``), which can restart a forward pass at any layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError

from repro_deepzero.engine import Op


def option_a_shortcut(x: torch.Tensor, planes: int) -> torch.Tensor:
    """The option-A shortcut of a down-sampling block: every other pixel, channels zero-padded
    by planes // 4 on each side (works on (N, C, H, W) and on (P, N, C, H, W))."""
    pad = planes // 4
    sub = x[..., ::2, ::2]
    return F.pad(sub, (0, 0, 0, 0, pad, pad), "constant", 0.0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.planes = stride, planes
        self.downsample = stride != 1 or in_planes != planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (option_a_shortcut(x, self.planes) if self.downsample else x)
        return F.relu(out)


class ResNetS(nn.Module):
    """CIFAR ResNet with option-A shortcuts (see the module docstring)."""

    def __init__(self, num_blocks: tuple[int, int, int] = (3, 3, 3), num_classes: int = 10, width: int = 16,
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(num_blocks) != 3 or min(num_blocks) < 1 or width < 4 or width % 4:
            raise ReproError(f"ResNetS: num_blocks must be 3 positive counts and width a multiple of 4 >= 4, "
                             f"got {num_blocks}, {width}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes_in = width
        stages = []
        for i, (n, stride) in enumerate(zip(num_blocks, (1, 2, 2))):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(planes_in, planes, stride if j == 0 else 1))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(planes_in, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = out.mean(dim=(2, 3))
        return self.fc(out)

    def zo_ops(self) -> list[Op]:
        """The forward pass as engine operations; every parametrised layer starts a new op."""
        ops = [Op("conv", ("conv1.weight",), {"stride": 1, "padding": 1}),
               Op("bn", ("bn1.weight", "bn1.bias"), {"eps": self.bn1.eps}), Op("relu")]
        for si, stage in enumerate((self.layer1, self.layer2, self.layer3), start=1):
            for bi, block in enumerate(stage):
                p = f"layer{si}.{bi}."
                ops += [Op("save_skip"),
                        Op("conv", (p + "conv1.weight",), {"stride": block.stride, "padding": 1}),
                        Op("bn", (p + "bn1.weight", p + "bn1.bias"), {"eps": block.bn1.eps}), Op("relu"),
                        Op("conv", (p + "conv2.weight",), {"stride": 1, "padding": 1}),
                        Op("bn", (p + "bn2.weight", p + "bn2.bias"), {"eps": block.bn2.eps}),
                        Op("add_skip", (), {"planes": block.planes, "downsample": block.downsample}),
                        Op("relu")]
        ops += [Op("gap"), Op("flatten"), Op("linear", ("fc.weight", "fc.bias"))]
        return ops


def resnet_s(depth: int = 20, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> ResNetS:
    """ResNet-s of *depth* = 6n + 2 (8, 14, 20, 32, ...), *width* channels in the first stage."""
    if depth < 8 or (depth - 2) % 6:
        raise ReproError(f"resnet_s: depth must be 6n + 2 >= 8, got {depth}")
    n = (depth - 2) // 6
    return ResNetS((n, n, n), num_classes=num_classes, width=width, in_channels=in_channels)


def resnet20_cifar(num_classes: int = 10) -> ResNetS:
    """ResNet-20 for CIFAR-10 (0.27M parameters), the paper's model."""
    return resnet_s(20, num_classes=num_classes)


MODELS = {"resnet_s": resnet_s, "resnet20_cifar": resnet20_cifar}
