"""The real pipeline on the smoke scale, in a temporary copy of the project (Snakemake, then DVC)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import run

SEEDS = 3
VERDICT_MARKS = {"reproduced": "✔", "not reproduced": "✘", "inconclusive": "?", "by construction": "≡",
                 "not run": "–"}


def _set_params(project: Path, **changes) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _mlflow_runs(project: Path, experiment: str):
    """(trial runs, reproduction parent runs) of one MLflow experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("reproduction") == "true"]
    return [r for r in runs if r.data.tags.get("reproduction") != "true"], parents


def _planned(project: Path) -> dict[str, int]:
    """Rule -> number of jobs Snakemake's dry run would execute (empty: nothing to do)."""
    out = run(["snakemake", "--dry-run", "--cores", "1"], project).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if m[0] != "total"}


@pytest.mark.slow
def test_snakemake_then_dvc_reproduce_and_track(project_copy: Path):
    project = project_copy
    # The pipeline machinery is what is under test here, so one paper keeps it to minutes;
    # every paper's own methods are covered by tests/test_papers_generic.py.
    _set_params(project, **{"seeds.smoke": SEEDS, "papers": ["enkf"]})
    run(["repro", "pipeline", "dvc"], project)

    # --- Snakemake: the whole DAG from nothing, 2 parallel jobs on a fresh MLflow store ----------
    run(["snakemake", "--cores", "2"], project)
    claims = json.loads((project / "results/enkf/smoke/claims.json").read_text())
    assert claims["seeds"] == list(range(SEEDS))
    for cid, c in claims["claims"].items():
        assert c["verdict"] in VERDICT_MARKS, cid
        if c["verdict"] != "not run":
            # every seed is judged: defined (in the CI) or undefined (both method and baseline missed)
            assert len(c["per_seed"]) == SEEDS and c["n_seeds"] + c["undefined_seeds"] == SEEDS, cid
            if c["mean"] is not None and c["ci_low"] is not None:  # null: infinite (a missed target)
                assert c["ci_low"] <= c["mean"] <= c["ci_high"], cid

    report = (project / "reports/enkf/index.md").read_text()
    for cid, c in claims["claims"].items():
        row = next(line for line in report.splitlines() if line.startswith(f"| **{cid}**"))
        assert VERDICT_MARKS[c["verdict"]] in row and c["verdict"] in row
        if c["mean"] is not None:
            assert f"{c['mean']:.4g}" in row  # the table shows the measured value, not a constant
    html = (project / "reports/enkf/index.html").read_text()
    assert "data:image/png;base64," in html and not re.search(r'src="(?!data:)', html)  # renders offline
    assert "enkf/index.html" in (project / "reports/index.html").read_text()
    run(["snakemake", "--report", "report.zip"], project)  # the reports are registered for --report
    assert (project / "report.zip").stat().st_size > 10_000

    # --- the leaderboard: the board baseline on both board workloads, enkf's methods listed ---
    board = (project / "reports/leaderboard.md").read_text()
    assert "## Performance profiles" in board and "`core/baseline`" in board and "`enkf/gd_converged`" in board
    assert "`enkf/esmda`" in board and "declares no setup for shared workloads" in board  # not applicable
    # enkf's two GD baselines are the board baseline's computation: listed as such, not run again
    assert "| `enkf/gd_equal_budget` | `core/baseline` |" in board and "| `enkf/gd_converged` | `core/baseline` |" in board
    assert (project / "reports/leaderboard/performance_profile.png").stat().st_size > 1000
    assert "leaderboard.html" in (project / "reports/index.html").read_text()
    board_runs, _ = _mlflow_runs(project, "leaderboard")
    assert len(board_runs) == 2 * 1 * SEEDS + 1  # workloads x (the baseline alone runs) x seeds + board/smoke

    runs, parents = _mlflow_runs(project, "enkf")
    assert len(runs) == 2 * 4 * SEEDS  # experiments x methods x seeds (the parent run aside)
    (parent,) = parents  # one reproduction run per paper x scale, made by the report
    assert parent.info.run_name == "reproduction/smoke" and parent.info.run_id in report
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert {"paper", "method", "seed", "scale", "dataset_sha256", "git_commit", "git_dirty", "device",
                "mlflow.source.name"} <= set(r.data.tags)
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "final.test_rmse" in r.data.metrics and "final.val_rmse" in r.data.metrics
        assert r.info.run_id in report  # the report lists every run id

    # --- DVC: adopt Snakemake's outputs, then change one dataset's generator parameter ---------
    run(["dvc", "commit", "--force", "--quiet"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout

    # --- Re-runs follow code: a content hash of the core's and the paper's source ----------------
    assert _planned(project) == {}, "a finished run must leave nothing to do"
    trainer = project / "packages/core/src/repro/trainer.py"
    original = trainer.read_text()
    trainer.write_text(original + "\n# an edit of the core\n")
    planned = _planned(project)
    assert planned.get("train") == 2 * 4 and "prepare_data" not in planned, planned  # a job runs every seed
    assert planned.get("leaderboard_train") == 2, planned  # the board runs the core's code too
    assert set(planned) <= {"train", "evaluate", "report", "leaderboard_train", "leaderboard", "index", "all"}, planned
    dvc_changed = set(re.findall(r"^(\S+):\s*$", run(["dvc", "status"], project).stdout, re.M))
    assert {s for s in dvc_changed if s.startswith("train_")} == {
        f"train_enkf_smoke_{e}_{m}" for e in ("sine", "mexican_hat")
        for m in ("esmda", "enkf", "gd_equal_budget", "gd_converged")}, dvc_changed
    assert not any(s.startswith("prepare_") for s in dvc_changed), dvc_changed
    trainer.write_text(original)  # same content again (a newer mtime): nothing to re-run
    assert _planned(project) == {}
    assert "up to date" in run(["dvc", "status"], project).stdout

    untouched = {p: p.read_bytes() for p in (project / "results/enkf/smoke/mexican_hat").rglob("*.json")}
    sine_before = (project / "results/enkf/smoke/sine/esmda/seed0.json").read_bytes()

    _set_params(project, **{"datasets.sine.noise": 0.08})
    status = run(["dvc", "status"], project).stdout
    assert "prepare_sine" in status and "mexican_hat" not in status

    out = run(["dvc", "repro"], project).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    expected = {"prepare_sine", "evaluate_enkf_smoke", "report_enkf", "index"} | {
        f"train_enkf_smoke_sine_{m}" for m in ("esmda", "enkf", "gd_equal_budget", "gd_converged")
    }
    assert ran == expected, ran ^ expected
    assert all(p.read_bytes() == b for p, b in untouched.items())  # mexican-hat trials not re-run
    assert (project / "results/enkf/smoke/sine/esmda/seed0.json").read_bytes() != sine_before

    metrics = run(["dvc", "metrics", "show", "--json"], project).stdout
    shown = json.loads(metrics)
    assert any("esmda_spread_shrinks_sine" in json.dumps(v) for v in shown.values())
    assert "up to date" in run(["dvc", "status"], project).stdout
