"""Checkpoint + resume for any method: a dict of tensors and plain values, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repro.files import save_torch


class Checkpointer:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: dict[str, Any]) -> None:
        save_torch(state, self.path)  # a crash mid-write never leaves a half checkpoint

    def load(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
