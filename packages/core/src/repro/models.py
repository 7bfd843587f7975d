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


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class _FastConv(nn.Conv2d):
    """3x3 'same' convolution (padding 1) without bias, its first ``in_channels`` filters initialised
    to the identity (Dirac) on top of PyTorch's default init (airbench's convolution)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding=1, bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight[: min(c_in, c_out)])


def _fast_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    """Batch norm with a fixed scale of 1 (only the bias trains); *momentum* in airbench's sense
    (weight of the old running statistics), eps 1e-12."""
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - momentum)
    bn.weight.requires_grad_(False)
    return bn


class _FastGroup(nn.Module):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1, self.pool = _FastConv(c_in, c_out), nn.MaxPool2d(2)
        self.norm1, self.conv2 = _fast_norm(c_out, bn_momentum), _FastConv(c_out, c_out)
        self.norm2, self.activ = _fast_norm(c_out, bn_momentum), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """The airbench94 network for 32x32 CIFAR images in [0, 1] (see ``repro.fast_cifar``).

    Per-channel normalisation (CIFAR-10 mean/std, fixed buffers), a 2x2 whitening convolution
    with 2 * 3 * 2 * 2 = 24 filters (fixed weights set by :meth:`whiten_init`, trainable bias),
    GELU, three conv groups, 3x3 max-pool, a bias-free linear head, outputs scaled by *scale*.
    The Trainer calls :meth:`data_init` with the training images before the first step (on the
    training clock), so every method training this net starts from the whitened one.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (64, 256, 256), bn_momentum: float = 0.6,
                 scale: float = 1 / 9, whiten_kernel: int = 2, init_samples: int = 5000) -> None:
        super().__init__()
        self.init_samples = int(init_samples)
        if len(widths) != 3 or any(int(w) < 1 for w in widths):
            raise ReproError(f"airbench_cifar widths must be three positive channel counts, got {list(widths)}")
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        k = whiten_kernel
        self.whiten = nn.Conv2d(3, 2 * 3 * k * k, k, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        with torch.no_grad():
            self.whiten.bias.zero_()
        c = [2 * 3 * k * k, *[int(w) for w in widths]]
        self.groups = nn.Sequential(*[_FastGroup(c[i], c[i + 1], bn_momentum) for i in range(3)])
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(c[-1], num_classes, bias=False)
        self.scale = scale

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.whiten(self.normalize(x)))
        x = self.pool(self.groups(x))
        return self.head(x.flatten(1)) * self.scale

    def data_init(self, x_train: torch.Tensor) -> None:
        """Data-dependent initialisation (``repro.trainer.Trainer``): the whitening filters from
        the first ``init_samples`` training images."""
        self.whiten_init(x_train[: self.init_samples])

    @torch.no_grad()
    def whiten_init(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from *images* (N, 3, H, W in [0, 1]): the eigenvectors of the
        covariance of all k x k patches, scaled by 1/sqrt(eigenvalue + eps), largest first, and
        their negatives (so the GELU after it passes both signs)."""
        k = self.whiten.kernel_size[0]
        x = self.normalize(images.to(self.mean.device).float())
        patches = x.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)
        cov = flat.T @ flat / len(flat)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        filters = (vectors.T.flip(0) / torch.sqrt(values.flip(0) + eps)[:, None]).reshape(-1, 3, k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))


def airbench_cifar(num_classes: int = 10, widths: Sequence[int] = (64, 256, 256), bn_momentum: float = 0.6,
                   scale: float = 1 / 9, init_samples: int = 5000) -> nn.Module:
    """The airbench94 net (:class:`AirbenchNet`)."""
    return AirbenchNet(num_classes, widths, bn_momentum, scale, init_samples=init_samples)


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
    "airbench_cifar": airbench_cifar,
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
