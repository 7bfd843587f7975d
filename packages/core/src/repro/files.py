"""Atomic file writes: write beside the target, then rename.

An interrupted job therefore never leaves a file that a later run (Snakemake, DVC, a human)
could mistake for a finished one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(out: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the temp file onto *out* (with the permissions a plain
    ``open()`` would give it: ``mkstemp`` makes it 0600, whatever the umask)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN/inf: write null, so browsers and ``dvc metrics show`` can read the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json(obj: Any, out: Path) -> Path:
    text = json.dumps(_finite_or_none(obj), indent=2, allow_nan=False, default=str)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_text(text: str, out: Path) -> Path:
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text))


def save_torch(obj: Any, out: Path) -> Path:
    def write(tmp: str) -> None:
        # Through a file object: given a path, torch names the zip records after the (random) temp
        # file, so identical tensors would hash differently on every write.
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)

    return atomic_write(out, write)


def read_json_number(value: Any) -> float:
    """Inverse of the null-for-NaN convention."""
    return math.nan if value is None else float(value)
