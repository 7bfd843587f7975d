"""The README's multi-process command (section "Multi-process training (DDP)"), run as written in
a copy of the project, against the same trial in one process: the same final metrics within the
tolerance that ``packages/core/tests/test_distributed.py`` states and justifies (1e-5 relative on
losses, one sample on accuracies, counters exact), one MLflow run per invocation (rank 0's),
the result written once, recording its process count. On the CPU (gloo), wherever it runs."""

from __future__ import annotations

import json
import math
import re
import shlex

import pytest

from conftest import ROOT, run

REL = 1e-5


def readme_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Multi-process training \(DDP\)\n.*?```sh\n(.*?)```", text, re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def _opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_readme_command_is_a_two_process_repro_run():
    args = readme_command()
    assert args[:4] == ["uv", "run", "repro", "run"] and _opt(args, "--processes") == "2"


@pytest.mark.slow
def test_the_readme_multi_process_run_ends_as_one_process(project_copy):
    from mlflow.tracking import MlflowClient

    args = readme_command()[2:]  # `uv run` is this test's own environment
    paper, scale, experiment, method = args[2], _opt(args, "--scale"), _opt(args, "--experiment"), _opt(args, "--method")
    i = args.index("--processes")
    one_process = args[:i] + args[i + 2:]
    result = project_copy / "results" / paper / scale / experiment / method / f"seed{_opt(args, '--seed')}.json"
    run(["repro", "data", "prepare", "digits"], project_copy)

    run(one_process, project_copy, REPRO_DEVICE="cpu")
    one = json.loads(result.read_text())
    out = run(args, project_copy, REPRO_DEVICE="cpu")
    two = json.loads(result.read_text())
    assert out.stdout.count("wrote results/") == 1, out.stdout  # rank 0 reports, the others do not

    assert (one["processes"], two["processes"]) == (1, 2)
    a, b = one["summary"], two["summary"]
    for key in ("epochs", "forward_evals", "reached_target", "epochs_to_target", "steps_to_target",
                "instances_to_target"):
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    n_test = 450  # the digits test split
    for key in ("val_accuracy", "test_accuracy"):
        assert abs(a[key] - b[key]) <= 1.001 / n_test, (key, a[key], b[key])
    for key in ("val_cross_entropy", "test_cross_entropy"):
        assert math.isclose(a[key], b[key], rel_tol=REL), (key, a[key], b[key])

    client = MlflowClient(f"sqlite:///{project_copy / 'mlflow.db'}")
    exp = client.get_experiment_by_name(paper)
    runs = client.search_runs([exp.experiment_id], f"tags.method = '{method}'")
    assert sorted(r.data.tags["processes"] for r in runs) == ["1", "2"]  # one run per invocation
    two_run = next(r for r in runs if r.data.tags["processes"] == "2")
    assert two_run.info.run_id == two["mlflow_run_id"] and two_run.info.status == "FINISHED"
    assert two_run.data.metrics["final.test_accuracy"] == b["test_accuracy"]
