"""The paper-scale board workload ``cifar10_fast`` with every installed paper: its strong baseline
is the core's airbench94-style recipe, and the recipe and every applicable entrant take a few steps
on tiny data (a narrow net, CPU) without error, each from the whitened net (``data_init``)."""

from __future__ import annotations

import dataclasses
import math

import torch

from repro import catalog, fast_cifar
from repro import leaderboard as L
from repro.bench_fast_cifar import synthetic_cifar
from repro.checkpoint import Checkpointer
from repro.models import AirbenchNet
from repro.papers import paper_slugs
from repro.run import RunContext, seed_everything
from repro.timing import TrainClock


def test_every_board_entrant_trains_on_the_fast_workload(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ROOT", str(tmp_path))
    bw = L.board_workload("cifar10_fast", "paper")
    assert L.baseline_method(bw) is fast_cifar.METHOD
    wl = dataclasses.replace(catalog.get_workload(bw.workload), model_kwargs={"widths": (8, 16, 16)})
    data = wl.split(synthetic_cifar(200, 40))
    inits: list[int] = []
    original = AirbenchNet.data_init
    monkeypatch.setattr(AirbenchNet, "data_init", lambda self, x: (inits.append(len(x)), original(self, x)))
    ran, board = [], L.entrants(bw, paper_slugs())
    assert not any(e.same_as for e in board)  # with a recipe baseline no plain entrant is its computation
    for e in board:
        if not e.runs:
            continue
        seed_everything(0, torch.device("cpu"))
        ctx = RunContext(paper=e.paper, experiment="board", method=e.method, seed=0, scale="paper", workload=wl,
                         data=data, device=torch.device("cpu"), clock=TrainClock(torch.device("cpu")),
                         checkpoint=Checkpointer(tmp_path / f"{e.paper}_{e.method}.pt"),
                         generator=torch.Generator().manual_seed(0), progress=False)
        budget = {"train_epochs": 1, "batch_size": 64} if e.id == L.BASELINE else {"epochs": 1, "batch_size": 64}
        e.spec(bw).fit(ctx, {**e.hparams, **budget})
        assert ctx.history and math.isfinite(ctx.history[-1]["val_accuracy"]), e.id
        ran.append(e.id)
    assert {L.BASELINE, "wus/wus", "approx/topk50", "autoassist/autoassist", "nm_sparse/srste"} <= set(ran)
    assert len(inits) == len(ran)
