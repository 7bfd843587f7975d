"""repro.tracking: URI resolution, MLflow's conventions (experiment kind, source tags, dataset
inputs, the reproduction parent run), and a fresh SQLite store opened by several processes at once."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from repro import tracking

N_PROCESSES = 6


def test_tracking_uri_precedence(project, monkeypatch):
    assert tracking.tracking_uri({"mlflow": {"tracking_uri": "http://x"}}) == os.environ["MLFLOW_TRACKING_URI"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri({"mlflow": {"tracking_uri": "http://x"}}) == "http://x"
    assert tracking.tracking_uri({"mlflow": {"tracking_uri": None}}) == f"sqlite:///{project / 'mlflow.db'}"
    assert tracking.tracking_uri(None) == f"sqlite:///{project / 'mlflow.db'}"


def test_sqlite_path():
    assert str(tracking._sqlite_path("sqlite:////tmp/x/mlflow.db")) == "/tmp/x/mlflow.db"
    assert tracking._sqlite_path("http://localhost:5000") is None


class FakeClient:
    """Stands in for MlflowClient; checks that the store lock is held whenever it is used."""

    instances: list["FakeClient"] = []

    def __init__(self, uri):
        self.uri = uri
        self.created: list[tuple[str, str | None]] = []
        self.experiments: dict[str, str] = {}
        self.lock_held_at_init = _lock_is_held(uri)
        FakeClient.instances.append(self)

    def get_experiment_by_name(self, name):
        assert _lock_is_held(self.uri) or tracking._sqlite_path(self.uri) is None
        exp_id = self.experiments.get(name)
        return None if exp_id is None else type("Exp", (), {"experiment_id": exp_id, "tags": self.tags})()

    tags: dict = {}  # the experiment's tags (none: made before experiments had a kind)

    def create_experiment(self, name, artifact_location=None, tags=None):
        assert _lock_is_held(self.uri) or tracking._sqlite_path(self.uri) is None
        self.created.append((name, artifact_location))
        self.created_tags = tags
        self.experiments[name] = "7"
        return "7"

    def set_experiment_tag(self, exp_id, key, value):
        self.set_tags = getattr(self, "set_tags", []) + [(exp_id, key, value)]


def _lock_is_held(uri: str) -> bool:
    import fcntl

    db = tracking._sqlite_path(uri)
    if db is None:
        return False
    lock = db.with_name(db.name + ".lock")
    if not lock.exists():
        return False
    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@pytest.fixture
def fake_client(monkeypatch):
    import mlflow.tracking

    FakeClient.instances = []
    monkeypatch.setattr(mlflow.tracking, "MlflowClient", FakeClient)
    return FakeClient


def test_store_is_opened_and_experiment_created_under_the_lock(project, fake_client):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert tracking.get_or_create_experiment(uri, "paperx") == "7"
    (client,) = fake_client.instances
    assert client.lock_held_at_init  # the first use of a fresh store (its migration) is serialised
    assert client.created == [("paperx", (project / "mlartifacts" / "paperx").as_uri())]
    assert client.created_tags == {"mlflow.experimentKind": "custom_model_development"}
    assert not _lock_is_held(uri)  # released afterwards


def test_an_existing_experiment_gets_its_kind_tag(project, fake_client, monkeypatch):
    import mlflow.tracking

    uri = os.environ["MLFLOW_TRACKING_URI"]

    class Old(FakeClient):
        def __init__(self, uri):
            super().__init__(uri)
            self.experiments = {"old": "3"}

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Old)
    assert tracking.get_or_create_experiment(uri, "old") == "3"
    (client,) = [c for c in fake_client.instances if isinstance(c, Old)]
    assert client.created == [] and client.set_tags == [("3", "mlflow.experimentKind", "custom_model_development")]


def test_lock_released_when_store_fails(project, monkeypatch):
    import mlflow.tracking

    class Broken:
        def __init__(self, uri):
            raise RuntimeError("migration failed")

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Broken)
    uri = os.environ["MLFLOW_TRACKING_URI"]
    with pytest.raises(RuntimeError, match="migration failed"):
        tracking.get_or_create_experiment(uri, "p")
    assert not _lock_is_held(uri)


def test_experiment_created_meanwhile_by_another_writer(project, monkeypatch):
    import mlflow.tracking
    from mlflow.exceptions import MlflowException

    class Racing(FakeClient):
        def create_experiment(self, name, artifact_location=None, tags=None):
            self.experiments[name] = "42"  # another writer won the race
            raise MlflowException("already exists")

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Racing)
    assert tracking.get_or_create_experiment(os.environ["MLFLOW_TRACKING_URI"], "p") == "42"


def test_remote_store_needs_no_lock(project, fake_client, tmp_path):
    assert tracking.get_or_create_experiment("http://127.0.0.1:1", "p") == "7"
    (client,) = fake_client.instances
    assert not client.lock_held_at_init and not list(tmp_path.rglob("*.lock"))
    assert client.created == [("p", None)]  # the server chooses the artifact location


def test_ui_path_opens_the_model_training_view():
    assert tracking.ui_path("3") == "#/experiments/3?workflowType=machine_learning"
    assert tracking.ui_path("3", "abc") == "#/experiments/3/runs/abc?workflowType=machine_learning"


def test_source_tags():
    assert tracking.source_tags("abc", "repro run x") == {"mlflow.source.name": "repro run x",
                                                          "mlflow.source.type": "LOCAL",
                                                          "mlflow.source.git.commit": "abc"}
    assert "mlflow.source.git.commit" not in tracking.source_tags("unknown", "repro run x")
    assert "mlflow.source.git.commit" not in tracking.source_tags("", "repro run x")


def test_reproduction_parent_run(project, mlflow_store):
    """One parent run per paper x scale: verdict counts, claim verdicts, claims.json; every trial
    run filed under it."""
    from mlflow.tracking import MlflowClient

    trial_ids = []
    for seed in range(2):
        run = tracking.TrackedRun("fake", f"sine/gd/seed{seed}", {"hp.lr": 0.1}, {"seed": str(seed)},
                                  dataset={"name": "sine", "digest": "ab" * 32, "source": "data/prepared/sine.pt"})
        with run:
            run.log_summary({"test_rmse": 0.2, "reached_target": 0.0, "time_to_target_s": float("nan")})
        trial_ids.append(run.run_id)
    claims_file = project / "claims.json"
    claims = {"summary": {"reproduced": 1, "not reproduced": 0, "inconclusive": 0, "by construction": 1,
                          "not run": 0},
              "claims": {"a": {"verdict": "reproduced"}, "b": {"verdict": "by construction"}}}
    claims_file.write_text("{}")
    parent, exp_id = tracking.log_reproduction("fake", "smoke", claims, trial_ids, {"git_commit": "unknown"},
                                               artifact=claims_file)
    client = MlflowClient(mlflow_store)
    p = client.get_run(parent)
    assert p.info.experiment_id == exp_id == client.get_experiment_by_name("fake").experiment_id
    assert p.info.run_name == "reproduction/smoke" and p.info.status == "FINISHED"
    assert p.data.tags["reproduction"] == "true" and p.data.tags["scale"] == "smoke"
    assert p.data.tags["claim.a"] == "reproduced" and p.data.tags["claim.b"] == "by construction"
    assert p.data.metrics["verdicts.reproduced"] == 1.0 and p.data.metrics["verdicts.by_construction"] == 1.0
    assert "claims.json" in {a.path for a in client.list_artifacts(parent)}
    for rid in trial_ids:
        t = client.get_run(rid)
        assert t.data.tags["mlflow.parentRunId"] == parent
        assert t.data.tags["reached_target"] == "false"
        assert "final.time_to_target_s" not in t.data.metrics  # NaN is not logged
        (ds,) = t.inputs.dataset_inputs
        assert ds.dataset.name == "sine" and ds.dataset.digest == ("ab" * 32)[:36]
        assert [(tag.key, tag.value) for tag in ds.tags] == [("mlflow.data.context", "train")]
    exp = client.get_experiment_by_name("fake")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3 and sum(r.data.tags.get("reproduction") == "true" for r in runs) == 1


def test_resumed_run_continues_the_same_mlflow_run(project, mlflow_store):
    from mlflow.tracking import MlflowClient

    first = tracking.TrackedRun("fake", "r", {"a": 1}, {})
    with pytest.raises(KeyboardInterrupt):
        with first:
            raise KeyboardInterrupt
    again = tracking.TrackedRun("fake", "r", {"a": 1}, {}, resume_run_id=first.run_id)
    with again:
        pass
    assert again.run_id == first.run_id
    run = MlflowClient(mlflow_store).get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
    assert len(MlflowClient(mlflow_store).search_runs([run.info.experiment_id])) == 1


def _worker(i: int, barrier) -> None:
    """One pipeline job: open the (fresh) store, create-or-get the experiment, log a run."""
    from repro.tracking import TrackedRun, get_or_create_experiment, tracking_uri

    barrier.wait(timeout=60)  # all processes hit the fresh store at the same moment
    get_or_create_experiment(tracking_uri(), "concurrency")
    run = TrackedRun("concurrency", f"worker{i}", {"i": i, "nested": {"a": [1, 2]}}, {"worker": str(i)})
    with run:
        run.log_history([{"epoch": float(e), "test_rmse": 1.0 / (e + 1), "train_loss": float("nan")}
                         for e in range(5)])
        run.log_summary({"test_rmse": 0.2, "reached_target": 1.0})


@pytest.mark.slow  # ~25-30 s on 2 cores: six MLflow imports and one full schema migration
def test_fresh_store_many_processes(project):
    from mlflow.tracking import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert not tracking._sqlite_path(uri).exists()  # really fresh
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCESSES)
    procs = [ctx.Process(target=_worker, args=(i, barrier)) for i in range(N_PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung and all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]

    client = MlflowClient(uri)
    exps = [e for e in client.search_experiments() if e.name == "concurrency"]
    assert len(exps) == 1  # created once
    assert exps[0].tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exps[0].experiment_id])
    assert len(runs) == N_PROCESSES
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.tags["worker"] for r in runs) == [str(i) for i in range(N_PROCESSES)]
    for r in runs:
        assert r.data.metrics["final.test_rmse"] == 0.2
        assert r.data.tags["reached_target"] == "true"
        assert "train_loss" not in r.data.metrics  # NaN values are not logged
        assert len(client.get_metric_history(r.info.run_id, "test_rmse")) == 5
        assert r.data.params["nested"] == '{"a": [1, 2]}'
    assert exps[0].artifact_location == (project / "mlartifacts" / "concurrency").as_uri()
