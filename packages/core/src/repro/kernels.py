"""What every paper's Triton kernels share: the optional import of triton, the interpreter switch
and the choice between the Triton path and the PyTorch reference.

Triton is optional (a CPU-only install uses the references). ``TRITON_INTERPRET=1`` makes Triton
run kernels on the CPU; Triton reads it when it is first imported in a process, so the CPU
kernel tests run in a fresh interpreter (``repro.testing.run_under_triton_interpreter``). Block
sizes are fixed in the packages: ``@triton.autotune`` needs a GPU driver the interpreter lacks.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Collection
from typing import Any

import torch


def interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def triton_available() -> bool:
    """Whether triton is installed (found without importing it)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def load_triton() -> tuple[Any, Any]:
    """``(triton, triton.language)``, or ``(None, None)`` when triton is not installed."""
    try:
        import triton
        import triton.language as tl
    except ImportError:  # pragma: no cover - depends on the install
        return None, None
    return triton, tl


def use_triton(t: torch.Tensor, dtypes: Collection[torch.dtype] | None = None) -> bool:
    """The Triton path for *t*: a CUDA tensor (or the interpreter is on), triton is installed and,
    when *dtypes* is given, *t* has one of them; the PyTorch reference otherwise."""
    if dtypes is not None and t.dtype not in dtypes:
        return False
    return (t.is_cuda or interpreting()) and triton_available()
