"""A tracking store that fails (fault c of issue #11), where artifacts go on each kind of store,
and how a report names the store — with real MLflow on a temp SQLite store (the FAKE paper).

The store failing when a trial ends is simulated here by making MLflow's metric logging raise a
connection error; ``test_tracking_backends.py`` kills a real server instead (slow)."""

from __future__ import annotations

import json
import os

import pytest
import requests

from repro import config as cfg
from repro import paths, tracking
from repro.cli import main
from repro.datasets import DATASETS, prepare
from repro.errors import ReproError
from repro.run import run_trial


@pytest.fixture
def sine_config(project, config):
    prepare(DATASETS.get("sine"), cfg.dataset_params(config, "sine"))
    return config


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


@pytest.fixture
def store_down_at_the_end(monkeypatch):
    """MLflow's client fails every metric batch (what a trial logs when it ends) as a dead server would."""
    from mlflow.tracking import MlflowClient

    real = MlflowClient.log_batch
    calls = {"failed": 0}

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kw):
        if metrics:
            calls["failed"] += 1
            raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")
        return real(self, run_id, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    return lambda: monkeypatch.setattr(MlflowClient, "log_batch", real)  # the store is back


def test_results_survive_a_store_that_fails_when_the_trial_ends_and_relog_completes_the_run(
        project, sine_config, mlflow_store, store_down_at_the_end, capsys):
    out = run_trial("fake", "sine", "gd", 0, "smoke", sine_config, progress=False)
    result = json.loads(out.read_text())
    err = capsys.readouterr().err
    # loud: names the store, says the file is kept and how to finish the job
    assert "WARNING" in err and tracking.public_uri(mlflow_store) in err and "repro tracking relog" in err
    block = result["mlflow"]
    assert block["logged"] is False and block["run_id"] == result["mlflow_run_id"]
    assert "ConnectionError" in block["error"] and block["uri"] == tracking.public_uri(mlflow_store)
    assert len(result["history"]) == 3 and result["summary"]["epochs"] == 3  # the trial itself is complete
    run = _client().get_run(result["mlflow_run_id"])
    assert run.info.status == "RUNNING" and not run.data.metrics  # not FINISHED without its metrics
    assert tracking.unlogged_results() == [out]

    # the report refuses to link runs that are not there, naming the file and the fix (the other
    # trials of the smoke run: copies of this one, logged)
    from repro.evaluate import write_claims
    from repro.files import write_json
    from repro.report import build_report

    seeds = cfg.seeds(sine_config)
    for exp in ("sine", "hat"):
        for method in ("gd", "boosted"):
            for seed in seeds:
                if (exp, method, seed) != ("sine", "gd", 0):
                    copy = {k: v for k, v in result.items() if k != "mlflow"}
                    write_json({**copy, "experiment": exp, "method": method, "seed": seed},
                               paths.trial_path("fake", "smoke", exp, method, seed))
    write_claims("fake", "smoke", seeds)
    with pytest.raises(ReproError, match=r"1 trial result\(s\) did not reach MLflow.*"
                                         r"results/fake/smoke/sine/gd/seed0.json.*repro tracking relog"):
        build_report("fake", "smoke", seeds, sine_config)
    capsys.readouterr()

    assert main(["tracking", "relog", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "not logged: results/fake/smoke/sine/gd/seed0.json" in listed
    assert len(listed.splitlines()) == len(tracking.unlogged_results()) == 1

    store_down_at_the_end()  # the store is back
    assert main(["tracking", "relog"]) == 0
    assert "re-logged results/fake/smoke/sine/gd/seed0.json -> run " + result["mlflow_run_id"] in capsys.readouterr().out
    assert tracking.unlogged_results() == []
    again = json.loads(out.read_text())
    assert again["mlflow"]["logged"] is True and again["mlflow"]["run_id"] == result["mlflow_run_id"]
    assert {k: v for k, v in again.items() if k != "mlflow"} == {k: v for k, v in result.items() if k != "mlflow"}

    c = _client()
    run = c.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final.test_rmse"] == pytest.approx(result["summary"]["test_rmse"])
    assert sorted(m.step for m in c.get_metric_history(run.info.run_id, "val_rmse")) == [1, 2, 3]
    assert run.data.params["hp.lr"] == "0.05" and run.data.tags["reached_target"] in ("true", "false")
    assert {"results.json", "curves.csv", "learning_curve.png"} <= {a.path for a in c.list_artifacts(run.info.run_id)}

    # repeating a re-log doubles nothing (same metric timestamps: MLflow keeps one point)
    before = json.loads(out.read_text())
    before["mlflow"] = result["mlflow"]
    out.write_text(json.dumps(before))
    assert main(["tracking", "relog", str(out)]) == 0
    assert sorted(m.step for m in c.get_metric_history(run.info.run_id, "val_rmse")) == [1, 2, 3]
    assert main(["tracking", "relog"]) == 0
    assert "nothing to re-log" in capsys.readouterr().out

    build_report("fake", "smoke", seeds, sine_config)  # now it can


def test_relog_names_a_run_the_store_does_not_have(project, sine_config, mlflow_store, capsys):
    out = paths.trial_path("fake", "smoke", "sine", "gd", 0)
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps({"history": [], "summary": {}, "mlflow": {
        "logged": False, "run_id": "0123abcd", "uri": "http://127.0.0.1:5000", "timestamp_ms": 1}}))
    assert main(["tracking", "relog"]) == 2
    err = capsys.readouterr().err
    assert "MLflow run 0123abcd is not in" in err and "started in http://127.0.0.1:5000" in err
    assert "1 of 1 result(s) not re-logged: results/fake/smoke/sine/gd/seed0.json" in err
    assert "Traceback" not in err


def test_a_store_that_cannot_be_reached_when_a_trial_starts_is_one_clear_error(
        project, sine_config, monkeypatch, capsys):
    from repro.local_services import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    code = main(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"MLflow tracking store {uri} cannot be used" in err and "Connection refused" in err
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in err
    assert not paths.trial_path("fake", "smoke", "sine", "gd", 0).exists()


def test_relog_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["tracking", "relog", "--help"])
    assert info.value.code == 0 and "mlflow: {logged: false}" in " ".join(capsys.readouterr().out.split())


def test_artifact_location_is_explicit_for_every_kind_of_store(project):
    root = (project / "mlartifacts").as_uri()
    pg = "postgresql://u:secret@db.example:5432/mlflow"
    assert tracking.experiment_artifact_location("p", None, f"sqlite:///{project}/mlflow.db") == f"{root}/p"
    assert tracking.experiment_artifact_location("p", None, pg) == f"{root}/p"
    assert tracking.experiment_artifact_location("p", None, "postgresql+psycopg2://db/x") == f"{root}/p"
    assert tracking.experiment_artifact_location("p", None, "http://127.0.0.1:5000") is None  # the server's
    shared = {"mlflow": {"artifact_root": "s3://team-bucket/mlflow/"}}
    assert tracking.experiment_artifact_location("p", shared, pg) == "s3://team-bucket/mlflow/p"
    assert tracking.experiment_artifact_location("p", shared, "http://127.0.0.1:5000") == "s3://team-bucket/mlflow/p"
    relative = {"mlflow": {"artifact_root": "../shared/artifacts"}}
    assert tracking.experiment_artifact_location("p", relative, pg) == \
        (project.parent / "shared" / "artifacts").as_uri() + "/p"


def test_the_config_key_and_the_cli_option_reach_the_store(project, mlflow_store):
    from mlflow.tracking import MlflowClient

    from repro.cli import _config, build_parser

    args = build_parser().parse_args(["report", "fake", "--artifact-root", "team-artifacts"])
    config = _config(args)
    assert config["mlflow"]["artifact_root"] == "team-artifacts"
    exp_id = tracking.get_or_create_experiment(mlflow_store, "fake", config)
    assert MlflowClient(mlflow_store).get_experiment(exp_id).artifact_location == \
        (project / "team-artifacts" / "fake").as_uri()
    from repro import pipeline

    assert pipeline._tracking_opt(config) == " --artifact-root team-artifacts"
    assert pipeline._tracking_opt(cfg.load()) == ""  # params.yaml's default: nothing on the command lines


def test_reports_never_show_a_local_absolute_path_or_a_password(project):
    assert tracking.public_uri(f"sqlite:///{project}/mlflow.db") == "sqlite:///mlflow.db"
    assert tracking.public_uri("sqlite:////elsewhere/x/mlflow.db") == "sqlite:///…/mlflow.db"
    assert tracking.public_uri(f"file://{project}/mlruns") == "file:mlruns"
    assert tracking.public_uri("file:///elsewhere/mlruns") == "file:…/mlruns"
    assert tracking.public_uri(str(project / "mlruns")) == "mlruns"
    assert tracking.public_uri("postgresql://team:s3cret@db.example:5432/mlflow") == "postgresql://db.example:5432/mlflow"
    assert tracking.public_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_dataset_logged_by_runs_starting_together_is_retried_on_the_stores_unique_key():
    """MLflow inserts an unseen dataset after looking it up: runs of one experiment starting at
    once race there (8 trials at once hit it). The loser logs again and links the existing row;
    any other error is raised at once."""
    from mlflow.exceptions import MlflowException

    class Racing:
        def __init__(self, errors):
            self.errors, self.calls = list(errors), 0

        def log_inputs(self, run_id, datasets):
            self.calls += 1
            if self.errors:
                raise MlflowException(self.errors.pop(0))

    sqlite = "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name"
    postgres = '(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"'
    client = Racing([sqlite, postgres])
    tracking.log_dataset(client, "r", "sine", "ab" * 32, "data/prepared/sine.pt")
    assert client.calls == 3
    other = Racing(["RESOURCE_DOES_NOT_EXIST: run r"])
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        tracking.log_dataset(other, "r", "sine", "ab" * 32, "data/prepared/sine.pt")
    assert other.calls == 1
