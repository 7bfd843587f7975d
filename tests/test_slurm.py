"""SLURM for real: one paper's smoke reproduction on a one-node SLURM cluster (munged, MariaDB +
slurmdbd, slurmctld and slurmd on 127.0.0.1, started and stopped by
`workflow/profiles/slurm/test-cluster.sh`), through the SLURM profile and
snakemake-executor-plugin-slurm, with the commands of the README's "Run on a cluster" section.
The same reproduction run locally beside it must come out alike: the same jobs, the same MLflow
runs, the same numbers and verdicts, and each trial's run made inside a SLURM job (`sacct`)."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run
from repro.environment import cpu_name
from repro.papers import get_paper

PAPER = "enkf"
SEEDS = 3
BOARD_WORKLOAD = "digits_mlp"  # one board workload: the board's rules run as SLURM jobs too
README_CLUSTER_DIR = "/tmp/repro-slurm"  # the cluster directory the README's commands name
PROFILE = ROOT / "workflow/profiles/slurm"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"^## Run on a cluster\n(.*?)(?=^## )", text, re.S | re.M).group(1)


def _blocks() -> list[list[str]]:
    return [[ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            for block in re.findall(r"```sh\n(.*?)```", _section(), re.S)]


def site_commands() -> list[str]:
    return _blocks()[0]


def cluster_commands() -> list[str]:
    """The one-node test cluster's block: start, export SLURM_CONF, snakemake, sacct, stop."""
    (block,) = [b for b in _blocks() if any("test-cluster.sh start" in ln for ln in b)]
    return block


def _args(command: str, cluster_dir: Path) -> list[str]:
    """A README command as this test runs it: in its own cluster directory, as root (no sudo),
    in this test's environment (the same uv.lock, already synced: no `uv run`)."""
    args = shlex.split(command.replace(README_CLUSTER_DIR, str(cluster_dir)))
    if args[0] == "sudo":
        args = args[1:]
    if args[:2] == ["uv", "run"]:
        args = args[2:]
    return args


