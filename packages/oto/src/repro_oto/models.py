"""The networks of the paper (v1 code layouts) and the smoke CNN with batch norm.

* ``oto_bn_cnn``: the smoke model, conv(3x3)-BN-ReLU x 2, 2x2 max-pool, flatten, FC-ReLU, FC. Its
  convolutions keep their bias in front of the batch norm, as the v1 VGG16-BN does, so a
  conv zero-invariant group has four parts (filter, bias, BN gamma, BN beta); the flatten of a
  4x4 map makes every conv channel feed 16 columns of the first FC layer.
* ``oto_vgg16`` (``bn=False``) / ``oto_vgg16_bn``: the v1 ``backend/vgg.py`` CIFAR VGG16 — 13
  conv3x3 layers with bias (and batch norm for ``_bn``), max-pools after conv 2, 4, 7, 10, 13, a
  1x1 adaptive average pool and a 512-512-512-10 classifier with dropout 0.5; conv weights drawn
  from N(0, 2 / (9 out_channels)), conv biases zero (the v1 init).
* ``oto_resnet50_cifar``: the v1 ``backend/resnet_cifar.py`` ResNet-50 (itself from
  weiaicunzai/pytorch-cifar100): 3x3 stride-1 stem with 64 channels, bottleneck stages [3, 4, 6, 3]
  with 64/128/256/512 inner channels (x4 expansion), stride on the 3x3 conv, 1x1 conv + BN
  shortcut where the shape changes, global average pool, linear head. No conv has a bias.

Written here from the layouts (not copied) so that the ZIG partition (``repro_oto.zig``) works on
the same graphs the paper pruned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from repro.errors import ReproError

VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
VGG16_POOL_AFTER = (1, 3, 6, 9, 12)  # 0-based conv indices followed by a 2x2 max-pool (v1 pooling_pos)


def oto_bn_cnn(in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32), hidden: int = 64,
               image_size: int = 8) -> nn.Sequential:
    """Smoke CNN: [conv3x3(bias)-BN-ReLU] x len(widths), max-pool 2, flatten, FC(hidden)-ReLU, FC."""
    if not widths or any(int(w) < 1 for w in widths) or hidden < 1 or image_size < 2 or image_size % 2:
        raise ReproError(f"oto_bn_cnn: widths must be positive, hidden >= 1 and image_size even >= 2 "
                         f"(got widths={list(widths)}, hidden={hidden}, image_size={image_size})")
    layers: list[nn.Module] = []
    c = in_channels
    for w in widths:
        layers += [nn.Conv2d(c, int(w), 3, padding=1), nn.BatchNorm2d(int(w)), nn.ReLU()]
        c = int(w)
    side = image_size // 2
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ReLU(),
               nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


class OtoVGG16(nn.Module):
    """The v1 CIFAR VGG16 (see the module docstring); ``channels``: 13 conv widths then 2 FC widths."""

    def __init__(self, num_classes: int = 10, bn: bool = False,
                 channels: Sequence[int] = VGG16_CHANNELS + (512, 512), in_channels: int = 3) -> None:
        super().__init__()
        if len(channels) != 15:
            raise ReproError(f"OtoVGG16: channels must list 13 conv and 2 FC widths, got {len(channels)}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(channels[:13]):
            layers.append(nn.Conv2d(c, w, kernel_size=3, padding=1))
            if bn:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.ReLU(inplace=True))
            if i in VGG16_POOL_AFTER:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            c = w
        layers.append(nn.AdaptiveAvgPool2d((1, 1)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c, channels[13]), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(channels[13], channels[14]), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(channels[14], num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        return self.classifier(out.view(out.size(0), -1))


def oto_vgg16(num_classes: int = 10) -> nn.Module:
    """v1 VGG16 for CIFAR (no batch norm), 15.0M parameters."""
    return OtoVGG16(num_classes, bn=False)


def oto_vgg16_bn(num_classes: int = 10) -> nn.Module:
    """v1 VGG16-BN for CIFAR (conv with bias, then batch norm)."""
    return OtoVGG16(num_classes, bn=True)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4) with batch norm, ReLU(residual + shortcut)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.residual_function = nn.Sequential(
            nn.Conv2d(c_in, width, kernel_size=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, c_out, kernel_size=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Sequential())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual_function(x) + self.shortcut(x))


class OtoResNetCifar(nn.Module):
    """Bottleneck ResNet for 32x32 inputs; ``widths``: the stem and the four stages' inner widths are
    ``widths[0]``, ``widths`` (v1: 64, 128, 256, 512; narrower ones make fast tests of the same graph)."""

    def __init__(self, blocks: Sequence[int] = (3, 4, 6, 3), num_classes: int = 10, in_channels: int = 3,
                 widths: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        c = widths[0]
        stages = []
        for width, n, stride in zip(widths, blocks, (1, 2, 2, 2)):
            layer = []
            for i in range(n):
                layer.append(Bottleneck(c, width, stride if i == 0 else 1))
                c = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layer))
        self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x = stages
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x)))))
        out = self.avg_pool(out)
        return self.fc(out.view(out.size(0), -1))


def oto_resnet50_cifar(num_classes: int = 10) -> nn.Module:
    """v1 ResNet-50 for CIFAR (23.5M parameters)."""
    return OtoResNetCifar((3, 4, 6, 3), num_classes)


MODELS = {
    "oto_bn_cnn": oto_bn_cnn,
    "oto_vgg16": oto_vgg16,
    "oto_vgg16_bn": oto_vgg16_bn,
    "oto_resnet50_cifar": oto_resnet50_cifar,
}
