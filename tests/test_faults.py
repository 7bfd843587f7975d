"""Faults survived, with real signals: a trial killed mid-training resumes from its checkpoint to
the same result; its MLflow run never stays RUNNING; a killed Snakemake run restarts with the
README's command (no --unlock) and takes no partial result as finished."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, run, tool_env

SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"
# ~3,200 epochs of a small network, ~2 s of training on one CPU thread: long enough to be killed
# between two checkpoints, short enough to run four times.
TRIAL = ["enkf", "--experiment", "mexican_hat", "--method", "gd_equal_budget", "--seed", "0", "--threads", "1",
         "--no-progress"]
TIMING = ("train_time_s", "train_cpu_time_s", "eval_time_s", "time_to_target_s", "time_to_target_cpu_s")


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}:\n"
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def trial_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """params.yaml (enkf only) + the config schema + the prepared data; MLflow in a SQLite file."""
    root = tmp_path / "project"
    (root / SCHEMA).parent.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["papers"] = ["enkf"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / SCHEMA).write_text((ROOT / SCHEMA).read_text())
    env = tool_env(REPRO_ROOT=str(root), MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", REPRO_DEVICE="cpu")
    subprocess.run(["repro", "data", "prepare", "mexican_hat"], cwd=root, env=env, check=True, capture_output=True)
    return root, env


def _repro_run(root: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["repro", "run", *TRIAL, *extra], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, resume: bool = False) -> None:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{out}\n{err}"
    # (a source edit in the checkout while the test runs also makes the checkpoint another setup's)
    assert not resume or "starting the trial from scratch" not in err, err


@pytest.mark.slow  # ~1.5 min on 2 cores: seven `repro run` processes of a ~2 s trial
def test_killed_trial_resumes_from_its_checkpoint_to_the_same_result(trial_project):
    from mlflow.tracking import MlflowClient

    root, env = trial_project
    result = root / "results/enkf/smoke/mexican_hat/gd_equal_budget/seed0.json"
    ckpt = root / ".checkpoints/enkf/smoke/mexican_hat/gd_equal_budget/seed0.pt"
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])

    def runs() -> dict[str, object]:
        exp = client.get_experiment_by_name("enkf")
        return {} if exp is None else {r.info.run_id: r for r in client.search_runs([exp.experiment_id])}

    # 1. Uninterrupted, no checkpoint at all: the reference.
    _finish(_repro_run(root, env, "--checkpoint-seconds", "0"))
    straight = json.loads(result.read_text())
    assert not ckpt.exists()
    epochs = straight["summary"]["epochs"]

    # 2. Time-based checkpoints; SIGKILL once one exists: no result, the run left RUNNING, the checkpoint.
    proc = _repro_run(root, env, "--checkpoint-seconds", "0.05")
    _wait_for(ckpt.exists, proc, "the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not result.exists()
    saved = torch.load(ckpt, weights_only=True)
    assert 0 < saved["method"]["epoch"] < epochs  # killed mid-training
    killed_run = saved["ctx"]["mlflow_run_id"]
    assert runs()[killed_run].info.status == "RUNNING"

    # 3. Run again: resumes there, continues the same MLflow run, ends exactly where the straight run did.
    _finish(_repro_run(root, env, "--checkpoint-seconds", "0.05"), resume=True)
    resumed = json.loads(result.read_text())
    assert _untimed(resumed["history"]) == _untimed(straight["history"])
    assert {k: v for k, v in resumed["summary"].items() if k not in TIMING} == \
        {k: v for k, v in straight["summary"].items() if k not in TIMING}
    assert resumed["mlflow_run_id"] == killed_run and not ckpt.exists()
    run_ = client.get_run(killed_run)
    assert run_.info.status == "FINISHED" and run_.data.tags["resumed"] == "true"
    assert run_.data.metrics["final.test_rmse"] == straight["summary"]["test_rmse"]

    # 4. Killed before any checkpoint: the next attempt starts over and marks the orphan FAILED.
    before = set(runs())
    proc = _repro_run(root, env, "--checkpoint-seconds", "0")
    _wait_for(lambda: any(r.info.status == "RUNNING" for i, r in runs().items() if i not in before), proc,
              "the trial's MLflow run")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (orphan,) = set(runs()) - before
    assert runs()[orphan].info.status == "RUNNING" and not ckpt.exists()
    _finish(_repro_run(root, env, "--checkpoint-seconds", "0"))
    after = runs()
    (fresh,) = set(after) - before - {orphan}
    assert after[fresh].info.status == "FINISHED"
    assert after[orphan].info.status == "FAILED"
    assert after[orphan].data.tags["error"].startswith("orphaned:") and fresh in after[orphan].data.tags["error"]
    assert _untimed(json.loads(result.read_text())["history"]) == _untimed(straight["history"])

    # 5. SIGTERM (Snakemake stopping a job, scancel): the run is closed FAILED at once, no traceback,
    #    the checkpoint stays and the next attempt resumes the same run to the same result.
    proc = _repro_run(root, env, "--checkpoint-seconds", "0.05")
    _wait_for(ckpt.exists, proc, "the first checkpoint")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert not result.exists() and ckpt.exists()
    term_run = torch.load(ckpt, weights_only=True)["ctx"]["mlflow_run_id"]
    assert client.get_run(term_run).info.status == "FAILED"
    assert client.get_run(term_run).data.tags["error"] == "Terminated: the process received SIGTERM"
    _finish(_repro_run(root, env, "--checkpoint-seconds", "0.05"), resume=True)
    final = json.loads(result.read_text())
    assert final["mlflow_run_id"] == term_run and client.get_run(term_run).info.status == "FINISHED"
    assert _untimed(final["history"]) == _untimed(straight["history"])
    assert all(r.info.status != "RUNNING" for r in runs().values())


def readme_restart_command() -> list[str]:
    """The README's restart command, without its `uv run` prefix (this test runs in that environment)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Interrupted runs\n.*?```sh\n(.*?)```", text, re.S).group(1)
    (line,) = [line.split("#")[0].strip() for line in block.splitlines() if "snakemake" in line]
    args = shlex.split(line)
    assert args[:3] == ["uv", "run", "snakemake"] and "--unlock" not in args
    return args[2:]


