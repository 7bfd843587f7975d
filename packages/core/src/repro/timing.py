"""The training clock: wall time and process CPU time, kept apart from evaluation time.

Time-to-target excludes evaluation, except evaluations a method needs to make its own decisions
(``RunContext.evaluate(..., decision=True)``), which run on the clock.

Two readings, both recorded with every trial:

* ``elapsed`` — wall time (``perf_counter``), CUDA work synchronised at every start/stop. The
  measure on a GPU.
* ``cpu_elapsed`` — CPU time of the whole process (``process_time``: every thread, including a
  method's helper threads). On a CPU it is the measure that survives a shared, noisy machine:
  a single-threaded trial's CPU time barely moves when other jobs compete for the cores, where
  its wall time does (see the root README, "Verdict stability").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class TrainClock:
    """Accumulates wall and CPU time only while running."""

    def __init__(self, device: torch.device, elapsed: float = 0.0, cpu_elapsed: float = 0.0) -> None:
        self.device = device
        self._elapsed = elapsed
        self._cpu = cpu_elapsed
        self._started: float | None = None
        self._cpu_started = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def running(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._started is None:
            self._sync()
            self._cpu_started = time.process_time()
            self._started = time.perf_counter()

    def stop(self) -> None:
        if self._started is not None:
            self._sync()
            self._elapsed += time.perf_counter() - self._started
            self._cpu += time.process_time() - self._cpu_started
            self._started = None

    @property
    def elapsed(self) -> float:
        extra = time.perf_counter() - self._started if self._started is not None else 0.0
        return self._elapsed + extra

    @property
    def cpu_elapsed(self) -> float:
        extra = time.process_time() - self._cpu_started if self._started is not None else 0.0
        return self._cpu + extra

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """Run the clock for the block (re-entrant: a block inside a measured one changes nothing)."""
        was_running = self.running
        self.start()
        try:
            yield
        finally:
            if not was_running:
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
