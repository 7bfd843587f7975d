"""Training wall-clock time, kept apart from evaluation time (time-to-target excludes evaluation)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class TrainClock:
    """Accumulates time only while running; CUDA work is synchronised at every start/stop."""

    def __init__(self, device: torch.device, elapsed: float = 0.0) -> None:
        self.device = device
        self._elapsed = elapsed
        self._started: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def running(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._started is None:
            self._sync()
            self._started = time.perf_counter()

    def stop(self) -> None:
        if self._started is not None:
            self._sync()
            self._elapsed += time.perf_counter() - self._started
            self._started = None

    @property
    def elapsed(self) -> float:
        extra = time.perf_counter() - self._started if self._started is not None else 0.0
        return self._elapsed + extra

    @contextmanager
    def measuring(self) -> Iterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()

    @contextmanager
    def paused(self) -> Iterator[float]:
        """Stop the clock for the block (e.g. evaluation); restart it after if it was running."""
        was_running = self.running
        self.stop()
        try:
            yield self._elapsed
        finally:
            if was_running:
                self.start()
