"""Checkpoint + resume for any method: a dict of tensors and plain values, written atomically.

A checkpoint carries the *key* of the trial that wrote it (``repro.run.trial_key``: the trial's
identity, hyper-parameters, data, code digest, device, threads). A checkpoint with another key —
left by a run of an older code version, other hyper-parameters, another thread count — is never
resumed: the trial starts from scratch, so a resumed result never mixes two setups. Nor is a
checkpoint that cannot be read (written by something else, damaged on disk).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from repro.files import save_torch


class Checkpointer:
    def __init__(self, path: Path, key: str = "") -> None:
        self.path = path
        self.key = key

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: dict[str, Any]) -> None:
        save_torch({**state, "key": self.key}, self.path)  # a crash mid-write never leaves a half checkpoint

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None: no checkpoint, or one this trial must not resume (said on stderr)."""
        if not self.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: start over, never unpickle
            print(f"checkpoint {self.path} is unreadable ({type(exc).__name__}); starting the trial from scratch",
                  file=sys.stderr)
            self.clear()
            return None
        if not isinstance(saved, dict) or saved.get("key", "") != self.key:
            print(f"checkpoint {self.path} was written by another setup of this trial (code, hyper-parameters, "
                  f"data, device or threads changed); starting the trial from scratch", file=sys.stderr)
            self.clear()
            return None
        return saved

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
