"""Hyper-parameters of exact training, QAT and FQT, typed and validated by ``repro.hparams``.

The names follow the official code's flags (``main.py`` of cjf00000/StatQuant): ``abits``,
``wbits``, ``biasbits`` (forward), ``bbits`` (activation-gradient path, the bitwidth the paper
varies), ``bwbits`` (weight-gradient path of gradient bifurcation). ``grad_quantizer`` stands for
the reference's ``--persample`` / ``--hadamard`` pair: ptq = (False, False), psq = (True, False),
bhq = (True, True). ``mode`` is the reference's ``-c`` / ``--qa --qw --qg``: exact = plain layers,
qat = ``--qa=True --qw=True --qg=False``, fqt = ``--qg=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError
from repro.hparams import hp

from repro_fqt.quantizers import SCHEMES

MODES = ("exact", "qat", "fqt")


@dataclass(frozen=True)
class FQTConfig:
    """One training method of the paper: exact, QAT, or FQT with a gradient quantizer at a bitwidth."""

    mode: str = hp("fqt", "exact: plain layers; qat: 8-bit forward (STE), exact backward; "
                          "fqt: qat + quantized gradients (gradient bifurcation)", choices=MODES)
    grad_quantizer: str = hp("bhq", "FQT activation-gradient quantizer: ptq (per tensor), psq (per sample), "
                                    "bhq (block Householder)", choices=SCHEMES)
    bbits: int = hp(8, "FQT activation-gradient bits b (the paper varies 8, 6, 5, 4)", low=2, high=16)
    bwbits: int = hp(8, "FQT weight-gradient bits (per tensor for ptq, per column for psq/bhq)", low=2, high=16)
    abits: int = hp(8, "activation (layer input) bits, per tensor, nearest rounding, STE", low=2, high=16)
    wbits: int = hp(8, "weight bits, per tensor, nearest rounding, STE", low=2, high=16)
    biasbits: int = hp(16, "bias bits of linear layers (conv biases stay unquantized, as the reference)",
                       low=2, high=24)
    train_subset: int | None = hp(None, "train on a fixed subset of this many training samples, the same for "
                                        "every method and seed (None: the whole training split)", low=1)
    variance_draws: int = hp(0, "gradient-variance probe at the end of training: quantization draws per "
                                "(quantizer, bits); 0: no probe", low=0)
    variance_batches: int = hp(1, "probe: training batches (of the training batch size) the variance is "
                                  "measured on", low=1)
    variance_bits: tuple[int, ...] = hp((8, 6, 5, 4), "probe: activation-gradient bitwidths measured")

    def __post_init__(self) -> None:
        bad = [b for b in self.variance_bits if not 2 <= b <= 16]
        if bad or not self.variance_bits:
            raise ReproError(f"fqt hyper-parameter 'variance_bits' must be a non-empty list of integers in "
                             f"[2, 16], got {list(self.variance_bits)!r}")