def _set_params(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["papers"] = [PAPER]
    params["seeds"]["smoke"] = SEEDS
    params["leaderboard"]["workloads"]["smoke"] = [BOARD_WORKLOAD]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _job_stats(output: str) -> dict[str, int]:
    """Rule -> jobs, from the table Snakemake prints when it starts."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if m[0] != "total"}


def _mlflow_runs(project: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"{project}: no MLflow experiment {experiment!r}"
    return client.search_runs([exp.experiment_id], max_results=1000)


def _trials(project: Path) -> dict[tuple[str, str, str], object]:
    """(experiment, method, seed) -> the trial's MLflow run (the reproduction parent run aside)."""
    runs = [r for r in _mlflow_runs(project, PAPER) if r.data.tags.get("reproduction") != "true"]
    by_id = {(r.data.tags["experiment"], r.data.tags["method"], r.data.tags["seed"]): r for r in runs}
    assert len(by_id) == len(runs), "two MLflow runs for one trial"
    return by_id


def _alive(pid: int) -> bool:
    """A process that has not exited (a zombie has: nobody reaps daemons in some containers)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _claim_rows(project: Path) -> list[str]:
    report = (project / f"reports/{PAPER}/index.md").read_text()
    return [line for line in report.splitlines() if line.startswith("| **")]


def test_readme_has_the_cluster_commands():
    (site,) = [c for c in site_commands() if "snakemake" in c]
    assert shlex.split(site)[:5] == ["uv", "run", "snakemake", "--workflow-profile", "workflow/profiles/slurm"]
    start, export, snakemake, sacct, stop = cluster_commands()
    assert shlex.split(start) == ["sudo", "workflow/profiles/slurm/test-cluster.sh", "start", README_CLUSTER_DIR]
    assert export == f"export SLURM_CONF={README_CLUSTER_DIR}/slurm.conf"
    assert shlex.split(snakemake)[:5] == shlex.split(site)[:5] and f"papers=[{PAPER}]" in shlex.split(snakemake)
    assert shlex.split(sacct)[0] == "sacct"
    assert shlex.split(stop) == ["sudo", "workflow/profiles/slurm/test-cluster.sh", "stop", README_CLUSTER_DIR]


def test_profile_sends_paper_scale_trials_to_the_gpu_partition(project_copy: Path):
    """The site settings as Snakemake evaluates them (dry run): a paper-scale trial asks for one GPU
    on the `gpu` partition, once (--gres, not --gres and --gpus); data preparation goes to `cpu`."""
    out = run(["snakemake", "--workflow-profile", str(PROFILE), "--config", "scale=paper", f"papers=[{PAPER}]",
               "--dry-run"], project_copy).stdout
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S)", out, re.S | re.M)
    resources = {}
    for rule, body in jobs:
        line = re.search(r"^\s+resources: (.*)$", body, re.M)
        if line:
            resources.setdefault(rule, []).append(dict(kv.split("=", 1) for kv in line.group(1).split(", ")))
    assert resources["train"] and resources["leaderboard_train"], sorted(resources)
    for res in resources["train"] + resources["leaderboard_train"]:
        assert (res["slurm_partition"], res["gres"], res["gpu"]) == ("gpu", "gpu:1", "0"), res
    for res in resources["prepare_data"]:
        assert res["slurm_partition"] == "cpu" and "gres" not in res, res


@pytest.fixture
def cluster_dir():
    if os.geteuid() != 0:
        pytest.skip("the one-node SLURM cluster runs slurmd and munged as root")
    # a short path: the munge socket's path must fit a Unix socket address (108 bytes)
    path = Path(tempfile.mkdtemp(prefix="repro-slurm-", dir="/tmp"))
    yield path
    subprocess.run([str(PROFILE / "test-cluster.sh"), "stop", str(path)], timeout=120, check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_smoke_reproduction_on_a_one_node_slurm_cluster(project_copy: Path, cluster_dir: Path, tmp_path: Path):
    _set_params(project_copy)
    local = tmp_path / "local"
    shutil.copytree(project_copy, local, symlinks=True)
    start, export, snakemake, sacct, stop = cluster_commands()
    command = _args(snakemake, cluster_dir)
    config = command[command.index("--config"):]

    # --- the same reproduction on this machine, for comparison (and its time) -----------------
    t0 = time.perf_counter()
    local_out = run(["snakemake", "--cores", "all", *config], local, timeout=1800)
    local_s = time.perf_counter() - t0

    # --- the cluster: installed where missing, started, its node idle --------------------------
    printed = run(_args(start, cluster_dir), ROOT, timeout=900).stdout
    assert printed.strip().splitlines()[-1] == export.replace(README_CLUSTER_DIR, str(cluster_dir))
    slurm_conf = export.split("=", 1)[1].replace(README_CLUSTER_DIR, str(cluster_dir))
    env = {"SLURM_CONF": slurm_conf}
    assert run(["sinfo", "--noheader", "--Node", "--format=%T"], ROOT, **env).stdout.split() == ["idle"]

    # --- the README's SLURM run --------------------------------------------------------------
    t0 = time.perf_counter()
    slurm_out = run(command, project_copy, timeout=1800, **env)
    slurm_s = time.perf_counter() - t0
    output = slurm_out.stdout + slurm_out.stderr
    (run_id,) = set(re.findall(r"^SLURM run ID: (\S+)$", output, re.M))

    # every job but the target `all` was a SLURM job of this run, and finished
    listed = run(_args(sacct, cluster_dir), project_copy, **env).stdout
    jobs = [dict(zip(("id", "state", "partition", "tres", "comment"), line.split("|")))
            for line in run(["sacct", "--allocations", "--parsable2", "--noheader", "--starttime=now-1days",
                             f"--name={run_id}", "--format=JobID,State,Partition,AllocTRES,Comment"],
                            project_copy, **env).stdout.splitlines()]
    assert jobs and {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    for j in jobs:
        assert j["id"] in listed and j["comment"] in listed  # the README's sacct shows them
        assert j["partition"] == "cpu" and "gpu" not in j["tres"], j  # smoke: CPU nodes, no GPU asked
    rules = Counter(re.match(r"rule_(\w+?)(?:_wildcards_|$)", j["comment"]).group(1) for j in jobs)
    planned = _job_stats(output)
    assert planned == _job_stats(local_out.stdout + local_out.stderr)  # the same DAG as locally
    assert rules == Counter({r: n for r, n in planned.items() if r != "all"}), (rules, planned)
    experiments = get_paper(PAPER).experiments_at("smoke")
    train_jobs = {j["comment"]: j["id"] for j in jobs if j["comment"].startswith("rule_train_")}
    assert set(train_jobs) == {f"rule_train_wildcards_{PAPER}_smoke_{e}_{m}"
                               for e, exp in experiments.items() for m in exp.methods}

    # --- the MLflow runs: the same trials, each run inside its SLURM job, the same numbers -----
    on_slurm, here = _trials(project_copy), _trials(local)
    assert len(here) == sum(len(exp.methods) for exp in experiments.values()) * SEEDS
    assert set(on_slurm) == set(here)
    for (experiment, method, seed), r in on_slurm.items():
        assert r.info.status == "FINISHED"
        job = r.data.tags.get("repro.slurm_job_id")
        assert job == train_jobs[f"rule_train_wildcards_{PAPER}_smoke_{experiment}_{method}"], (experiment, method)
        assert "repro.slurm_job_id" not in here[experiment, method, seed].data.tags
        local_run = here[experiment, method, seed]
        assert set(r.data.params) == set(local_run.data.params)
        assert {k: v for k, v in r.data.params.items()} == local_run.data.params
        quality = {k: v for k, v in r.data.metrics.items() if "time" not in k}
        assert quality and quality == {k: v for k, v in local_run.data.metrics.items() if "time" not in k}
    board = [r for r in _mlflow_runs(project_copy, "leaderboard")]
    assert len(board) == len(_mlflow_runs(local, "leaderboard")) > 0
    assert {r.info.status for r in board} == {"FINISHED"}

    # --- the report: the same verdicts and numbers, listing the SLURM run's MLflow runs --------
    claims = json.loads((project_copy / f"results/{PAPER}/smoke/claims.json").read_text())["claims"]
    local_claims = json.loads((local / f"results/{PAPER}/smoke/claims.json").read_text())["claims"]
    assert {c: (v["verdict"], v["mean"]) for c, v in claims.items()} == {
        c: (v["verdict"], v["mean"]) for c, v in local_claims.items()}
    assert _claim_rows(project_copy) == _claim_rows(local) and _claim_rows(local)
    report = (project_copy / f"reports/{PAPER}/index.md").read_text()
    assert all(r.info.run_id in report for r in on_slurm.values())
    assert (project_copy / "reports/leaderboard.md").is_file() and (project_copy / "reports/index.html").is_file()

    # --- stopped: no daemon left, the config link removed ---------------------------------------
    pids = [int(p.read_text()) for p in cluster_dir.glob("*.pid")]
    run(_args(stop, cluster_dir), ROOT, timeout=300)
    assert len(pids) == 5 and not any(_alive(pid) for pid in pids)
    assert not Path("/run/slurm/conf/slurm.conf").is_symlink()

    print(f"\n{PAPER} smoke reproduction ({sum(planned.values()) - 1} jobs, {SEEDS} seeds, board on "
          f"{BOARD_WORKLOAD}) on {cpu_name()} ({os.cpu_count()} cores, {platform.node()}): "
          f"SLURM one-node cluster {slurm_s:.0f} s, local --cores all {local_s:.0f} s")
