"""The README's "Share a tracking server", run as written: PostgreSQL (started here on 127.0.0.1),
`mlflow db upgrade` and `mlflow server` with served artifacts, then the pipeline pointed at the
server with `MLFLOW_TRACKING_URI` only — limited to one training job — and its runs and
artifacts checked on the server. Then 8 writers at once against that server (the README's
measured 8-writer time for a server on PostgreSQL)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from conftest import ROOT, run, tool_env

from repro import bench_tracking, local_services

JOB = ("enkf", "smoke", "sine", "gd_equal_budget")  # one fast training job (every smoke seed)


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Share a tracking server\n(.*?)^## ", text, re.S | re.M).group(1)
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_the_section_has_the_server_and_the_client_commands():
    server, client = readme_blocks()
    exports = re.findall(r"^export (\w+)=", server, re.M)
    assert exports == ["MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"]
    commands = [line for line in server.splitlines() if line.startswith("uv run ")]
    assert [shlex.split(c)[2:4] for c in commands] == [["mlflow", "db"], ["mlflow", "server"]]
    assert "--host 127.0.0.1" in commands[1] and "--artifacts-destination" in commands[1]
    assert client.strip().startswith("MLFLOW_TRACKING_URI=http://127.0.0.1:5000 uv run snakemake")


@pytest.mark.slow
def test_share_a_tracking_server_as_the_readme_says(project_copy, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    bin_dir, why = local_services.ensure_postgres()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL: {why}")
    server_block, client_block = readme_blocks()
    port = local_services.free_port()
    artifacts = tmp_path / "artifacts"

    def as_here(line: str) -> str:
        """The README's line with this test's port; `uv run` is this venv (already synced)."""
        line = line.split("  #")[0].strip().replace("5000", str(port))
        return line.replace("uv run ", "", 1)

    with local_services.postgres(bin_dir) as pg:
        env = tool_env(MLFLOW_BACKEND_STORE_URI=pg.create_database("mlflow"),
                       MLFLOW_ARTIFACTS_DESTINATION=str(artifacts))
        upgrade, serve = [as_here(line) for line in server_block.splitlines() if line.startswith("uv run ")]
        proc = subprocess.run(upgrade, shell=True, cwd=project_copy, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with local_services.mlflow_server(serve, port, project_copy, env, tmp_path / "server.log"):
            (client_line,) = [as_here(line) for line in client_block.splitlines() if line.strip()]
            assignment, *argv = shlex.split(client_line)
            key, uri = assignment.split("=", 1)
            assert key == "MLFLOW_TRACKING_URI" and uri == f"http://127.0.0.1:{port}"
            paper, scale, exp, method = JOB
            targets = [f"results/{paper}/{scale}/{exp}/{method}/seed{s}.json" for s in range(3)]
            run([*argv, *targets], project_copy, timeout=1800, MLFLOW_TRACKING_URI=uri)  # one job

            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(paper)
            assert experiment.artifact_location.startswith("mlflow-artifacts:")
            runs = client.search_runs([experiment.experiment_id])
            assert len(runs) == len(targets) and all(r.info.status == "FINISHED" for r in runs)
            for target in targets:
                result = json.loads((project_copy / target).read_text())
                assert "mlflow" not in result  # logged, not marked for a re-log
                r = client.get_run(result["mlflow_run_id"])
                assert r.data.metrics["final.test_rmse"] == pytest.approx(result["summary"]["test_rmse"])
                assert len(client.get_metric_history(r.info.run_id, "val_rmse")) == len(result["history"])
                stored = artifacts / experiment.experiment_id / r.info.run_id / "artifacts"
                assert {"results.json", "curves.csv", "learning_curve.png"} <= {p.name for p in stored.iterdir()}
            assert not (project_copy / "mlflow.db").exists() and not (project_copy / "mlartifacts").exists()

            monkeypatch.setenv("REPRO_ROOT", str(project_copy))
            out = bench_tracking.bench(uri, writers=8)
            load = " ".join(open("/proc/loadavg").read().split()[:3])
            print(f"\n[8-writer logging] {bench_tracking.describe('mlflow server (PostgreSQL backend)', out)}; "
                  f"load average {load}", flush=True)
