"""repro.report: a paper's report from its trials and claims.json (FAKE paper, synthetic trials),
with the by-construction mark, misses shown as such, and the MLflow reproduction parent run."""

from __future__ import annotations

import json
import re

import pytest

from repro import paths
from repro.errors import ReproError
from repro.evaluate import write_claims
from repro.files import write_json
from repro.report import VERDICT_MARK, build_index, build_report

SEEDS = [0, 1, 2]


def history(method, seed, epochs):
    slope = 0.05 if method == "boosted" else 0.03
    return [{"epoch": float(e), "step": float(e), "train_time_s": 0.1 * e, "train_cpu_time_s": 0.1 * e,
             "forward_evals": 10.0 * e, "val_rmse": 0.3 - slope * e - 0.001 * seed, "test_rmse": 0.3 - slope * e,
             "val_r2": 0.5, "test_r2": 0.5, "train_loss": 0.1} for e in range(1, epochs + 1)]


@pytest.fixture
def trials(project, mlflow_store):
    """Every trial of the fake paper at smoke, each with a real (empty) MLflow run."""
    from mlflow.tracking import MlflowClient

    from repro.tracking import get_or_create_experiment

    client = MlflowClient(mlflow_store)
    exp_id = get_or_create_experiment(mlflow_store, "fake")
    out = []
    for exp, epochs in (("sine", 3), ("hat", 2)):
        for method in ("gd", "boosted"):
            for seed in SEEDS:
                h = history(method, seed, epochs)
                missed = exp == "hat" and method == "boosted" and seed == 0
                summary = {k: v for k, v in h[-1].items() if k.startswith(("val_", "test_"))}
                summary.update(train_time_s=h[-1]["train_time_s"], train_cpu_time_s=h[-1]["train_cpu_time_s"],
                               eval_time_s=0.01, forward_evals=h[-1]["forward_evals"], epochs=float(epochs),
                               reached_target=0.0 if missed else 1.0, time_to_target_s=None if missed else 0.2,
                               time_to_target_cpu_s=None if missed else 0.2, epochs_to_target=None if missed else 2.0)
                run = client.create_run(exp_id, run_name=f"{exp}/{method}/seed{seed}")
                t = {"paper": "fake", "experiment": exp, "method": method, "seed": seed, "scale": "smoke",
                     "workload": "sine" if exp == "sine" else "mexican_hat",
                     "dataset": "sine" if exp == "sine" else "mexican_hat", "dataset_sha256": "ab" * 32,
                     "quality_metric": "test_rmse", "target_metric": "val_rmse", "target": 0.1,
                     "hparams": {}, "summary": summary, "history": h, "mlflow_run_id": run.info.run_id,
                     "device": "CPU: test", "torch_threads": 1,
                     "environment": {"git_commit": "abc", "git_dirty": "false", "cpu": "test cpu", "cpu_count": "2",
                                     "platform": "linux", "python": "3.11", "versions": {"torch": "2"}}}
                write_json(t, paths.trial_path("fake", "smoke", exp, method, seed))
                out.append(t)
    return out


def test_report_shows_every_verdict_kind_and_files_runs_under_a_parent(project, trials, mlflow_store):
    from mlflow.tracking import MlflowClient

    claims = json.loads(write_claims("fake", "smoke", SEEDS).read_text())
    assert claims["claims"]["gd_epochs_fixed"]["verdict"] == "by construction"
    out = build_report("fake", "smoke", SEEDS, {"mlflow": {"tracking_uri": None}})
    assert out == paths.reports_dir("fake")
    md = (out / "index.md").read_text()
    for cid, c in claims["claims"].items():
        row = next(line for line in md.splitlines() if line.startswith(f"| **{cid}**"))
        assert VERDICT_MARK[c["verdict"]] in row, cid
    fixed = next(line for line in md.splitlines() if line.startswith("| **gd_epochs_fixed**"))
    assert "≡ by construction" in fixed and "✔" not in fixed
    avg = next(line for line in md.splitlines() if line.startswith("| **boosted_time_to_target_avg**"))
    assert "n/a" in avg and "✘ not reproduced" in avg  # infinite mean (boosted missed a seed): no number
    assert "boosted missed the target on 1 seed(s)" in md
    assert "(2/3 reached)" in md  # the method table counts the misses
    assert "on the validation split" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scale"] == "smoke" and summary["summary"]["by construction"] == 1
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and not re.search(r'src="(?!data:)', html)  # renders offline

    client = MlflowClient(mlflow_store)
    parent = re.search(r"Reproduction \(parent\) run: `([0-9a-f]+)`", md).group(1)
    p = client.get_run(parent)
    assert f"#/experiments/{p.info.experiment_id}/runs/{parent}?workflowType=machine_learning" in md
    assert p.data.tags["reproduction"] == "true" and p.info.run_name == "reproduction/smoke"
    assert p.data.tags["claim.gd_epochs_fixed"] == "by construction"
    for t in trials:
        assert t["mlflow_run_id"] in md
        assert client.get_run(t["mlflow_run_id"]).data.tags["mlflow.parentRunId"] == parent

    index = build_index(["fake"], "smoke")
    index_md = index.with_name("index.md").read_text()
    row = next(line for line in index_md.splitlines() if "`fake`" in line)
    assert row.rstrip().endswith("| 1 |") and "by construction" not in row.split("|")[4]


def test_report_refuses_claims_of_other_seeds_or_scale(project, trials):
    write_claims("fake", "smoke", SEEDS)
    with pytest.raises(ReproError, match=r"was evaluated for scale 'smoke' with seeds \[0, 1, 2\], not 'smoke' "
                                         r"with \[0, 1\]; run `repro evaluate` again"):
        build_report("fake", "smoke", [0, 1], {})
    with pytest.raises(ReproError, match=r"results/fake/paper/claims.json is missing; run `repro evaluate fake`"):
        build_report("fake", "paper", SEEDS, {})
