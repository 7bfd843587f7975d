"""One process of the multi-process Trainer test (``test_distributed.py``): the core's gradient
descent on the ``digits_mlp`` workload (SGD, batch 64: 19 batches per epoch, the last one of 61
samples, which two processes split 31/30), alone or as one of the processes that
``repro.distributed.launch`` starts. Writes ``rank<r>.json`` (its history, forward count, world
size, whether it resumed a checkpoint) into OUT.

    python ddp_worker.py OUT CHECKPOINT [crash EPOCH | undeclared]

``crash EPOCH``: exits with code 3 at the start of that epoch (every process alike), as a killed
trial would; ``undeclared``: trains with a hook that does not declare ``distributed`` (refused
in several processes: the error goes to ``error.txt``, exit code 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from repro import distributed as D
from repro.errors import ReproError
from repro.run import make_context
from repro.trainer import GradientConfig, Hook, TrainState, gradient_descent
from repro.workloads import get_workload


class Crash(Hook):
    distributed = True

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_start(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            raise SystemExit(3)


class Undeclared(Hook):
    """Does nothing, but does not say it may run in several processes."""


def main(out: Path, checkpoint: Path, mode: list[str]) -> int:
    torch.set_num_threads(1)
    if D.launched():
        D.init(torch.device("cpu"))
    try:
        ctx = make_context("test", "exp", "gd", 0, "smoke", get_workload("digits_mlp"), checkpoint)
        resumed = ctx.checkpoint.exists()
        hooks: list[Hook] = []
        if mode[:1] == ["crash"]:
            hooks = [Crash(int(mode[1]))]
        elif mode[:1] == ["undeclared"]:
            hooks = [Undeclared()]
        cfg = GradientConfig(optimizer="sgd", lr=0.05, momentum=0.9, epochs=4, batch_size=64, checkpoint_every=2)
        try:
            gradient_descent(ctx, cfg, hooks=hooks)
        except ReproError as exc:
            (out / "error.txt").write_text(str(exc))
            return 2
        (out / f"rank{D.rank()}.json").write_text(json.dumps({
            "history": ctx.history, "forward_evals": ctx.forward_evals, "world": D.world_size(),
            "resumed": resumed}))
        return 0
    finally:
        D.shutdown()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
