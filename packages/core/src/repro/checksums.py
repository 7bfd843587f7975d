"""File hashing and the one checksum check every data file passes before use."""

from __future__ import annotations

import hashlib
from pathlib import Path

from repro.errors import ReproError


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str, algorithm: str = "sha256", fix: str = "") -> None:
    """Refuse *path* unless its hash is *expected*; the message names file, both hashes and the fix."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ReproError(
            f"checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}. "
            f"The file is corrupted or truncated and was not loaded. "
            f"{fix or 'Delete it and run `repro data prepare` again.'}"
        )
