"""Hyper-parameters of the method, typed and validated by ``repro.hparams``."""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp


@dataclass(frozen=True)
class FqtConfig:
    """TODO: the method's own hyper-parameters (units, the paper's symbol and equation)."""

    enabled: bool = hp(True, "a fixed switch: False runs the baseline through the same hook")
