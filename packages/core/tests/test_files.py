"""Atomic writes give finished files the permissions of a plain open() under the umask
(``mkstemp`` alone would leave every result JSON and checkpoint 0600)."""

from __future__ import annotations

import os
import stat

import torch

from repro.files import save_torch, write_json


def test_results_and_checkpoints_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        j = write_json({"a": 1}, tmp_path / "r.json")
        c = save_torch({"w": torch.zeros(2)}, tmp_path / "c.pt")
        assert stat.S_IMODE(j.stat().st_mode) == 0o644
        assert stat.S_IMODE(c.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_json({}, tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
