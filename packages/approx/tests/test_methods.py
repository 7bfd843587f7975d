"""Methods through the core Trainer on fake MNIST-shaped data: tiny runs, MAC records, exact resume.

The context is built as ``repro.run.build_context`` builds it (the workload's validation split
carved out of the training data), and the resume check is the generic one of
``tests/test_papers_generic.py``: an interrupted run, resumed from its first checkpoint, records
exactly the uninterrupted history (wall and CPU clocks aside) and the same forward evaluations.
"""

from __future__ import annotations

import math

import pytest
import torch

import repro.trainer
from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.run import RunContext, seed_everything, summarise
from repro.timing import TrainClock
from repro.workloads import get_workload
from repro_approx.paper import PAPER

TIMING = {"train_time_s", "train_cpu_time_s"}  # the clocks differ between runs; nothing else may


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def fake_mnist():
    g = torch.Generator().manual_seed(0)
    return TensorData(name="mnist", task="classification", x_train=torch.rand(200, 1, 28, 28, generator=g),
                      y_train=torch.randint(0, 10, (200,), generator=g), x_test=torch.rand(100, 1, 28, 28, generator=g),
                      y_test=torch.randint(0, 10, (100,), generator=g), num_classes=10)


def _ctx(data, exp, method, ckpt, seed=0):
    device = torch.device("cpu")
    seed_everything(seed, device)
    workload = get_workload(PAPER.experiment("smoke", exp).workload)
    return RunContext(paper="approx", experiment=exp, method=method, seed=seed, scale="smoke",
                      workload=workload, data=workload.split(data).to(device), device=device,
                      clock=TrainClock(device), checkpoint=Checkpointer(ckpt),
                      generator=torch.Generator().manual_seed(seed), progress=False)


def _hparams(exp, method, extra):
    m = PAPER.method(method)
    hp = m.hparams({**PAPER.experiment("smoke", exp).methods[method], **PAPER.tiny_hparams[method],
                    "train_subset": 128, **extra})
    m.validate(hp)
    return hp


def _fit(data, exp, method, ckpt, extra, interrupt_after_first_checkpoint=False):
    ctx = _ctx(data, exp, method, ckpt)
    hp = _hparams(exp, method, extra)
    if interrupt_after_first_checkpoint:
        save = ctx.save_checkpoint

        def save_then_die(state):
            save(state)
            raise Interrupted

        ctx.save_checkpoint = save_then_die
    PAPER.method(method).fit(ctx, hp)
    return ctx


def _comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def test_context_has_the_workloads_validation_split(fake_mnist, tmp_path):
    ctx = _ctx(fake_mnist, "mnist_mlp", "exact", tmp_path / "c.pt")
    assert ctx.data.x_val is not None and len(ctx.data.x_val) + len(ctx.data.x_train) == len(fake_mnist.x_train)
    assert 0 < len(ctx.data.x_val) < len(fake_mnist.x_train) // 2
    assert len(ctx.data.x_test) == len(fake_mnist.x_test)  # the test split is untouched


@pytest.mark.parametrize(("exp", "method"), [("mnist_mlp", "topk30"), ("mnist_mlp", "bern50"), ("mnist_mlp", "bwd50"), ("mnist_cnn", "topk30")])
def test_tiny_run_and_resume(tmp_path, fake_mnist, exp, method):
    straight = _fit(fake_mnist, exp, method, tmp_path / "a.pt", {})
    s = summarise(straight)
    assert 0 <= s["macs_saved_fraction"] < 1 and s["macs_dense"] > 0
    if method == "topk30":
        assert s["macs_saved_fraction"] == pytest.approx(0.7, abs=0.01)
    wl = straight.workload
    assert math.isfinite(s[wl.quality_metric]) and math.isfinite(s[wl.target_metric])
    assert wl.target_metric.startswith("val_") and wl.quality_metric.startswith("test_")
    assert all(wl.target_metric in row and wl.quality_metric in row for row in straight.history)
    assert s["forward_evals"] > 0 and s["train_time_s"] > 0 and s["eval_time_s"] > 0
    with pytest.raises(Interrupted):
        _fit(fake_mnist, exp, method, tmp_path / "b.pt", {"checkpoint_every": 1},
             interrupt_after_first_checkpoint=True)
    resumed = _fit(fake_mnist, exp, method, tmp_path / "b.pt", {"checkpoint_every": 1})
    assert _comparable(resumed.history) == _comparable(straight.history)
    assert resumed.forward_evals == straight.forward_evals
    assert resumed.extra == straight.extra


def test_cosine_schedule_sets_each_epochs_lr(tmp_path, fake_mnist, monkeypatch):
    # lr_schedule: cosine is the core's LRSchedule hook, also for an approx method.
    seen = []
    original = repro.trainer.LRSchedule.epoch_start

    def record(self, state):
        original(self, state)
        seen.append(state.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(repro.trainer.LRSchedule, "epoch_start", record)
    _fit(fake_mnist, "mnist_mlp", "topk50", tmp_path / "c.pt", {"lr_schedule": "cosine", "epochs": 3, "lr": 0.05})
    assert seen == pytest.approx([0.5 * 0.05 * (1 + math.cos(math.pi * e / 3)) for e in range(3)])
