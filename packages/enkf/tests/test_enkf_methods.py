"""ES-MDA / EnKF and their gradient-descent baselines as methods of the core: typed
hyper-parameters (``repro.hparams``), and ``gd_converged``'s stop on the *validation* RMSE plateau."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from repro import hparams as H
from repro.catalog import get_workload
from repro.errors import ReproError
from repro.testing import spy_trial, temp_project
from repro.trainer import GradientConfig, PlateauStop, split_gradient_hparams

from repro_enkf import methods
from repro_enkf.configuration_enkf import AssimilationConfig
from repro_enkf.paper import PAPER

ROOT = Path(__file__).resolve().parents[3]  # the monorepo root (packages/enkf/tests -> ...)


# --- typed hyper-parameters of ES-MDA / EnKF -------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("ensemble_size", 1), ("ensemble_size", 2.5), ("ensemble_size", True), ("ensemble_size", "100"),
    ("n_assimilations", 0), ("inflation", "linear"), ("inflation", 1),
    ("obs_std", 0.0), ("obs_std", -1.0), ("obs_std", math.nan), ("obs_std", math.inf), ("obs_std", "0.1"),
    ("min_obs_std", 0.0), ("init_std", -0.5), ("batch_size", 0), ("checkpoint_every", -1),
])
@pytest.mark.parametrize("method", ["esmda", "enkf"])
def test_bad_assimilation_hparam_names_the_key(method, key, value):
    with pytest.raises(ReproError, match=repr(key)) as err:
        PAPER.method(method).validate({"ensemble_size": 10, key: value})
    assert repr(value) in str(err.value)
    with pytest.raises(ReproError, match=repr(key)):
        H.parse(AssimilationConfig, {key: value}, "ES-MDA/EnKF")


def test_bad_inflation_names_the_choices():
    with pytest.raises(ReproError, match="linear") as err:
        methods.validate({"inflation": "linear"})
    assert "constant" in str(err.value) and "geometric" in str(err.value)


def test_unknown_assimilation_key_names_the_valid_ones():
    with pytest.raises(ReproError, match="ensemble") as err:
        methods.validate({"ensemble": 10})
    assert all(k in str(err.value) for k in H.keys(AssimilationConfig))


def test_assimilation_config_parses_typed_values_and_nulls():
    cfg = H.parse(AssimilationConfig, {"ensemble_size": 50, "obs_std": None, "init_std": 1, "min_obs_std": 0.02},
                  "ES-MDA/EnKF")
    assert cfg == AssimilationConfig(ensemble_size=50, init_std=1.0, min_obs_std=0.02)
    assert isinstance(cfg.init_std, float) and cfg.obs_std is None
    assert H.parse(AssimilationConfig, {}, "ES-MDA/EnKF") == AssimilationConfig()
    assert AssimilationConfig(ensemble_size=100, n_assimilations=32).forward_budget() == 3200


def test_methods_use_the_package_validate_and_document_every_field():
    for name in ("esmda", "enkf"):
        m = PAPER.method(name)
        assert m.validate is methods.validate and not m.fixed and not m.is_baseline
        for key in H.keys(AssimilationConfig):
            assert f"`{key}`" in m.hparams_doc, (name, key)
    for name in ("gd_equal_budget", "gd_converged"):
        assert PAPER.method(name).is_baseline
    assert PAPER.methods is methods.METHODS


# --- the gradient-descent baselines -----------------------------------------------------------------

@pytest.mark.parametrize(("hparams", "key"), [({"plateau_patiense": 3}, "plateau_patiense"),
                                              ({"plateau_patience": 0}, "plateau_patience"),
                                              ({"plateau_min_delta": -1.0}, "plateau_min_delta"),
                                              ({"ensemble_size": 10}, "ensemble_size"),  # not a GD key
                                              ({"optimizer": "lbfgs"}, "optimizer")])
@pytest.mark.parametrize("method", ["gd_equal_budget", "gd_converged"])
def test_gd_baselines_refuse_bad_keys(method, hparams, key):
    with pytest.raises(ReproError, match=key):
        PAPER.method(method).validate(hparams)


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_budgets_of_the_gd_baselines(scale):
    for exp in PAPER.experiments_at(scale).values():
        esmda = H.parse(AssimilationConfig, PAPER.trial_hparams(scale, exp.name, "esmda"), "esmda")
        equal, _ = split_gradient_hparams(PAPER.trial_hparams(scale, exp.name, "gd_equal_budget"), None, "gd")
        converged, _ = split_gradient_hparams(PAPER.trial_hparams(scale, exp.name, "gd_converged"), None, "gd")
        assert equal.epochs == esmda.forward_budget() and equal.plateau_patience is None  # no early stop
        assert converged.plateau_patience == 20 and converged.plateau_min_delta == 1e-4
        assert converged.epochs > equal.epochs


def _state(workload: str, **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(ctx=SimpleNamespace(workload=get_workload(workload)), evaluated=True,
                           last_eval=metrics, stop=False)


def test_plateau_stop_monitors_the_validation_rmse():
    """gd_converged's stop reads val_rmse (the workload's target metric): a flat validation RMSE
    stops it while the training loss still falls; a falling one keeps it going while the training
    loss and the test RMSE are flat."""
    assert get_workload("sine").target_metric == "val_rmse"
    stop = PlateauStop(patience=2, min_delta=1e-4)
    assert stop.decides_on_validation
    for i in range(3):
        st = _state("sine", val_rmse=0.5, test_rmse=0.5 - 0.1 * i, train_loss=1.0 / (i + 1))
        stop.epoch_end(st)
    assert st.stop and stop.bad == 2

    go = PlateauStop(patience=2, min_delta=1e-4)
    for i in range(6):
        st = _state("sine", val_rmse=0.5 * 0.9 ** i, test_rmse=0.5, train_loss=1.0)
        go.epoch_end(st)
        assert not st.stop
    assert go.bad == 0


# --- trials ---------------------------------------------------------------------------------------

@pytest.fixture
def sine_project(tmp_path, monkeypatch):
    """A temp project (the real params.yaml and schema) with the sine dataset prepared."""
    return temp_project(tmp_path, ROOT, monkeypatch, ("sine",))


def _trial(method: str, monkeypatch, overrides: dict, shift_val: float = 0.0) -> SimpleNamespace:
    """One smoke trial on sine, spying on the Trainer and every evaluation; *shift_val* moves the
    validation targets (a validation RMSE that cannot improve)."""
    def shift(ctx):
        if shift_val:
            ctx.data = dataclasses.replace(ctx.data, y_val=ctx.data.y_val + shift_val)

    return spy_trial("enkf", "sine", method, monkeypatch, overrides, prepare_ctx=shift)


def _replay_stop(history: list[dict], patience: int, min_delta: float, metric: str) -> int:
    """The number of evaluations after which a plateau stop on *metric* ends training (or all)."""
    stop = PlateauStop(patience, min_delta, monitor=metric)
    for i, row in enumerate(history):
        st = _state("sine", **row)
        stop.epoch_end(st)
        if st.stop:
            return i + 1
    return len(history)


GD_CONVERGED = {"epochs": 300, "eval_every": 1, "plateau_patience": 3, "plateau_min_delta": 0.01, "lr": 0.05}


def test_gd_converged_stops_when_the_validation_rmse_stalls_though_training_improves(sine_project, monkeypatch):
    spy = _trial("gd_converged", monkeypatch, GD_CONVERGED, shift_val=100.0)
    (trainer,) = spy.trainers
    (stop,) = [h for h in trainer.hooks if isinstance(h, PlateauStop)]
    assert stop.monitor is None and (stop.patience, stop.min_delta) == (3, 0.01)  # the workload's val_rmse
    assert trainer.decides_on_validation and all(spy.decisions)  # its validation evaluations are on the clock
    history = spy.ctx.history
    # val_rmse ~ 100 cannot improve by 1%: the best is the first evaluation, 3 bad ones stop it.
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0, 4.0]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # training itself still improved
    assert not [k for k in spy.reads if k.startswith("test_")] and "val_rmse" in spy.reads


def test_gd_converged_stop_matches_its_validation_rmse(sine_project, monkeypatch):
    spy = _trial("gd_converged", monkeypatch, GD_CONVERGED)
    history = spy.ctx.history
    assert len(history) < GD_CONVERGED["epochs"]  # it converged before the budget
    assert len(history) == _replay_stop(history, 3, 0.01, "val_rmse")
    assert all("val_rmse" in row and "test_rmse" in row for row in history)
    assert not [k for k in spy.reads if k.startswith("test_")]


def test_gd_equal_budget_runs_its_whole_budget_and_decides_nothing(sine_project, monkeypatch):
    spy = _trial("gd_equal_budget", monkeypatch, {"epochs": 20, "eval_every": 5}, shift_val=100.0)
    (trainer,) = spy.trainers
    assert not any(isinstance(h, PlateauStop) for h in trainer.hooks)
    assert not trainer.decides_on_validation and not any(spy.decisions)
    assert [row["epoch"] for row in spy.ctx.history] == [5.0, 10.0, 15.0, 20.0]


@pytest.mark.parametrize("method", ["esmda", "enkf"])
def test_assimilation_trials_score_both_splits_off_the_clock(sine_project, monkeypatch, method):
    spy = _trial(method, monkeypatch, PAPER.tiny_hparams[method])
    assert not spy.trainers  # not gradient descent: no Trainer
    assert not any(spy.decisions)  # they decide nothing from evaluations
    history = spy.ctx.history
    n = PAPER.tiny_hparams[method]["n_assimilations"]
    assert [row["epoch"] for row in history] == [float(i) for i in range(n + 1)]
    assert all({"val_rmse", "test_rmse", "ensemble_spread"} <= set(row) for row in history)
    assert spy.ctx.extra["spread_ratio"] < 1.0


def test_gradient_config_is_the_core_one():
    # The plateau keys gd_converged uses are the core's GradientConfig fields, validated there.
    assert {"plateau_patience", "plateau_min_delta"} <= set(H.keys(GradientConfig))
