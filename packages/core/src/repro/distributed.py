"""Multi-process (data-parallel) training of one trial: torch's process group and launcher.

``repro run ... --processes N`` starts N copies of the same ``repro run`` command with torch's
elastic launcher (what ``torchrun --standalone`` runs) on this machine; each copy finds itself in
a process group (gloo on CPU, NCCL on CUDA, one GPU per process) and the Trainer wraps the
model in ``torch.nn.parallel.DistributedDataParallel``, which averages the gradients. Each
process takes its slice of every global batch (the same batches, in the same order, as one
process: every process draws the same permutation from the trial's generator), the epoch's
training loss and forward-pass count are summed over the processes, and an evaluation scores the
gathered predictions of all processes, so every process holds the same metrics. Only rank 0
logs to MLflow and writes the result and checkpoints; every process loads a checkpoint to resume.

A method runs in several processes only if it says it can (``Method.distributed``) and every
hook of its Trainer does (``Hook.distributed``): hooks that select or skip samples or steps,
replace the backward pass, freeze parameters mid-run or keep per-process counters would run
differently (or deadlock) in N processes, so such a method is refused, named, before any work.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from repro.errors import ReproError

# Set by torch's launcher (torchrun / elastic_launch) in every process it starts.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def active() -> bool:
    """This process is one of a process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs and writes files."""
    return rank() == 0


def launched() -> bool:
    """This process was started by torch's launcher (``torchrun`` or ``repro run --processes``)."""
    return all(k in os.environ for k in LAUNCH_ENV)


def init(device: torch.device, expected: int | None = None) -> None:
    """Join the launcher's process group: NCCL with one GPU per process on CUDA, gloo on CPU.

    *expected*: the ``--processes`` the command was given (None: take the launcher's)."""
    size = int(os.environ["WORLD_SIZE"])
    if expected is not None and expected != size:
        raise ReproError(f"--processes {expected} does not match the launcher's WORLD_SIZE={size}")
    if device.type == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise ReproError(f"{size} processes per node need {local + 1} GPUs or more; this machine has "
                             f"{torch.cuda.device_count()}")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def check_method(method: Any, paper: str, processes: int) -> None:
    """Refuse a method that cannot train in *processes* > 1 processes (see the module docstring)."""
    if processes > 1 and not getattr(method, "distributed", False):
        raise ReproError(
            f"method {method.name!r} of paper {paper!r} does not support multi-process training "
            f"(processes {processes}; Method.distributed: only gradient methods of the core Trainer whose hooks "
            f"neither select nor skip samples or steps nor keep per-process state do); run it in 1 process "
            f"(--processes 1, processes_per_trial: 1)")


def check_hooks(hooks: Iterable[Any], method: str) -> None:
    """Refuse hooks that do not declare ``distributed = True`` when several processes train."""
    unsafe = [type(h).__name__ for h in hooks if not getattr(h, "distributed", False)]
    if world_size() > 1 and unsafe:
        raise ReproError(
            f"method {method!r} cannot train in {world_size()} processes: its Trainer hook(s) "
            f"{', '.join(unsafe)} do not support multi-process training (Hook.distributed); run it in 1 process")


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model as ``DistributedDataParallel`` sees it (the same parameters; rank 0's broadcast)."""
    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
    return DistributedDataParallel(model)


def shard(x: torch.Tensor) -> torch.Tensor:
    """This process's slice of a global batch (contiguous; sizes differ by at most one)."""
    return x.tensor_split(world_size())[rank()]


def all_sum(values: Sequence[float] | torch.Tensor, device: torch.device) -> list[float]:
    """Sums over the processes (float64)."""
    t = torch.as_tensor(values, dtype=torch.float64).to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics) before an evaluation."""
    for buf in model.buffers():
        dist.broadcast(buf, 0)


def gathered(predict: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """*predict* on this process's slice of each input chunk, gathered from every process in
    order: each process gets the predictions on the whole chunk (and so the same metrics)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        parts = x.tensor_split(world_size())
        local = predict(parts[rank()])
        size = len(parts[0])  # tensor_split puts the remainder in the first slices
        padded = local.new_zeros((size, *local.shape[1:]))
        padded[:len(local)] = local
        out = [torch.empty_like(padded) for _ in parts]
        dist.all_gather(out, padded.contiguous())
        return torch.cat([o[:len(p)] for o, p in zip(out, parts)])
    return run


def launch(processes: int, args: Sequence[str], threads: int | None = None) -> None:
    """Run ``python *args`` in *processes* processes on this machine (torch's elastic launcher,
    ``torchrun --standalone``'s: a rendezvous on 127.0.0.1, no restarts) and wait for all.

    A failed process is a ``ReproError`` naming its rank and exit code (its own error is printed
    above it); a SIGTERM or SIGINT to this process stops every process (each ends its trial as a
    terminated one does) and exits with 128 + the signal. *threads*: ``OMP_NUM_THREADS`` of each
    process."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if processes < 1:
        raise ReproError(f"--processes must be >= 1, got {processes}")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the processes
    for name in ["torch.distributed.elastic", *logging.root.manager.loggerDict]:  # failures: our error below
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=f"repro-{uuid.uuid4().hex}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", local_addr="127.0.0.1",
                          max_restarts=0)
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as exc:
        # the processes that failed first (not those the launcher then stopped with a signal)
        first = {r: f for r, f in exc.failures.items() if f.exitcode > 0} or exc.failures
        failed = ", ".join(f"rank {r} exited with code {f.exitcode}" for r, f in sorted(first.items()))
        raise ReproError(f"multi-process run failed ({processes} processes): {failed}") from None
    except SignalException as exc:  # SIGTERM/SIGINT: the launcher stopped every process; end as they did
        raise SystemExit(128 + int(exc.sigval)) from None


class Untracked:
    """What the processes other than rank 0 get instead of ``repro.tracking.TrackedRun``: the same
    arguments and calls, nothing logged (rank 0's run records the trial)."""

    run_id = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def __enter__(self) -> "Untracked":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None
