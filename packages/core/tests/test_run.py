"""run_trial end to end (real MLflow in a temp SQLite store) on the FAKE paper, its argument
checks, and summarise (time-to-target from the validation split)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from repro import config as cfg
from repro import paths
from repro.checksums import file_digest
from repro.datasets import DATASETS, prepare
from repro.errors import ReproError
from repro.paper import Method
from repro.papers import get_paper
from repro.run import build_context, run_trial, summarise

SUMMARY_KEYS = {"test_rmse", "test_r2", "val_rmse", "val_r2", "train_time_s", "train_cpu_time_s",
                "time_to_target_s", "time_to_target_cpu_s", "forward_evals", "eval_time_s", "epochs",
                "reached_target", "epochs_to_target"}


@pytest.fixture
def sine_prepared(project, config):
    prepare(DATASETS.get("sine"), cfg.dataset_params(config, "sine"))
    return config


def client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def test_run_trial_smoke(project, sine_prepared, mlflow_store):
    out = run_trial("fake", "sine", "boosted", 0, "smoke", sine_prepared, progress=False)
    assert out == project / "results" / "fake" / "smoke" / "sine" / "boosted" / "seed0.json"
    result = json.loads(out.read_text())
    assert (result["paper"], result["experiment"], result["method"], result["seed"], result["scale"]) == \
        ("fake", "sine", "boosted", 0, "smoke")
    assert result["quality_metric"] == "test_rmse" and result["target_metric"] == "val_rmse"
    summary = result["summary"]
    assert SUMMARY_KEYS <= set(summary)
    # 3 epochs over the 180 training samples left after the validation split (10% of 200)
    assert summary["forward_evals"] == 3 * 180
    assert summary["epochs"] == 3 and len(result["history"]) == 3
    assert {"val_rmse", "test_rmse", "train_time_s", "train_cpu_time_s"} <= set(result["history"][0])
    assert summary["train_time_s"] > 0 and summary["eval_time_s"] > 0
    if summary["reached_target"]:
        assert 0 < summary["time_to_target_s"] <= summary["train_time_s"]
    else:
        assert summary["time_to_target_s"] is None and summary["epochs_to_target"] is None  # NaN -> null
    # the experiment's tunable hyper-parameters with the method's fixed switch merged in
    assert result["hparams"] == {"optimizer": "adam", "lr": 0.05, "epochs": 3, "batch_size": 50, "boost": 2.0,
                                 "variant": "boosted"}
    assert result["dataset_sha256"] == file_digest(paths.prepared_data_path("sine"))
    assert not (project / ".checkpoints" / "fake" / "smoke" / "sine" / "boosted" / "seed0.pt").exists()

    c = client()
    exp = c.get_experiment_by_name("fake")
    assert exp is not None and exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = c.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [result["mlflow_run_id"]]
    run = c.get_run(runs[0].info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "sine/boosted/seed0"
    tags = run.data.tags
    assert tags["paper"] == "fake" and tags["method"] == "boosted" and tags["seed"] == "0"
    assert tags["scale"] == "smoke" and tags["experiment"] == "sine"
    assert tags["dataset_sha256"] == result["dataset_sha256"]
    assert tags["git_commit"] == "unknown"  # the temp project is no git checkout
    assert "mlflow.source.git.commit" not in tags  # no commit to name
    assert tags["mlflow.source.name"] == "repro run fake" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["device"].startswith("CPU")
    # the thread count changes per-epoch numbers: in the result's provenance as in the run's tags
    assert result["environment"]["torch_threads"] == int(tags["torch_threads"]) == torch.get_num_threads()
    assert tags["reached_target"] in ("true", "false")
    assert run.data.params["hp.variant"] == "boosted" and run.data.params["hp.boost"] == "2.0"
    assert run.data.params["workload"] == "sine"
    assert run.data.metrics["final.test_rmse"] == pytest.approx(summary["test_rmse"])
    assert run.data.metrics["final.val_rmse"] == pytest.approx(summary["val_rmse"])
    history = c.get_metric_history(run.info.run_id, "val_rmse")
    assert sorted(m.step for m in history) == [1, 2, 3]
    (ds_input,) = run.inputs.dataset_inputs
    assert ds_input.dataset.name == "sine" and ds_input.dataset.digest == result["dataset_sha256"][:36]
    assert json.loads(ds_input.dataset.source) == {"uri": "data/prepared/sine.pt"}
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"results.json", "curves.csv", "learning_curve.png"} <= artifacts
    assert (project / "mlartifacts" / "fake").is_dir()  # artifacts stay inside the project


def test_failed_trial_is_marked_failed_and_leaves_no_result(project, sine_prepared, mlflow_store, monkeypatch):
    paper = get_paper("fake")

    def boom(ctx, hparams):
        ctx.evaluate(lambda x: x * 0, epoch=0, step=0)
        raise RuntimeError("diverged")

    monkeypatch.setitem(paper.methods, "gd", Method("gd", boom, "fails"))
    out = paths.trial_path("fake", "smoke", "sine", "gd", 1)
    out.parent.mkdir(parents=True)
    out.write_text("{}")  # a result of an earlier attempt
    with pytest.raises(RuntimeError, match="diverged"):
        run_trial("fake", "sine", "gd", 1, "smoke", sine_prepared, progress=False)
    assert not out.exists()
    c = client()
    (run,) = c.search_runs([c.get_experiment_by_name("fake").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: diverged"


@pytest.mark.parametrize(
    ("experiment", "method", "match"),
    [
        ("nope", "gd", r"unknown experiment of paper 'fake' at scale 'smoke' 'nope'; valid choices: hat, sine"),
        ("sine", "nope", r"unknown method of experiment 'sine' 'nope'; valid choices: boosted, gd"),
    ],
)
def test_unknown_experiment_or_method(project, config, experiment, method, match):
    with pytest.raises(ReproError, match=match):
        run_trial("fake", experiment, method, 0, "smoke", config, progress=False)
    assert not (project / "results").exists()
    assert not (project.parent / "mlflow.db").exists()  # failed before touching MLflow


def test_unknown_paper_scale_and_bad_seed(project, config):
    with pytest.raises(ReproError, match=r"unknown paper 'nope'; valid choices: fake"):
        run_trial("nope", "sine", "gd", 0, "smoke", config)
    with pytest.raises(ReproError, match=r"unknown scale 'huge'"):
        run_trial("fake", "sine", "gd", 0, "huge", config)
    with pytest.raises(ReproError, match="seed must be >= 0"):
        run_trial("fake", "sine", "gd", -1, "smoke", config)
    assert not (project / "results").exists()


def test_invalid_hyper_parameters_fail_before_any_work(project, config, monkeypatch):
    paper = get_paper("fake")
    exp = paper.experiments["smoke"]["sine"]
    monkeypatch.setitem(exp.methods, "boosted", {**exp.methods["boosted"], "boost": 0.0})
    with pytest.raises(ReproError, match=r"boosted hyper-parameter 'boost' must be in \(0, inf\], got 0.0"):
        run_trial("fake", "sine", "boosted", 0, "smoke", config, progress=False)
    monkeypatch.setitem(exp.methods, "boosted", {**exp.methods["boosted"], "variant": "plain"})
    with pytest.raises(ReproError, match=r"'variant' is a fixed switch of method 'boosted'"):
        run_trial("fake", "sine", "boosted", 0, "smoke", config, progress=False)
    assert not (project.parent / "mlflow.db").exists() and not (project / "results").exists()


def test_unprepared_data_fails_before_tracking(project, config):
    with pytest.raises(ReproError, match=r"run `repro data prepare sine`"):
        run_trial("fake", "sine", "gd", 0, "smoke", config, progress=False)
    assert not (project.parent / "mlflow.db").exists()
    assert not (project / "results").exists()


def test_build_context_splits_the_same_validation_set_for_every_seed(project, sine_prepared):
    """The validation split is a property of the workload: every seed (and method) sees the same."""
    a, hp_a = build_context("fake", "sine", "gd", seed=0, scale="smoke")
    b, _ = build_context("fake", "sine", "boosted", seed=3, scale="smoke")
    assert hp_a == get_paper("fake").trial_hparams("smoke", "sine", "gd")
    assert a.data.x_val is not None and len(a.data.x_val) == 20 and len(a.data.x_train) == 180
    for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a.data, k), getattr(b.data, k)), k
    assert a.workload.target_metric == "val_rmse"


def _row(epoch, val, test, t):
    return {"epoch": float(epoch), "step": float(epoch), "train_time_s": t, "train_cpu_time_s": t / 2,
            "forward_evals": 10.0 * epoch, "val_rmse": val, "val_r2": 0.5, "test_rmse": test, "test_r2": 0.5}


def test_summarise_time_to_target_reads_the_validation_split(make_ctx):
    ctx = make_ctx()
    with pytest.raises(ReproError, match="recorded no evaluation"):
        summarise(ctx)
    # the target (rmse <= 0.1) is met on test at epoch 1 but on validation only at epoch 2
    ctx.history = [_row(1, 0.3, 0.05, 0.5), _row(2, 0.09, 0.2, 1.0), _row(3, 0.2, 0.3, 1.5)]
    s = summarise(ctx)
    assert s["epochs_to_target"] == 2.0 and s["time_to_target_s"] == 1.0 and s["time_to_target_cpu_s"] == 0.5
    assert s["reached_target"] == 1.0
    assert s["test_rmse"] == 0.3 and s["val_rmse"] == 0.2  # final values, not the best
    assert s["epochs"] == 3.0


def test_summarise_a_miss(make_ctx, tmp_path):
    from repro.files import write_json

    ctx = make_ctx()
    ctx.history = [_row(1, 0.3, 0.05, 0.5), _row(2, 0.11, 0.01, 1.0)]  # test reaches, validation never
    ctx.extra["custom"] = 7.0
    s = summarise(ctx)
    assert s["reached_target"] == 0.0
    assert all(math.isnan(s[k]) for k in ("time_to_target_s", "time_to_target_cpu_s", "epochs_to_target"))
    assert s["custom"] == 7.0
    written = json.loads(write_json(s, tmp_path / "s.json").read_text())
    assert written["time_to_target_s"] is None and written["reached_target"] == 0.0  # null in JSON


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
