"""Hyper-parameters of Weight Update Skipping (WUS), typed and validated by ``repro.hparams``.

The paper (arXiv 2012.02792) has no public code and its method section gives no numbers we
could verify; every default below is ours and is listed in the package README ("Choices").
Accuracies are fractions in [0, 1] (0.005 = half a percentage point). The learning-rate
schedule of WUS+LR is the core's (``lr_schedule`` / ``lr_step`` / ``lr_gamma`` of
``repro.trainer.GradientConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp

# The validation metrics of the classification workloads WUS runs on (digits, CIFAR). A test_*
# metric is no choice: the test split never steers training. A name the evaluations do not
# report would leave the trigger silent, WUS then running as its baseline.
MONITORS = ("val_accuracy", "val_cross_entropy")


@dataclass(frozen=True)
class WUSConfig:
    """When to skip weight updates and for how long."""

    skip: bool = hp(True, "False: never skip (the baselines run the same hook with skipping off, so the "
                          "comparison isolates skipping) — a fixed switch of each method")
    monitor: str = hp("val_accuracy", "the evaluated metric whose epoch-to-epoch change drives the trigger "
                                      "(validation split only: the test split never steers training)",
                      choices=MONITORS)
    threshold: float = hp(0.005, "τ: an epoch is calm when |Δ monitor| < τ (absolute fraction; 0.005 = 0.5 pp)",
                          low=0)
    patience: int = hp(2, "P: consecutive calm epochs of full training that open a skip window", low=1)
    window: int = hp(3, "W: epochs in a skip window (conv/linear weights frozen; biases and norm-layer "
                        "affine parameters keep training)", low=1)
    warmup: int = hp(3, "no window opens before this many epochs of full training", low=0)
