"""MLflow beyond a file (issue #11): the pipeline's trials logging to a real ``mlflow server`` on
127.0.0.1 and to a PostgreSQL database, each service started by the test and torn down after.

Eight trials of the FAKE paper run at once, each in its own process (as eight pipeline jobs
would), and every one must come back whole: FINISHED, every parameter, every metric point of
its history, its summary and its three artifacts, in the explicit artifact location. Then
eight writers log trial-sized runs at once (``repro.bench_tracking``); the measured time is
printed (README: "Share a tracking server").

Fault (c): a server killed when a trial ends loses no result, and ``repro tracking relog``
completes the run once the server is back.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from repro import bench_tracking, local_services, paths, tracking
from repro import config as cfg
from repro.datasets import DATASETS, prepare

pytestmark = pytest.mark.slow

TRIALS = [(exp, method, seed) for exp in ("sine", "hat") for method in ("gd", "boosted") for seed in (0, 1)]
MLFLOW = str(Path(sys.executable).parent / "mlflow")


@pytest.fixture(scope="module")
def pg():
    """A throw-away PostgreSQL on 127.0.0.1 (Debian's package, installed here if missing)."""
    bin_dir, why = local_services.ensure_postgres()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL: {why}")
    with local_services.postgres(bin_dir) as server:
        yield server


@pytest.fixture
def prepared(project, config):
    for name in ("sine", "mexican_hat"):
        prepare(DATASETS.get(name), cfg.dataset_params(config, name))
    return config


def _server(tmp: Path, backend: str, port: int):
    """``mlflow server`` as a team runs it: its own backend store, artifacts served from an explicit destination."""
    artifacts = tmp / "server-artifacts"
    argv = [MLFLOW, "server", "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination",
            str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return local_services.mlflow_server(argv, port, tmp, env, tmp / f"server-{port}.log"), artifacts


def _trial(exp: str, method: str, seed: int, barrier) -> None:
    """One pipeline job: the FAKE paper registered, one trial run and logged."""
    from repro import config as cfg
    from repro import papers
    from repro.run import run_trial

    from .fake_paper import PAPER

    try:
        papers.add_paper(PAPER)
        config = cfg.load()
        barrier.wait(timeout=600)
        run_trial("fake", exp, method, seed, "smoke", config, progress=False)
    except BaseException:
        import traceback

        (paths.project_root() / f"failed-{exp}-{method}-{seed}.txt").write_text(traceback.format_exc())
        raise


def _run_eight_trials() -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(TRIALS))
    procs = [ctx.Process(target=_trial, args=(*t, barrier)) for t in TRIALS]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    failures = "\n".join(f.read_text() for f in sorted(paths.project_root().glob("failed-*.txt")))
    assert not hung and [p.exitcode for p in procs] == [0] * len(TRIALS), failures


def _check_nothing_lost(uri: str) -> list[str]:
    """Every trial's run is FINISHED with all it should have; returns the run ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fake")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == len(TRIALS) and all(r.info.status == "FINISHED" for r in runs)
    ids = []
    for exp_name, method, seed in TRIALS:
        result = json.loads(paths.trial_path("fake", "smoke", exp_name, method, seed).read_text())
        assert "mlflow" not in result  # logged at once, not marked for a re-log
        run = client.get_run(result["mlflow_run_id"])
        assert run.info.run_name == f"{exp_name}/{method}/seed{seed}" and run.info.status == "FINISHED"
        assert run.data.tags["seed"] == str(seed) and run.data.tags["method"] == method
        expected = {f"hp.{k}": tracking._param_value(v) for k, v in result["hparams"].items()}
        expected.update(workload=result["workload"], dataset=result["dataset"], seed=str(seed))
        assert {k: run.data.params.get(k) for k in expected} == expected
        for key in {k for row in result["history"] for k in row} - {"epoch"}:
            steps = sorted(int(r["epoch"]) for r in result["history"] if r.get(key) is not None)
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == steps, key
        for key, value in result["summary"].items():
            if value is not None:
                assert run.data.metrics[f"final.{key}"] == pytest.approx(value), key
        assert {"results.json", "curves.csv", "learning_curve.png"} <= {a.path for a in
                                                                         client.list_artifacts(run.info.run_id)}
        logged = json.loads(Path(client.download_artifacts(run.info.run_id, "results.json")).read_text())
        assert logged["summary"]["test_rmse"] == pytest.approx(result["summary"]["test_rmse"])
        ids.append(run.info.run_id)
    return ids


def _bench(uri: str, kind: str) -> None:
    out = bench_tracking.bench(uri, writers=8)
    hw = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"\n[8-writer logging] {bench_tracking.describe(kind, out)}; load average {hw}", flush=True)


def test_eight_concurrent_trials_on_a_tracking_server(project, prepared, tmp_path, monkeypatch):
    port = local_services.free_port()
    served, artifacts = _server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", port)
    with served:
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        t0 = time.time()
        _run_eight_trials()
        wall = time.time() - t0
        ids = _check_nothing_lost(uri)
        from mlflow.tracking import MlflowClient

        exp = MlflowClient(uri).get_experiment_by_name("fake")
        assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server's --artifacts-destination
        for rid in ids:  # ... which holds the files
            assert (artifacts / exp.experiment_id / rid / "artifacts" / "results.json").is_file()
        assert not (project / "mlartifacts").exists()  # nothing beside the client
        print(f"\n[8 concurrent trials] mlflow server (SQLite backend): {wall:.1f} s", flush=True)
        _bench(uri, "mlflow server on 127.0.0.1 (SQLite backend, served artifacts)")
    _bench(f"sqlite:///{tmp_path / 'bench.db'}", "SQLite file (the default store), for comparison")


def test_eight_concurrent_trials_on_postgresql(project, prepared, pg, monkeypatch):
    uri = pg.create_database("repro_trials")  # fresh: the first writers race to create the schema
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    t0 = time.time()
    _run_eight_trials()
    wall = time.time() - t0
    ids = _check_nothing_lost(uri)
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(uri).get_experiment_by_name("fake")
    assert exp.artifact_location == (project / "mlartifacts" / "fake").as_uri()  # explicit, not ./mlruns
    for rid in ids:
        assert (project / "mlartifacts" / "fake" / rid / "artifacts" / "results.json").is_file()
    print(f"\n[8 concurrent trials] PostgreSQL backend store: {wall:.1f} s", flush=True)
    _bench(pg.create_database("repro_bench"), "PostgreSQL (direct URI, artifacts in mlartifacts/)")


def test_server_killed_when_a_trial_ends_loses_nothing_and_relog_completes_the_run(
        project, prepared, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from repro.cli import main
    from repro.papers import get_paper
    from repro.run import run_trial

    port = local_services.free_port()
    uri = f"http://127.0.0.1:{port}"
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow retries for minutes by default
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    paper = get_paper("fake")
    spec = paper.methods["gd"]
    served, artifacts = _server(tmp_path, backend, port)
    with served as server:
        def fit_then_server_dies(ctx, hparams):
            spec.fit(ctx, hparams)
            local_services.stop_process_group(server)  # the server is gone when the trial ends

        monkeypatch.setitem(paper.methods, "gd", dataclasses.replace(spec, fit=fit_then_server_dies))
        out = run_trial("fake", "sine", "gd", 0, "smoke", prepared, progress=False)
    result = json.loads(out.read_text())
    err = capsys.readouterr().err
    assert result["mlflow"]["logged"] is False and f"MLflow tracking store {uri} failed" in err
    assert result["summary"]["epochs"] == 3 and len(result["history"]) == 3

    with _server(tmp_path, backend, port)[0]:  # back, on the same store
        client = MlflowClient(uri)
        run = client.get_run(result["mlflow_run_id"])
        assert run.info.status == "RUNNING" and not run.data.metrics  # not FINISHED without its numbers
        assert main(["tracking", "relog"]) == 0
        assert f"re-logged results/fake/smoke/sine/gd/seed0.json -> run {run.info.run_id}" in capsys.readouterr().out
        run = client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["final.test_rmse"] == pytest.approx(result["summary"]["test_rmse"])
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_rmse")) == [1, 2, 3]
        assert {"results.json", "curves.csv", "learning_curve.png"} <= {a.path for a in
                                                                         client.list_artifacts(run.info.run_id)}
        assert json.loads(out.read_text())["mlflow"]["logged"] is True
    shutil.rmtree(artifacts, ignore_errors=True)
