"""Hyper-parameters of OTO / HSPG, typed and validated by ``repro.hparams``.

Symbols follow the paper (Chen et al. 2021, Algorithm 1) and the v1 configs
(``train/configs/config_*_hspg.yml``): lambda (``lambda``), N_P (``n_p``), epsilon
(``epsilon``, one per group type in v1: index 3 linear, 4 conv), the step-size decays
(``decays``) and lambda decays (``decays_lambda``). The step size alpha, batch size, momentum
(0 in every v1 config) and epochs are the core's ``GradientConfig`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError
from repro.hparams import hp

REGULARISERS = ("none", "prox_sg", "hspg")
WARMUPS = ("subgradient", "prox")
KERNELS = ("auto", "optimizer", "torch", "triton")


@dataclass(frozen=True)
class OtoConfig:
    """OTO's own hyper-parameters (the core's gradient keys are separate)."""

    regulariser: str = hp("hspg", "fixed switch of the method: none (dense training), prox_sg (group-lasso "
                                  "proximal SGD every step) or hspg (stage 1 for n_p epochs, then half-space steps)",
                          choices=REGULARISERS)
    lmbda: float = hp(1e-3, "group-lasso weight lambda of f(x) + lambda sum_g ||x_g|| (v1: 1e-3; VGG16-BN 5e-4)",
                      low=0)
    n_p: int | None = hp(None, "HSPG stage-1 epochs N_P before the half-space stage (None: a quarter of the "
                               "epochs, the v1 ratio 75/300)", low=0)
    warmup: str = hp("subgradient", "HSPG stage 1: subgradient steps x - alpha (grad + lambda x / ||x||) as the v1 "
                                    "code does, or prox (group soft threshold) as the paper describes",
                     choices=WARMUPS)
    epsilon: float = hp(0.0, "half-space control epsilon for conv groups: project a group to 0 if "
                             "<x_hat, x> < epsilon ||x||^2 (v1: 0)", low=0, high=1, high_open=True)
    epsilon_linear: float | None = hp(None, "epsilon for linear (neuron) groups (None: as epsilon; v1 VGG16 0.99, "
                                            "VGG16-BN 0.9)", low=0, high=1, high_open=True)
    lr_decays: tuple[int, ...] = hp((), "epochs at whose start the step size is divided by 10 (v1 'decays'; "
                                        "empty: the core's lr_schedule)")
    lmbda_decays: tuple[int, ...] = hp((), "epochs at whose start lambda is divided by 10 (v1 'decays_lambda', "
                                           "ImageNet only; a lambda <= 1e-6 becomes 0)")
    kernel: str = hp("auto", "how the grouped parameters are stepped: optimizer (the core optimizer steps; with SGD "
                             "the subgradient is added to the gradients, with Adam & co. applied after the step; "
                             "then the projection), torch (own SGD step, the PyTorch reference), triton (own SGD "
                             "step, the fused Triton kernel), auto (triton on CUDA with SGD, else optimizer)",
                     choices=KERNELS)
    exact_tol: float = hp(1e-5, "largest |slim - full| output difference on the test split that counts as "
                                "the same function (slim_exact)", low=0, low_open=True)

    def __post_init__(self) -> None:
        for key in ("lr_decays", "lmbda_decays"):
            values = getattr(self, key)
            if any(int(v) < 0 for v in values) or list(values) != sorted(values):
                raise ReproError(f"oto hyper-parameter {key!r} must be increasing epochs >= 0, got {list(values)!r}")

    def eps_for(self, kind: str) -> float:
        """epsilon of a ZIG set of kind "conv" or "linear"."""
        if kind == "linear" and self.epsilon_linear is not None:
            return self.epsilon_linear
        return self.epsilon

    def warmup_epochs(self, epochs: int) -> int:
        """N_P for a run of *epochs* epochs."""
        return self.n_p if self.n_p is not None else max(1, epochs // 4)

    def lmbda_at(self, epoch: int) -> float:
        """lambda at (0-based) *epoch*, after the v1 decays (``adjust_lambda``)."""
        lmbda = self.lmbda
        for d in self.lmbda_decays:
            if epoch >= d:
                lmbda = 0.0 if lmbda <= 1e-6 else lmbda / 10.0
        return lmbda
