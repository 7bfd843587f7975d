"""Helpers for the packages' tests (imported only by tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_under_triton_interpreter(script: Path, src: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run *script* in a fresh Python with ``TRITON_INTERPRET=1`` (Triton reads it when first
    imported, so it cannot be switched on inside a running test process); *src* goes first on
    ``PYTHONPATH``. Returns the finished process (stdout/stderr captured) for the test to check."""
    path = os.pathsep.join(filter(None, [str(src) if src else "", os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout)
