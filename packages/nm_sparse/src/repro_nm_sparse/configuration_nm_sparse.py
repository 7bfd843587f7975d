"""Hyper-parameters of N:M sparse training, typed and validated by ``repro.hparams``.

``sparsity`` is each method's fixed switch (dense / forward-only N:M / bidirectional N:M); ``decay``
is fixed to 0 for plain STE. Everything else — the N:M pattern included — is tunable, so the same
method runs at 2:4, 2:8, 4:8, ... from an experiment's hyper-parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError
from repro.hparams import hp

from repro_nm_sparse.masks import compressible_to_2of4

SPARSITIES = ("dense", "forward", "bidirectional")
BACKENDS = ("masked", "semi_structured")
MASK_KERNELS = ("auto", "reference", "triton")


@dataclass(frozen=True)
class NmSparseConfig:
    """How every eligible Linear / Conv2d of the model is sparsified during training."""

    sparsity: str = hp("forward", "where the N:M weights are used: 'dense' (no masks: the baseline), 'forward' "
                                  "(W ⊙ M_f in the forward pass; the activation gradient through the same "
                                  "masked weights: STE / SR-STE), 'bidirectional' (BDWP: W ⊙ M_f forward, "
                                  "W ⊙ M_b with a separate mask along the output dimension in the "
                                  "activation-gradient pass); the weight gradient is dense in all",
                        choices=SPARSITIES)
    n: int = hp(2, "N of N:M: weights kept per group (the paper's 2:8 -> n=2)", low=1)
    m: int = hp(8, "M of N:M: group size along the GEMM's reduction dimension", low=1)
    decay: float = hp(2e-4, "λ_w of SR-STE (dL/dW = dL/dW̃ + λ_w (1 − M) ⊙ W; the official code's "
                            "decay=0.0002); 0 = plain STE", low=0)
    skip_first: bool = hp(False, "leave the model's first Linear/Conv2d dense (the SR-STE ResNet sparsifies its "
                                 "stem conv; a layer whose sizes are not multiples of M stays dense anyway)")
    skip_last: bool = hp(True, "leave the model's last Linear/Conv2d (the classifier) dense, as the SR-STE "
                               "ResNet keeps its fc layer dense")
    backend: str = hp("masked", "'masked': dense GEMMs on masked weights (fp32, any device; the reference); "
                                "'semi_structured': CUDA 2:4 sparse tensor cores in bf16 for the sparse "
                                "GEMMs, bf16 dense GEMMs elsewhere (falls back to 'masked', recorded as "
                                "semi_structured_used = 0, where no 2:4 backend works)", choices=BACKENDS)
    mask_kernel: str = hp("auto", "who computes the masks each step: 'auto' (the fused Triton kernel on CUDA, "
                                  "the PyTorch reference elsewhere), 'reference', 'triton'", choices=MASK_KERNELS)
    train_subset: int | None = hp(None, "train on a fixed subset of this many training samples (the same subset "
                                        "for every method and seed) to keep smoke trials short", low=1)

    def __post_init__(self) -> None:
        if self.n > self.m:
            raise ReproError(f"nm_sparse hyper-parameters 'n' and 'm': need n <= m, got n={self.n}, m={self.m}")
        if self.backend == "semi_structured" and self.sparsity != "dense" and not compressible_to_2of4(self.n, self.m):
            raise ReproError(f"nm_sparse hyper-parameter 'backend': 'semi_structured' runs 2:4 sparse tensor cores, "
                             f"which need an N:M pattern inside 2:4 (2:4, 1:4, 2:8, ...); got n={self.n}, m={self.m}")
