"""The methods through the core: shared-workload setups, a short training on the digits workloads,
the variance probe's numbers in the summary, and validation of bad hyper-parameters."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from repro import catalog
from repro.checkpoint import Checkpointer
from repro.datasets import load_prepared
from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.run import RunContext, summarise
from repro.testing import temp_project
from repro.timing import TrainClock

from repro_fqt.methods import METHODS
from repro_fqt.paper import PAPER

ROOT = Path(__file__).resolve().parents[3]
BOARD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}  # a stand-in for the board's gradient settings


@pytest.fixture
def digits_project(tmp_path, monkeypatch):
    return temp_project(tmp_path, ROOT, monkeypatch, ("digits",))


def _ctx(workload: str, method: str, root: Path) -> RunContext:
    wl = catalog.get_workload(workload)
    dev = torch.device("cpu")
    torch.manual_seed(0)
    return RunContext(paper="fqt", experiment=workload, method=method, seed=0, scale="smoke", workload=wl,
                      data=wl.split(load_prepared(wl.dataset)), device=dev, clock=TrainClock(dev),
                      checkpoint=Checkpointer(root / "ckpt" / f"{workload}-{method}.pt"),
                      generator=torch.Generator().manual_seed(0), progress=False)


def _board_run(workload: str, method: str, root: Path, epochs: int | None, **extra) -> dict:
    spec = METHODS[method]
    wl = catalog.get_workload(workload)
    ctx = _ctx(workload, method, root)
    epochs = epochs or wl.max_epochs
    spec.fit(ctx, {**BOARD, **spec.setup_for(wl), "epochs": epochs, "eval_every": epochs, **extra, **spec.fixed})
    return summarise(ctx)


def test_shared_workload_setups():
    for wl_name in ("digits_mlp", "digits_cnn"):
        wl = catalog.get_workload(wl_name)
        for method in METHODS.values():
            assert method.setup_for(wl) == {}  # the method's own defaults: 8-bit forward, its gradient bits
    for wl_name in ("mnist_mlp", "mnist_cnn", "cifar10_resnet18"):  # one on_workload serves every method
        assert METHODS["bhq4"].setup_for(catalog.get_workload(wl_name)) == {}
    no_layers = SimpleNamespace(name="bare", model="identity", build_model=lambda: nn.Sequential(nn.ReLU()))
    for method in METHODS.values():
        with pytest.raises(NotApplicable, match="no nn.Linear / nn.Conv2d"):
            method.setup_for(no_layers)


@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", ["exact", "qat", "ptq4", "psq5", "bhq4"])
def test_methods_train_on_the_shared_digits_workloads(digits_project, workload, method):
    """Two epochs through the shared-workload setup and the board's settings (the CNN barely starts
    learning in two epochs; the slow test below checks learning at the full budget)."""
    s = _board_run(workload, method, digits_project, epochs=2)
    assert s["test_accuracy"] > (0.5 if workload == "digits_mlp" else 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_on_the_shared_digits_workloads_at_their_budget(digits_project, workload, method):
    """The workload's default budget (max_epochs at its batch size), as the leaderboard runs it."""
    s = _board_run(workload, method, digits_project, epochs=None)
    assert s["test_accuracy"] > (0.8 if workload == "digits_mlp" else 0.5)


def test_qat_probe_writes_the_variance_numbers(digits_project):
    s = _board_run("digits_mlp", "qat", digits_project, epochs=1, variance_draws=6, variance_bits=[8, 4])
    for q in ("ptq", "psq", "bhq"):
        for b in (8, 4):
            assert s[f"grad_var_{q}{b}"] > 0 and math.isfinite(s[f"grad_bias_t2_{q}{b}"])
    for b in (8, 4):
        assert {f"grad_var_ratio_psq_ptq_b{b}", f"grad_var_ratio_bhq_psq_b{b}"} <= set(s)
    assert s["grad_var_psq4"] > s["grad_var_psq8"]


def test_the_probe_is_off_the_training_clock(digits_project):
    base = _board_run("digits_mlp", "qat", digits_project, epochs=1)
    probed = _board_run("digits_mlp", "qat", digits_project, epochs=1, variance_draws=8)
    assert "grad_var_bhq4" in probed and "grad_var_bhq4" not in base
    assert base["test_accuracy"] == probed["test_accuracy"]  # the probe changes nothing in training


def test_bad_hyperparameters_name_the_key():
    spec = METHODS["psq4"]
    with pytest.raises(ReproError, match="'bwbits'"):
        spec.validate({**spec.fixed, "bwbits": 1})
    with pytest.raises(ReproError, match="'variance_bits'"):
        spec.validate({**spec.fixed, "variance_bits": [8, 1]})
    with pytest.raises(ReproError, match="bhq, psq, ptq"):
        METHODS["qat"].validate({**METHODS["qat"].fixed, "grad_quantizer": "fp8"})
    with pytest.raises(ReproError, match="fixed switch"):
        spec.hparams({"bbits": 6})


def test_methods_are_the_papers_grid():
    assert set(METHODS) == {"exact", "qat"} | {f"{q}{b}" for q in ("ptq", "psq", "bhq") for b in (8, 6, 5, 4)}
    assert [m.name for m in METHODS.values() if m.is_baseline] == ["exact"]
    for name, m in METHODS.items():
        if name not in ("exact", "qat"):
            assert m.fixed == {"mode": "fqt", "grad_quantizer": name[:3], "bbits": int(name[3:])}
    smoke = PAPER.experiments_at("smoke")["mnist_cnn"].methods
    assert smoke["qat"]["variance_draws"] > 0 and all("variance_draws" not in hp for m, hp in smoke.items() if m != "qat")
    assert set(PAPER.experiments_at("paper")["cifar10_preact_resnet56"].methods) == set(METHODS)
