"""Hyper-parameters of AutoAssist and its baselines, typed and validated by ``repro.hparams``.

Defaults follow the reference code (zhangjiong724/autoassist-exp, ``image_classification``):
base_prob b = 0.3, EMA factor 0.75, assistant lr 0.01 (per batch), L2 1e-3, target "mean".
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp

SELECTIONS = ("all", "loss_is", "autoassist")
MODES = ("sync", "async")
BATCHINGS = ("fill", "thin")
KERNELS = ("auto", "triton", "reference")


@dataclass(frozen=True)
class AutoAssistConfig:
    """How the batch stream is shrunk."""

    selection: str = hp(
        "autoassist", "a fixed switch of each method: \"all\" (plain SGD: every instance is back-propagated), "
        "\"loss_is\" (baseline: a no-grad forward of the Boss scores the batch, instance i is kept with "
        "probability b + (1 − b)·ℓ_i / max_j ℓ_j), \"autoassist\" (kept with b + (1 − b)·σ(wᵀx_i + u_{y_i}))",
        choices=SELECTIONS)
    base_prob: float = hp(0.3, "b, the floor on the acceptance probability", low=0, high=1)
    mode: str = hp("sync", "\"sync\" (the Assistant is updated in the Boss's thread right after each step: "
                           "deterministic) or \"async\" (a background thread trains it from a queue of the "
                           "Boss's reported losses; the Boss never waits)", choices=MODES)
    assistant_lr: float = hp(0.01, "SGD step size of the Assistant (logistic regression), per batch: a report of "
                                   "n instances moves the parameters by (assistant_lr / n)·(Σ_i gradient_i + λ·w), "
                                   "the reference's rule (the mean gradient with step assistant_lr)", low=0)
    assistant_l2: float = hp(1e-3, "L2 penalty λ of the Assistant", low=0)
    ema: float = hp(0.75, "α of the exponential moving average of the loss (the Assistant's target threshold)",
                    low=0, high=1, high_open=True)
    queue_size: int = hp(16, "async only: reports the Boss may have in flight; when full, a report is dropped "
                             "(counted) instead of blocking the Boss", low=1)
    assistant_seed_offset: int = hp(1_000_003, "the acceptance coin flips use their own generator seeded with "
                                               "ctx.seed + offset (selection does not perturb the Trainer's "
                                               "shuffling stream)", low=0)
    batching: str = hp(
        "fill", "how accepted instances become optimizer steps (loss_is and autoassist; all is never affected). "
        "\"fill\" (default, the reference loader): accepted instances are buffered across the Trainer's "
        "candidate batches and every optimizer step gets exactly B of them (B = the Trainer's batch size); "
        "a candidate batch that leaves fewer than B in the buffer yields no step; the buffer carries over "
        "epoch ends (the reference's sampler is one endless stream) and what is left at the end of training "
        "(< B) is never back-propagated. \"thin\": each candidate batch of B is thinned to its accepted "
        "instances, ~B × acceptance per step, one step per candidate batch", choices=BATCHINGS)
    kernel: str = hp("auto", "the Boss's autoassist selection: \"auto\" (the fused Triton selection kernel on "
                             "CUDA, the PyTorch reference on CPU), \"triton\" (the kernel; an error where it "
                             "cannot run), \"reference\" (PyTorch everywhere); both make the same decisions",
                     choices=KERNELS)
