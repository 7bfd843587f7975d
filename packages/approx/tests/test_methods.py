"""Methods through the core Trainer on fake MNIST-shaped data: tiny runs, MAC records, exact resume."""

from __future__ import annotations

import pytest
import torch

from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.run import RunContext, seed_everything, summarise
from repro.timing import TrainClock
from repro.workloads import get_workload
from repro_approx.paper import PAPER


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def fake_mnist():
    g = torch.Generator().manual_seed(0)
    return TensorData(name="mnist", task="classification", x_train=torch.rand(200, 1, 28, 28, generator=g),
                      y_train=torch.randint(0, 10, (200,), generator=g), x_test=torch.rand(100, 1, 28, 28, generator=g),
                      y_test=torch.randint(0, 10, (100,), generator=g), num_classes=10)


def _ctx(data, workload, ckpt, seed=0):
    device = torch.device("cpu")
    seed_everything(seed, device)
    return RunContext(paper="approx", experiment=workload, method="m", seed=seed, scale="smoke",
                      workload=get_workload(workload), data=data, device=device, clock=TrainClock(device),
                      checkpoint=Checkpointer(ckpt), generator=torch.Generator().manual_seed(seed), progress=False)


def _fit(data, exp, method, ckpt, extra, interrupt=False):
    ctx = _ctx(data, exp, ckpt)
    hp = {**PAPER.experiment("smoke", exp).methods[method], **PAPER.tiny_hparams[method], "train_subset": 128,
          **extra}
    if interrupt:
        save = ctx.save_checkpoint

        def save_then_die(state):
            save(state)
            raise Interrupted

        ctx.save_checkpoint = save_then_die
    PAPER.method(method).fit(ctx, hp)
    return ctx


def _rows(h):
    return [{k: v for k, v in r.items() if k != "train_time_s"} for r in h]


@pytest.mark.parametrize(("exp", "method"), [("mnist_mlp", "topk30"), ("mnist_mlp", "bern50"), ("mnist_cnn", "bwd50")])
def test_tiny_run_and_resume(tmp_path, fake_mnist, exp, method):
    straight = _fit(fake_mnist, exp, method, tmp_path / "a.pt", {})
    s = summarise(straight)
    assert 0 <= s["macs_saved_fraction"] < 1 and s["macs_dense"] > 0
    if method == "topk30":
        assert s["macs_saved_fraction"] == pytest.approx(0.7, abs=0.01)
    with pytest.raises(Interrupted):
        _fit(fake_mnist, exp, method, tmp_path / "b.pt", {"checkpoint_every": 1}, interrupt=True)
    resumed = _fit(fake_mnist, exp, method, tmp_path / "b.pt", {"checkpoint_every": 1})
    assert _rows(resumed.history) == _rows(straight.history)
    assert resumed.extra == straight.extra