def _incomplete(project: Path) -> set[str]:
    """The outputs Snakemake marked incomplete (jobs that were running)."""
    from base64 import urlsafe_b64decode

    folder = project / ".snakemake" / "incomplete"
    return {urlsafe_b64decode(f.name).decode() for f in folder.iterdir() if f.is_file() and f.name != "migration_underway"}


@pytest.mark.slow  # ~3 min on 2 cores: EnKF's smoke reproduction, killed part-way, then finished
def test_killed_snakemake_run_restarts_with_the_readme_command(project_copy: Path):
    from mlflow.tracking import MlflowClient

    project = project_copy
    params = yaml.safe_load((project / "params.yaml").read_text())
    params.update(papers=["enkf"], checkpoint_seconds=0.2)
    params["leaderboard"]["workloads"]["smoke"] = []
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    results = project / "results" / "enkf" / "smoke"

    # A whole run, killed with its process group once a trial has finished and another has a checkpoint.
    with open(project / "first.log", "w") as log:
        proc = subprocess.Popen(readme_restart_command(), cwd=project, env=tool_env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: any(results.glob("*/*/seed*.json")) and any((project / ".checkpoints").rglob("*.pt")),
                  proc, "a finished trial and a checkpoint")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert list((project / ".snakemake" / "locks").glob("*.lock")), "a killed snakemake leaves its locks"
    in_flight = {p for p in _incomplete(project) if p.startswith("results/enkf/")}
    assert in_flight, "jobs were running"
    done_before = {p: json.loads(p.read_text())["mlflow_run_id"] for p in results.glob("*/*/seed*.json")}
    checkpoints = sorted((project / ".checkpoints").rglob("*.pt"))

    # The same command again: no --unlock; the stale locks go, the interrupted jobs run again.
    proc = run(readme_restart_command(), project)
    assert "stale Snakemake lock file(s)" in proc.stderr
    claims = json.loads((results / "claims.json").read_text())
    assert claims["seeds"] == [0, 1, 2] and (project / "reports" / "enkf" / "index.md").is_file()
    files = sorted(results.glob("*/*/seed*.json"))
    assert len(files) == 2 * 4 * 3  # experiments x methods x seeds
    finals = {f: json.loads(f.read_text()) for f in files}
    for f, old_run in done_before.items():
        if str(f.relative_to(project)) in in_flight:  # written by a job that did not finish: not taken
            assert finals[f]["mlflow_run_id"] != old_run, f

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("enkf")
    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], max_results=1000)}
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
    assert {runs[r["mlflow_run_id"]].info.status for r in finals.values()} == {"FINISHED"}
    # runs of killed trials that had no checkpoint yet (if any) were closed when their trial ran again
    failed = [r for r in runs.values() if r.info.status == "FAILED"]
    assert all(r.data.tags.get("error", "").startswith("orphaned:") for r in failed), failed
    resumed = [(f, r) for f, r in finals.items() if runs[r["mlflow_run_id"]].data.tags.get("resumed") == "true"]
    assert resumed, f"no trial resumed from {checkpoints}"
    assert not list((project / ".checkpoints").rglob("*.pt"))  # every finished trial clears its checkpoint

    # A resumed trial ends where an uninterrupted run of it ends.
    f, resumed_result = resumed[0]
    exp_name, method, seed = f.parent.parent.name, f.parent.name, f.stem.removeprefix("seed")
    run(["repro", "run", "enkf", "--experiment", exp_name, "--method", method, "--seed", seed, "--threads",
         str(params["threads_per_trial"]), "--checkpoint-seconds", "0", "--no-progress"], project)
    straight = json.loads(f.read_text())
    assert _untimed(resumed_result["history"]) == _untimed(straight["history"])


def test_every_snakemake_run_here_gets_the_default_profile(monkeypatch):
    """Snakemake finds profiles/default beside the Snakefile: rerun-incomplete for every run."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    _, args = parse_args(["--cores", "1"])
    assert args.rerun_incomplete and args.printshellcmds
    assert readme_restart_command()[0] == "snakemake"
