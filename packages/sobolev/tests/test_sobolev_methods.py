"""The three methods through the core Trainer: what each loss fits, the per-problem metrics the
claims read, the training-set check, resume, and the shared-workload (leaderboard) setups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from repro import catalog
from repro.checkpoint import Checkpointer
from repro.datasets import load_prepared, prepare
from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import RunContext, make_context, summarise
from repro.testing import temp_project
from repro.timing import TrainClock

from repro_sobolev.data import suite_problems
from repro_sobolev.methods import METHODS, SobolevLoss, check_training_sets
from repro_sobolev.paper import PAPER
from repro_sobolev.sobolev import sobolev_loss

ROOT = Path(__file__).resolve().parents[3]
TINY = {"optimizer": "adam", "lr": 3e-3, "batch_size": 100, "epochs": 2, "eval_every": 1}


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = temp_project(tmp_path, ROOT, monkeypatch, ("digits",))
    prepare(catalog.get_dataset("sobolev_suite"), {"grid": 10})  # a coarse test grid keeps evaluations cheap
    return root


def _ctx(workload: str, method: str, root: Path, seed: int = 0) -> RunContext:
    wl = catalog.get_workload(workload)
    return make_context("sobolev", workload, method, seed, "smoke", wl, root / "ckpt" / f"{workload}-{method}.pt")


def _fit(method: str, root: Path, **overrides) -> RunContext:
    ctx = _ctx("sobolev_suite", method, root)
    spec = METHODS[method]
    spec.fit(ctx, spec.hparams({**TINY, **overrides}))
    return ctx


def test_summary_has_every_metric_the_claims_read(project):
    ctx = _fit("sobolev", project)
    summary = summarise(ctx)
    for claim in PAPER.claims:
        if not claim.not_run:
            assert claim.metric in summary, claim.id
    assert all(k in ctx.history[0] for k in ("val_value_mse_booth_20", "test_grad_mse_mean_100", "train_loss"))
    assert len(ctx.history) == 2  # eval_every 1, 2 epochs


@pytest.mark.parametrize("method,mode", [("regular", "value"), ("sobolev", "sobolev"),
                                         ("stochastic_sobolev", "stochastic")])
def test_the_loss_each_method_trains_on(project, method, mode):
    """The loss the Trainer backpropagates is the method's objective on the model's outputs."""
    ctx = _ctx("sobolev_suite", method, project)
    spec = METHODS[method]
    cfg = spec.hparams({**TINY})
    seen = []
    original = SobolevLoss.before_backward

    def spy(self, state):
        generator_state = state.ctx.generator.get_state()
        original(self, state)
        seen.append((state.loss.detach(), state.outputs.detach(), state.y, generator_state))

    SobolevLoss.before_backward = spy
    try:
        spec.fit(ctx, cfg)
    finally:
        SobolevLoss.before_backward = original
    loss, out, y, gstate = seen[0]
    if mode == "stochastic":
        from repro_sobolev.sobolev import random_directions

        g = torch.Generator()
        g.set_state(gstate)
        v = random_directions(tuple(out.shape[:2]), 2, g)
        expected = sobolev_loss(out, y, mode, 1.0, v)
    else:
        expected = sobolev_loss(out, y, mode)
    assert torch.allclose(loss, expected)
    if mode == "value":
        assert float(out[..., 1:].abs().sum()) == 0.0  # no derivatives computed while training
        assert torch.allclose(loss, sobolev_loss(out, y, "value"))
    else:
        assert float(loss) > float(sobolev_loss(out, y, "value"))  # the derivative term is in


def test_sobolev_and_regular_start_alike_and_then_differ(project):
    """Same seed, same initialisation; the derivative term changes the very first update."""
    a, b = _fit("regular", project, epochs=1), _fit("sobolev", project, epochs=1)
    assert a.history[-1]["test_value_mse_booth_20"] != b.history[-1]["test_value_mse_booth_20"]


def test_the_training_set_check_names_the_problem(project):
    ctx = _ctx("sobolev_suite", "sobolev", project)
    y = ctx.data.y_train.clone()
    y[50, 10] = float("nan")  # problem 10 = bukin6_100 loses one of its 100 training points
    ctx.data = dataclasses.replace(ctx.data, y_train=y)
    with pytest.raises(ReproError, match="bukin6_100"):
        check_training_sets(ctx, suite_problems(ctx.workload), {n: int(n.rsplit("_", 1)[1])
                                                               for n in suite_problems(ctx.workload)})


@pytest.mark.parametrize("method", [pytest.param("regular", marks=pytest.mark.slow),
                                    pytest.param("sobolev", marks=pytest.mark.slow), "stochastic_sobolev"])
def test_interrupted_run_resumes_to_the_same_history(project, method):
    """(tests/test_papers_generic.py resumes every method too; the stochastic one also replays its
    random directions from the checkpointed generator.)"""
    class Interrupted(Exception):
        pass

    hp = METHODS[method].hparams({**TINY, "epochs": 3, "checkpoint_every": 1})
    straight = _ctx("sobolev_suite", method, project, seed=1)
    METHODS[method].fit(straight, hp)
    straight.checkpoint.clear()
    first = _ctx("sobolev_suite", method, project, seed=1)
    save = first.save_checkpoint

    def save_then_die(state):
        save(state)
        raise Interrupted

    first.save_checkpoint = save_then_die
    with pytest.raises(Interrupted):
        METHODS[method].fit(first, hp)
    resumed = _ctx("sobolev_suite", method, project, seed=1)
    METHODS[method].fit(resumed, hp)
    drop = {"train_time_s", "train_cpu_time_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight.history]


# --- shared workloads (leaderboard) ---------------------------------------------------------------

def test_setups_on_shared_workloads():
    for name in ("digits_mlp", "digits_cnn", "mnist_mlp", "cifar10_resnet18", "sine", "mexican_hat"):
        wl = catalog.get_workload(name)
        assert METHODS["regular"].setup_for(wl) == {}
        for method in ("sobolev", "stochastic_sobolev"):
            with pytest.raises(NotApplicable, match="input derivatives"):
                METHODS[method].setup_for(wl)
    suite = catalog.get_workload("sobolev_suite")
    assert all(METHODS[m].setup_for(suite) == {} for m in METHODS)


BOARD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}  # a stand-in for the board's gradient settings


@pytest.mark.parametrize("epochs", [1, pytest.param(None, marks=pytest.mark.slow)])
@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
def test_regular_trains_on_the_shared_digits_workloads(project, workload, epochs):
    """The regular baseline outside this package is the core's plain gradient descent (one epoch;
    slow: the workload's default budget, as the leaderboard runs it)."""
    spec = METHODS["regular"]
    wl = catalog.get_workload(workload)
    dev = torch.device("cpu")
    torch.manual_seed(0)
    ctx = RunContext(paper="sobolev", experiment=workload, method="regular", seed=0, scale="smoke", workload=wl,
                     data=wl.split(load_prepared(wl.dataset)), device=dev, clock=TrainClock(dev),
                     checkpoint=Checkpointer(project / "ckpt" / f"{workload}.pt"),
                     generator=torch.Generator().manual_seed(0), progress=False)
    epochs = epochs or wl.max_epochs
    spec.fit(ctx, spec.hparams({**BOARD, **spec.setup_for(wl), "epochs": epochs, "eval_every": epochs}))
    accuracy = summarise(ctx)["test_accuracy"]
    assert 0.0 <= accuracy <= 1.0 and (workload != "digits_mlp" or accuracy > 0.5)
    if epochs > 1:
        assert accuracy > (0.9 if workload == "digits_mlp" else 0.3)


def test_sobolev_refuses_a_workload_without_derivatives_at_fit_time(project):
    wl = catalog.get_workload("digits_mlp")
    ctx = make_context("sobolev", "digits_mlp", "sobolev", 0, "smoke", wl, project / "ckpt" / "x.pt")
    with pytest.raises(NotApplicable, match="class labels"):
        METHODS["sobolev"].fit(ctx, METHODS["sobolev"].hparams({**BOARD, "epochs": 1}))
