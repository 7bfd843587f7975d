"""Hyper-parameters of approximate training, typed and validated by ``repro.hparams``.

Defaults follow the reference code (adelmanm/approx) where it has one: minimal_k 1 (ImageNet
scripts), eps 0.1 (uniform mix), the first layer exact. ``mode`` picks where products are sampled:
"forward" (sample in forward, backprop only through the sampled pairs: the variant the reference
README says performed best), "backward" (exact forward; the input gradient samples output
channels, the weight gradient samples batch rows) or "both".
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp

from repro_approx.sampling import STRATEGIES

MODES = ("forward", "backward", "both")
KERNELS = ("auto", "triton", "reference")


@dataclass(frozen=True)
class ApproxConfig:
    """How a layer's products are approximated (``ratio``, ``strategy`` and ``mode`` are each
    method's fixed switches)."""

    ratio: float = hp(1.0, "keep ratio; 1.0 = exact (bit-identical to the plain layer)", low=0, high=1,
                      low_open=True)
    minimal_k: int = hp(1, "never keep fewer than this many column-row pairs (<= each sampled dimension)", low=1)
    strategy: str = hp("topk", "\"topk\" | \"crs\" | \"bernoulli\" (see repro_approx.sampling)", choices=STRATEGIES)
    mode: str = hp("forward", "where products are sampled: \"forward\" | \"backward\" | \"both\"", choices=MODES)
    eps: float = hp(0.1, "weight of the uniform distribution mixed into the sampling probabilities "
                         "(crs, bernoulli)", low=0, high=1)
    skip_first: bool = hp(True, "leave the model's first conv/linear layer exact (the paper's rule for the "
                                "3-channel input conv)")
    layers: tuple[str, ...] = hp((), "names of the modules to approximate (named_modules keys); empty = every "
                                     "Linear/Conv2d (minus the first when skip_first)")
    kernel: str = hp("auto", "the sampled linear products: \"auto\" (the fused Triton sampled GEMM and pair "
                             "scores on CUDA, the PyTorch reference on CPU), \"triton\" (the kernel; an error "
                             "where it cannot run), \"reference\" (index_select + matmul everywhere)",
                     choices=KERNELS)

    @property
    def exact(self) -> bool:
        return self.ratio >= 1


@dataclass(frozen=True)
class ApproxTrainConfig(ApproxConfig):
    """The approx methods' hyper-parameters: the sampling plus the training-data subset."""

    train_subset: int | None = hp(None, "train on a fixed subset of this many training samples (the same subset "
                                        "for every method and seed) to keep smoke trials short", low=1)
