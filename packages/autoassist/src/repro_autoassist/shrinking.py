"""The Boss/Assistant exchange, and how instance shrinking works in the core Trainer's batch stream
(the hook itself, ``InstanceShrinking``, is in ``methods.py``).

``InstanceShrinking`` is a ``repro.trainer.Hook``: in ``select_batch`` it keeps each instance of
the Trainer's mini-batch (the *candidates*) with probability b + (1 − b)·p_i (AutoAssist: p from
the Assistant; ``loss_is``: p from the Boss's own per-sample loss; ``all``: plain SGD keeps
everything) and in ``after_forward`` it reports the back-propagated instances' losses to the
Assistant.

Batching (``AutoAssistConfig.batching``; ``all`` is never affected):

* ``fill`` (default): like the reference's loader (a ``DataLoader`` of batch size B over
  ``AssistantSampler``, an endless stream of accepted indices), every optimizer step gets exactly
  B accepted instances. Accepted instances go into a FIFO buffer; when it holds at least B, the
  first B are returned as the batch, otherwise an empty batch is returned (the Trainer then skips
  the step). Since a candidate batch holds at most B instances, at most one step follows each
  candidate batch. The buffer is hook state (checkpointed) and carries over epoch ends, like the
  reference's stream, which wraps around the data set without flushing; at the end of training
  what is left (< B, counted as ``leftover_instances``) is never back-propagated.
* ``thin``: each candidate batch is returned thinned to its accepted instances (≈ B × acceptance
  per step, one step per candidate batch).

Two exchanges between Boss (the training loop) and Assistant:

* ``SyncExchange``: the Assistant learns from each report immediately, in the Boss's thread.
  Deterministic; the smoke scale uses it (see README "Choices").
* ``AsyncExchange``: a daemon thread owns the Assistant and trains it from a bounded queue of
  reports; after each update it publishes a snapshot (w, u) by reference assignment. The Boss only
  ever ``put_nowait``s (a full queue drops the report, counted) and reads the latest snapshot, so
  it never waits on the Assistant. If the thread raises, the exchange is marked failed and the
  Boss falls back to plain sampling (accept everything), recorded as ``assistant_failed = 1`` in
  ``ctx.extra`` (logged to MLflow with the summary). Which snapshot a step sees depends on thread
  timing, so async runs are not bit-reproducible.
"""

from __future__ import annotations

import queue
import threading
import time

import torch

from repro_autoassist.assistant import Assistant


class SyncExchange:
    """The Assistant trained in the caller's thread (deterministic)."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.failed = False
        self.error = ""
        self.dropped = 0
        self.worker_time_s = 0.0

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.assistant.w, self.assistant.u

    def report(self, x: torch.Tensor, y: torch.Tensor, losses: torch.Tensor) -> None:
        if self.failed:
            return
        try:
            self.assistant.learn(x, y, losses)
        except Exception as exc:  # noqa: BLE001 - any Assistant failure -> plain sampling
            self.failed, self.error = True, f"{type(exc).__name__}: {exc}"

    def drain(self, timeout: float = 0.0) -> bool:
        return True

    def close(self) -> None: ...


class AsyncExchange:
    """The Assistant trained by a background thread from a bounded queue; the Boss never blocks."""

    _STOP = object()

    def __init__(self, assistant: Assistant, queue_size: int = 16) -> None:
        self.assistant = assistant
        self._published = (assistant.w, assistant.u)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.failed = False
        self.error = ""
        self.dropped = 0
        self.worker_time_s = 0.0
        self._thread = threading.Thread(target=self._work, name="autoassist-assistant", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is self._STOP:
                    return
                if self.failed:
                    continue
                t0 = time.perf_counter()
                try:
                    self.assistant.learn(*item)
                    self._published = (self.assistant.w, self.assistant.u)
                    if self.assistant.w.is_cuda:  # time the update, not its launch
                        torch.cuda.synchronize(self.assistant.w.device)
                except Exception as exc:  # noqa: BLE001 - recorded; the Boss falls back
                    self.failed, self.error = True, f"{type(exc).__name__}: {exc}"
                self.worker_time_s += time.perf_counter() - t0
            finally:
                self._queue.task_done()

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._published

    def report(self, x: torch.Tensor, y: torch.Tensor, losses: torch.Tensor) -> None:
        if self.failed:
            return
        if not self._thread.is_alive():
            self.failed, self.error = True, self.error or "assistant thread is not running"
            return
        try:
            self._queue.put_nowait((x.detach(), y.detach(), losses.detach()))
        except queue.Full:
            self.dropped += 1

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait (at most *timeout* s) until every queued report is processed; only for checkpoints."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.001)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._queue.put(self._STOP, timeout=1.0)
            except queue.Full:
                pass
            self._thread.join(timeout=5.0)
