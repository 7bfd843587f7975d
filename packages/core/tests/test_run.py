"""run_trial end to end (real MLflow in a temp SQLite store) and its argument checks."""

from __future__ import annotations

import json
import math
import os

import pytest

from repro import config as cfg
from repro import paths
from repro.checksums import file_digest
from repro.datasets import prepare
from repro.errors import ReproError
from repro.paper import Method
from repro.registry import get_paper
from repro.run import run_trial

SUMMARY_KEYS = {"test_rmse", "test_r2", "train_time_s", "time_to_target_s", "forward_evals", "spread_ratio",
                "eval_time_s", "epochs", "reached_target", "epochs_to_target", "initial_spread", "final_spread"}


@pytest.fixture
def sine_prepared(project, config):
    prepare("sine", cfg.dataset_params(config, "sine"))
    return config


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def test_run_trial_esmda_smoke(project, sine_prepared, mlflow_store):
    out = run_trial("enkf", "sine", "esmda", 0, "smoke", sine_prepared, progress=False)
    assert out == project / "results" / "enkf" / "smoke" / "sine" / "esmda" / "seed0.json"
    result = json.loads(out.read_text())
    assert (result["paper"], result["experiment"], result["method"], result["seed"], result["scale"]) == \
        ("enkf", "sine", "esmda", 0, "smoke")
    summary = result["summary"]
    assert SUMMARY_KEYS <= set(summary)
    # ES-MDA at smoke scale: 100 members x 32 assimilations x 200 training samples
    assert summary["forward_evals"] == 100 * 32 * 200
    assert summary["epochs"] == 32 and len(result["history"]) == 33  # + the initial ensemble
    assert 0 < summary["spread_ratio"] < 1  # the ensemble contracts
    assert 0 < summary["test_rmse"] < 0.5 and summary["test_r2"] > 0.5
    assert summary["train_time_s"] > 0
    if summary["reached_target"]:
        assert 0 < summary["time_to_target_s"] <= summary["train_time_s"]
    else:
        assert summary["time_to_target_s"] is None  # NaN is written as null
    assert result["hparams"] == {"ensemble_size": 100, "n_assimilations": 32}
    assert result["dataset_sha256"] == file_digest(paths.prepared_data_path("sine"))
    assert not (project / ".checkpoints" / "enkf" / "smoke" / "sine" / "esmda" / "seed0.pt").exists()

    c = client()
    exp = c.get_experiment_by_name("enkf")
    assert exp is not None
    runs = c.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [result["mlflow_run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "sine/esmda/seed0"
    tags = run.data.tags
    assert tags["paper"] == "enkf" and tags["method"] == "esmda" and tags["seed"] == "0"
    assert tags["scale"] == "smoke" and tags["experiment"] == "sine"
    assert tags["dataset_sha256"] == result["dataset_sha256"]
    assert tags["git_commit"] == "unknown"  # the temp project is no git checkout
    assert tags["device"].startswith("CPU")
    assert tags["reached_target"] in ("true", "false")
    assert run.data.params["hp.ensemble_size"] == "100" and run.data.params["workload"] == "sine"
    assert run.data.metrics["final.test_rmse"] == pytest.approx(summary["test_rmse"])
    history = c.get_metric_history(run.info.run_id, "test_rmse")
    assert sorted(m.step for m in history) == list(range(33))
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"results.json", "curves.csv", "learning_curve.png"} <= artifacts
    assert (project / "mlartifacts" / "enkf").is_dir()  # artifacts stay inside the project


def test_failed_trial_is_marked_failed_and_leaves_no_result(project, sine_prepared, mlflow_store, monkeypatch):
    paper = get_paper("enkf")

    def boom(ctx, hparams):
        ctx.evaluate(lambda x: x * 0, epoch=0, step=0)
        raise RuntimeError("diverged")

    monkeypatch.setitem(paper.methods, "esmda", Method("esmda", boom, "fails"))
    out = paths.trial_path("enkf", "smoke", "sine", "esmda", 1)
    out.parent.mkdir(parents=True)
    out.write_text("{}")  # a result of an earlier attempt
    with pytest.raises(RuntimeError, match="diverged"):
        run_trial("enkf", "sine", "esmda", 1, "smoke", sine_prepared, progress=False)
    assert not out.exists()
    c = client()
    (run,) = c.search_runs([c.get_experiment_by_name("enkf").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: diverged"


@pytest.mark.parametrize(
    ("experiment", "method", "match"),
    [
        ("nope", "esmda", r"unknown experiment of paper 'enkf' at scale 'smoke' 'nope'; "
                          r"valid choices: mexican_hat, sine"),
        ("sine", "nope", r"unknown method of experiment 'sine' 'nope'; "
                         r"valid choices: enkf, esmda, gd_converged, gd_equal_budget"),
    ],
)
def test_unknown_experiment_or_method(project, config, experiment, method, match):
    with pytest.raises(ReproError, match=match):
        run_trial("enkf", experiment, method, 0, "smoke", config, progress=False)
    assert not (project / "results").exists()
    assert not (project.parent / "mlflow.db").exists()  # failed before touching MLflow


def test_unknown_paper_scale_and_bad_seed(project, config):
    with pytest.raises(ReproError, match=r"unknown paper 'nope'; valid choices: .*\benkf\b"):
        run_trial("nope", "sine", "esmda", 0, "smoke", config)
    with pytest.raises(ReproError, match=r"unknown scale 'huge'"):
        run_trial("enkf", "sine", "esmda", 0, "huge", config)
    with pytest.raises(ReproError, match="seed must be >= 0"):
        run_trial("enkf", "sine", "esmda", -1, "smoke", config)
    assert not (project / "results").exists()


def test_unprepared_data_fails_before_tracking(project, config):
    with pytest.raises(ReproError, match=r"run `repro data prepare sine`"):
        run_trial("enkf", "sine", "esmda", 0, "smoke", config, progress=False)
    assert not (project.parent / "mlflow.db").exists()
    assert not (project / "results").exists()


def test_summarise_time_to_target(make_ctx):
    from repro.run import summarise

    ctx = make_ctx()
    with pytest.raises(ReproError, match="recorded no evaluation"):
        summarise(ctx)
    ctx.history = [
        {"epoch": 1.0, "step": 1.0, "train_time_s": 0.5, "forward_evals": 10.0, "test_rmse": 0.3, "test_r2": 0.1},
        {"epoch": 2.0, "step": 2.0, "train_time_s": 1.0, "forward_evals": 20.0, "test_rmse": 0.09, "test_r2": 0.9},
        {"epoch": 3.0, "step": 3.0, "train_time_s": 1.5, "forward_evals": 30.0, "test_rmse": 0.2, "test_r2": 0.5},
    ]
    s = summarise(ctx)
    assert s["test_rmse"] == 0.2  # final values, not the best
    assert s["reached_target"] == 1.0 and s["time_to_target_s"] == 1.0 and s["epochs_to_target"] == 2.0
    ctx.history[1]["test_rmse"] = 0.11
    s = summarise(ctx)
    assert s["reached_target"] == 0.0 and math.isnan(s["time_to_target_s"])


@pytest.mark.parametrize(("metrics", "target"), [
    (("test_accuracy",), 95.0),   # a percentage where a fraction is meant
    (("test_accuracy",), -0.1),
    (("test_rmse",), -1.0),
    (("test_r2",), 1.5),
    (("test_rmse",), float("nan")),
])
def test_a_target_the_metric_cannot_express_is_refused(metrics, target):
    from repro.workloads import Workload, register_workload

    bad = Workload(name="bad_target", dataset="digits", model="mlp", model_kwargs={"sizes": [64, 10]},
                   loss="cross_entropy", metrics=metrics, target=target)
    with pytest.raises(ReproError, match=r"bad_target.*target"):
        register_workload(bad)
