"""The MLflow UI as a person sees it: a tracked trial fills the Source and Dataset columns, the
experiment opens in the model-training view, and a headless-browser screenshot of that page is
taken (kept under the test's tmp dir for a person to look at)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import MIRROR, VENV_BIN, run, tool_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_mlflow_ui_shows_source_dataset_and_training_view(project_copy, tmp_path):
    run(["repro", "data", "prepare", "digits"], project_copy)
    run(["repro", "run", "autoassist", "--experiment", "digits_mlp", "--method", "sgd", "--seed", "0",
         "--threads", "1", "--no-progress"], project_copy, REPRO_DATA_MIRROR=str(MIRROR))
    port = _free_port()
    server = subprocess.Popen([str(VENV_BIN / "mlflow"), "ui", "--backend-store-uri",
                               f"sqlite:///{project_copy / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=project_copy, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # the server takes 12-22 s to start
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        exp = _post(base + "/ajax-api/2.0/mlflow/experiments/search",
                    {"max_results": 100})["experiments"]
        exp = next(e for e in exp if e["name"] == "autoassist")
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in exp["tags"]
        runs = _post(base + "/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        assert len(runs) == 1
        tags = {t["key"]: t["value"] for t in runs[0]["data"]["tags"]}
        assert tags["mlflow.source.name"].startswith("repro run") and len(tags["mlflow.source.git.commit"]) == 40
        inputs = runs[0]["inputs"]["dataset_inputs"]
        assert inputs[0]["dataset"]["name"] == "digits" and len(inputs[0]["dataset"]["digest"]) >= 16
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("no chromium for the screenshot (apt-get install chromium)")
        shot = tmp_path / "experiment.png"
        url = f"{base}/#/experiments/{exp['experiment_id']}?workflowType=machine_learning"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1600,1000",
                        "--virtual-time-budget=15000", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120)
        assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    finally:
        server.terminate()
        server.wait(timeout=30)
