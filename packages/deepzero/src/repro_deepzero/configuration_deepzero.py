"""Hyper-parameters of the DeepZero methods, typed and validated by ``repro.hparams``.

Defaults follow the official code (OPTML-Group/DeepZero, ``tools/misc.py:process_cli`` and
``experiments/*.py``): μ (``--zoo-step-size``) = 5e-3, masks redrawn every 5 epochs
(``--mask-shuffle-interval``), 90% sparsity for sparse CGE, ZO-GraSP with q = 192 and 25 samples
per class. The optimizer, learning rate, schedule and budget are the core's ``GradientConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError
from repro.hparams import hp

ESTIMATORS = ("fo", "rge", "cge")
LAYER_RATIOS = ("zo_grasp", "uniform")


@dataclass(frozen=True)
class DeepZeroConfig:
    """How each training step's gradient is obtained (``estimator`` is each method's fixed switch)."""

    estimator: str = hp("cge", "\"fo\": autograd (first-order baseline); \"rge\": randomised estimate; "
                               "\"cge\": coordinate-wise estimate", choices=ESTIMATORS)
    mu: float = hp(5e-3, "finite-difference step μ of every ZO estimate (official --zoo-step-size)", low=0,
                   low_open=True)
    sparsity: float = hp(0.0, "CGE: share of the conv/linear weight coordinates left out of each step (0: full "
                              "CGE); biases and batch-norm parameters are always estimated", low=0, high=1,
                         high_open=True)
    layer_ratios: str = hp("zo_grasp", "sparse CGE: per-layer pruning ratios from ZO-GraSP at initialisation, or "
                                       "the same ratio in every layer (\"uniform\")", choices=LAYER_RATIOS)
    mask_interval: int = hp(5, "sparse CGE: epochs between redraws of the random per-layer masks "
                               "(official --mask-shuffle-interval)", low=1)
    grasp_queries: int = hp(192, "ZO-GraSP: RGE directions q of each of its two estimates", low=1)
    grasp_per_class: int = hp(25, "ZO-GraSP: samples per class in its batch", low=1)
    grasp_official_quirks: bool = hp(False, "ZO-GraSP: reproduce the official code's accumulating queries "
                                            "(see repro_deepzero.zo_grasp) instead of the algorithm as written")
    feature_reuse: bool = hp(True, "CGE: restart each perturbed forward from the cached input of the perturbed "
                                   "layer (False: a full forward from the network input per query)")
    rank_one: bool = hp(False, "CGE with feature reuse: write the perturbed layer's output as cached output + "
                               "structured rank-one delta (Triton kernel on GPU) instead of recomputing it; "
                               "the same estimate up to float rounding")
    rge_queries: int | None = hp(None, "RGE: directions q per step (None: as many queries as sparse CGE at "
                                       "rge_match_sparsity spends, the equal-query rule)", low=1)
    rge_match_sparsity: float = hp(0.9, "RGE: the CGE sparsity whose per-step query count q matches when "
                                        "rge_queries is None", low=0, high=1, high_open=True)
    train_subset: int | None = hp(None, "train on a fixed subset of this many training samples (the same for "
                                        "every method and seed)", low=1)
    budget_elements: int = hp(1 << 24, "largest activation tensor of one batched evaluation, in elements "
                                       "(bounds memory; more queries per call when larger)", low=1)

    def __post_init__(self) -> None:
        if self.rank_one and not self.feature_reuse:
            raise ReproError("hyper-parameter 'rank_one': needs feature_reuse=True (the rank-one delta restarts "
                             "the forward pass at the perturbed layer)")

    @property
    def forward_mode(self) -> str:
        """The engine mode of the perturbed forwards (``repro_deepzero.engine.MODES``)."""
        return "naive" if not self.feature_reuse else "rank_one" if self.rank_one else "reuse"


@dataclass(frozen=True)
class SparseCGEConfig(DeepZeroConfig):
    """The sparse-CGE methods: the same keys, the paper's 90% sparsity by default."""

    sparsity: float = hp(0.9, "CGE: share of the conv/linear weight coordinates left out of each step (the paper: "
                              "0.9); biases and batch-norm parameters are always estimated", low=0, high=1,
                         high_open=True)
