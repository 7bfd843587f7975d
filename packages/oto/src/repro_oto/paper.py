"""The paper's declaration for the core: workloads, methods, experiments per scale, claims."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.claims import load_claims
from repro.paper import Experiment, Paper
from repro.workloads import Workload

from repro_oto.kernels import kernel_benchmarks
from repro_oto.methods import METHODS
from repro_oto.models import MODELS

HERE = Path(__file__).parent
META = json.loads((HERE.parent.parent / "metadata.json").read_text())  # title and link live there only

WORKLOADS = (
    Workload(
        name="digits_bn_cnn", dataset="digits", model="oto_bn_cnn",
        model_kwargs={"in_channels": 1, "num_classes": 10, "widths": [16, 32], "hidden": 64, "image_size": 8},
        loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.95, batch_size=64,
        max_epochs=40,
        description="scikit-learn digits (8x8), conv(16)-BN-ReLU-conv(32)-BN-ReLU-maxpool-FC(64)-ReLU-FC "
                    "(conv bias kept before BN as in the v1 VGG16-BN)",
    ),
    *(
        Workload(
            name=f"cifar10_{model}", dataset="cifar10", model=model, model_kwargs={"num_classes": 10},
            loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=target, batch_size=64,
            max_epochs=300, augment="crop_flip",
            description=f"CIFAR-10 32x32, the v1 code's {label}, random crop (pad 4) + flip (targets: ours)",
        )
        for model, label, target in (("oto_vgg16", "VGG16", 0.90), ("oto_vgg16_bn", "VGG16-BN", 0.92),
                                     ("oto_resnet50_cifar", "ResNet-50", 0.93))
    ),
)

# Smoke: the v1 recipe shrunk to the digits set — SGD without momentum, batch 64, step size 0.1
# divided by 10 at N_P, 2 N_P and 3 N_P with N_P = a quarter of the epochs (v1: 75 of 300),
# epsilon 0. lambda is larger than v1's 1e-3 because a digits run has ~760 steps, not ~230k: the
# largest of {0.05, 0.07, 0.085, 0.1} whose mean *validation* accuracy over seeds 0-2 stayed within
# one point of dense training (benchmarks/lambda_sweep.py redoes that sweep).
SMOKE_EPOCHS = 40
SMOKE: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 64, "epochs": SMOKE_EPOCHS, "eval_every": 4,
    "lmbda": 0.085, "n_p": 10, "lr_decays": [10, 20, 30], "epsilon": 0.0, "epsilon_linear": 0.0,
}


def v1_config(lmbda: float, decays: list[int], epsilon_linear: float) -> dict[str, Any]:
    """The v1 ``train/configs/config_*_hspg.yml`` settings (CIFAR-10: 300 epochs, N_P = 75)."""
    return {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 64, "epochs": 300, "eval_every": 5,
            "lmbda": lmbda, "n_p": 75, "lr_decays": decays, "epsilon": 0.0, "epsilon_linear": epsilon_linear}


PAPER_CONFIGS = {
    "cifar10_vgg16": ("cifar10_oto_vgg16", v1_config(1e-3, [75, 150, 225], 0.99), ("dense", "hspg"),
                      "config_vgg16_hspg.yml"),
    "cifar10_vgg16_bn": ("cifar10_oto_vgg16_bn", v1_config(5e-4, [75, 150, 250], 0.9), ("dense", "prox_sg", "hspg"),
                         "config_vgg16_bn_hspg.yml"),
    "cifar10_resnet50": ("cifar10_oto_resnet50_cifar", v1_config(1e-3, [75, 150, 225], 0.0), ("dense", "hspg"),
                         "config_resnet50_cifar10_hspg.yml"),
}

PAPER = Paper(
    slug="oto",
    title=META["title"],
    authors=META["attribution"],
    reference="arXiv 2107.07467; NeurIPS 2021",
    url=META["link"],
    summary=META["tldr"],
    methods=METHODS,
    experiments={
        "smoke": {
            "digits_bn_cnn": Experiment(
                "digits_bn_cnn", "digits_bn_cnn", {m: dict(SMOKE) for m in METHODS},
                f"scikit-learn digits, BN CNN (16/32 conv channels, 64 hidden), SGD lr 0.1 / 10 at epochs 10, 20, "
                f"30, {SMOKE_EPOCHS} epochs, batch 64; HSPG N_P = 10, lambda 0.085, epsilon 0"),
        },
        "paper": {
            name: Experiment(name, workload, {m: dict(cfg) for m in methods},
                             f"CIFAR-10 with the v1 code's {file} (300 epochs, batch 64, lr 0.1 / 10 at the "
                             f"decays, N_P 75, momentum 0); dense is the same schedule without the regulariser")
            for name, (workload, cfg, methods, file) in PAPER_CONFIGS.items()
        },
    },
    claims=load_claims(HERE / "claims.yaml"),
    package_dir=HERE.parent.parent,
    workloads=WORKLOADS,
    models=MODELS,
    tiny_hparams={m: {"epochs": 2, "n_p": 1, "lr_decays": []} for m in METHODS},
    report_curves=("group_sparsity",),
    kernel_benchmarks=kernel_benchmarks,
    notes=(
        "Smoke scale runs a BN CNN on the 8x8 digits set, not the paper's CIFAR/ImageNet networks: its FLOPs/params "
        "remaining are compared with the paper's CIFAR figures only as the paper's order of magnitude. lambda at "
        "smoke scale (0.085) is ours (v1 uses 1e-3 over ~230k steps). Paper-scale experiments are the v1 configs "
        "(declared, not run here; they hold out 10% of the CIFAR-10 training set for validation, the v1 code trains "
        "on all 50k and normalises with ImageNet statistics). v1's upper_group_sparsity cap (1.0 = off in every "
        "config) is not implemented. ImageNet ResNet-50 and BERT/SQuAD are not run."
    ),
)
