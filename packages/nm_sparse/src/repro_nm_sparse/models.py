"""Models this package registers (``Paper.models``) and its workloads (``Paper.workloads``).

* ``nm_cnn``: the smoke CNN for 28x28 MNIST: conv 3x3 stride 2 (1 -> 16) - ReLU - conv 3x3
  stride 2 (16 -> 32) - ReLU - flatten (32 x 7 x 7) - linear (-> 10). The second conv (K = 144,
  O = 32: multiples of 8) is the N:M layer; the first (K = 9) and the classifier stay dense. A
  flatten head (not the core ``small_cnn``'s global pool) so a few CPU epochs train it, and strided
  convolutions (no pooling) so a CPU evaluates the 16k validation + test images in about a second.
* ``nm_resnet50_cifar``: torchvision ResNet-50 with the usual CIFAR stem (3x3 stride-1 conv, no
  max-pool), as ``repro.models.resnet18_cifar`` does for ResNet-18.
"""

from __future__ import annotations

from torch import nn

from repro.workloads import Workload


def nm_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16, image_size: int = 28) -> nn.Sequential:
    """Two stride-2 3x3 convs (width, 2 width channels) + a linear head on the flattened map."""
    side = ((image_size - 1) // 2) // 2 + 1  # two (s + 2 - 3) // 2 + 1 halvings
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * side * side, num_classes),
    )


def nm_resnet50_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-50 (Bottleneck [3, 4, 6, 3]) with a 3x3 stride-1 stem and no max-pool (32x32 input)."""
    import torchvision

    model = torchvision.models.resnet50(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODELS = {"nm_cnn": nm_cnn, "nm_resnet50_cifar": nm_resnet50_cifar}

WORKLOADS = (
    Workload(
        name="nm_mnist_mlp", dataset="mnist", model="mlp",
        model_kwargs={"sizes": [784, 512, 256, 10], "activation": "relu"},
        loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.97, batch_size=128,
        max_epochs=10, description="MNIST, 784-512-256-10 ReLU MLP (the N:M notes' CPU demonstration)",
    ),
    Workload(
        name="nm_mnist_cnn", dataset="mnist", model="nm_cnn", model_kwargs={"in_channels": 1, "num_classes": 10},
        loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.98, batch_size=128,
        max_epochs=10, description="MNIST, 2-conv stride-2 CNN (16/32 channels) with a flatten head",
    ),
    *(Workload(
        name=f"nm_{ds}_resnet50", dataset=ds, model="nm_resnet50_cifar",
        model_kwargs={"num_classes": 100 if ds == "cifar100" else 10},
        loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"),
        target=0.93 if ds == "cifar10" else 0.74, batch_size=128, max_epochs=100, augment="crop_flip",
        description=f"{ds.upper()} 32x32, ResNet-50 (CIFAR stem), random crop (pad 4) + flip",
    ) for ds in ("cifar10", "cifar100")),
)
