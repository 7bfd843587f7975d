"""The Trainer's GPU switches: precision, memory format, TF32, compilation, fast mode, warm-up.

Every switch is a core hyper-parameter (``repro.trainer.GradientConfig``), so an experiment or a
method sets it like any other; left at ``None`` it takes the default of the trial's scale and
device (:func:`resolve`). On CUDA:

==================  ==============  ===============  =========================================
switch              smoke           paper            what it does
==================  ==============  ===============  =========================================
``precision``       fp32            fp32             ``bf16``: forward and loss under
                                                     ``torch.autocast(bfloat16)``
``tf32``            off             on               TF32 matmuls and cuDNN convolutions
``channels_last``   off             on (4-D input)   model and 4-D batches in ``channels_last``
``compile``         off             off              ``torch.compile`` the training forward
``deterministic``   on              off              on: deterministic algorithms,
                                                     ``cudnn.benchmark`` off; off: the fast mode
``warmup_steps``    5               5                first steps of a process off the clock
==================  ==============  ===============  =========================================

On the CPU every switch but ``warmup_steps`` is ignored (the CPU kernels are deterministic
already) and ``warmup_steps`` defaults to 0, so CPU results do not change. The switches that
applied are recorded in every trial's result JSON (``performance``) and its report.

Warm-up: the first ``warmup_steps`` optimizer steps a process runs (after a resume too: lazy CUDA
and cuDNN start-up, autotuning and compilation happen once per process) train as usual but run
with the training clock stopped; their wall time is reported apart as ``warmup_time_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import torch
from torch import nn

from repro.timing import TrainClock

PRECISIONS = ("fp32", "bf16")
CUDA_WARMUP_STEPS = 5


@dataclasses.dataclass(frozen=True)
class Performance:
    """The switches that apply to one trial (after :func:`resolve`)."""

    precision: str = "fp32"
    tf32: bool = False
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = True
    warmup_steps: int = 0

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve(device: torch.device, scale: str, *, precision: str | None = None, tf32: bool | None = None,
            channels_last: bool | None = None, compile: bool | None = None,  # noqa: A002 - the switch's name
            deterministic: bool | None = None, warmup_steps: int | None = None) -> Performance:
    """The switches of a trial at *scale* on *device*: each given value, else its default (module
    docstring). On the CPU only ``warmup_steps`` applies."""
    if device.type != "cuda":
        return Performance(warmup_steps=warmup_steps or 0)
    paper = scale == "paper"
    return Performance(
        precision=precision or "fp32",
        tf32=paper if tf32 is None else tf32,
        channels_last=paper if channels_last is None else channels_last,
        compile=bool(compile),
        deterministic=(not paper) if deterministic is None else deterministic,
        warmup_steps=CUDA_WARMUP_STEPS if warmup_steps is None else warmup_steps,
    )


def apply(perf: Performance, device: torch.device, model: nn.Module) -> nn.Module:
    """Set the process-wide CUDA flags of *perf* (all of them, every trial: one process may run
    several) and put *model* in its memory format. Nothing on the CPU."""
    if device.type != "cuda":
        return model
    torch.backends.cuda.matmul.allow_tf32 = perf.tf32
    torch.backends.cudnn.allow_tf32 = perf.tf32
    torch.use_deterministic_algorithms(perf.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not perf.deterministic
    if perf.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def training_forward(perf: Performance, forward: nn.Module) -> Any:
    """The module (or its compiled version) that the training forward runs through."""
    return torch.compile(forward) if perf.compile else forward


def autocast(perf: Performance, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The precision context of the training forward and loss (a no-op in fp32 and on the CPU)."""
    if perf.precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_batch(perf: Performance, x: torch.Tensor) -> torch.Tensor:
    """A training batch in the memory format of *perf* (4-D image batches only; a device copy)."""
    if perf.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class Warmup:
    """Runs the first *steps* optimizer steps of this process with *clock* stopped and times them
    apart (``elapsed``, seconds, added to the *elapsed* already recorded). Call :meth:`before_step`
    before each step, :meth:`after_step` after it and :meth:`end` where training stops or pauses."""

    def __init__(self, clock: TrainClock, steps: int, device: torch.device, elapsed: float = 0.0) -> None:
        self.clock, self.steps, self.device = clock, steps, device
        self.elapsed = elapsed
        self.done = 0  # steps run in this process
        self._started: float | None = None
        self._clock_was_running = False

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def before_step(self) -> None:
        if self.done >= self.steps:
            self.end()
        elif self._started is None:
            self._clock_was_running = self.clock.running
            self.clock.stop()  # (synchronises)
            self._started = time.perf_counter()

    def after_step(self) -> None:
        self.done += 1

    def end(self) -> None:
        if self._started is None:
            return
        self._sync()
        self.elapsed += time.perf_counter() - self._started
        self._started = None
        if self._clock_was_running:
            self.clock.start()
