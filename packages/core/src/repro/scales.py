"""The two scales every experiment is declared at (a leaf module: imports nothing of the core)."""

from __future__ import annotations

from repro.errors import unknown

SCALES = ("smoke", "paper")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise unknown("scale", scale, SCALES)
    return scale
