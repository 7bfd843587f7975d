"""The pipeline DAG, declared once. Snakemake's rules and ``dvc.yaml`` are two views of it.

``stages(config)`` lists every job — its command, inputs, outputs and params — for the papers
and scale in the config. The Snakemake rules (``workflow/rules/*.smk``) take their commands and
inputs from the helpers below; ``dvc.yaml`` is written from ``stages()`` by
``repro pipeline dvc``; a test runs Snakemake's dry run and checks it lists the same jobs.

Every command is given the configuration it acts on (scale, seeds, papers, dataset parameters,
data mirror, tracking URI) on its command line, so a ``snakemake --config ...`` override reaches
every job. In ``dvc.yaml`` the dataset parameters are DVC templates (``${datasets.sine}``),
expanded by DVC from params.yaml at run time, so changing one re-runs exactly that preparation.

A trial depends on the code that runs it: the content hash of the core's and its paper
package's source (:func:`code_digest`) is a Snakemake param of every trial, and both source
trees are DVC dependencies of every train stage. Editing either re-runs the trials (and what
reads them), nothing else.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro import catalog, distributed, environment, leaderboard, paths
from repro import config as cfg
from repro.papers import get_paper


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


def _r(p: Path) -> str:
    return paths.rel(p)


def datasets_of(paper: str, scale: str) -> list[str]:
    return sorted({catalog.get_workload(e.workload).dataset for e in get_paper(paper).experiments_at(scale).values()})


def data_file(dataset: str) -> str:
    return _r(paths.prepared_data_path(dataset))


def data_files(dataset: str) -> list[str]:
    """The prepared tensors and their checksum sidecar (written last)."""
    return [data_file(dataset), data_file(dataset) + ".sha256"]


def render_params(params: dict[str, Any]) -> str:
    """``--key value`` pairs, the way DVC unpacks a ``${dict}`` template in a command."""
    return " ".join(f"--{k} {shlex.quote(str(v))}" for k, v in params.items())


def _mirror_opt(config: dict[str, Any]) -> str:
    return f" --mirror {shlex.quote(str(config['data_mirror']))}" if config.get("data_mirror") else ""


def _tracking_opt(config: dict[str, Any]) -> str:
    mlflow = config.get("mlflow") or {}
    uri, artifacts = mlflow.get("tracking_uri"), mlflow.get("artifact_root")
    return ((f" --tracking-uri {shlex.quote(uri)}" if uri else "")
            + (f" --artifact-root {shlex.quote(artifacts)}" if artifacts else ""))


def prepare_cmd(dataset: str, config: dict[str, Any], dvc: bool = False) -> str:
    params = cfg.dataset_params(config, dataset)
    if not params:
        rendered = ""
    elif dvc:
        rendered = " ${datasets." + dataset + "}"
    else:
        rendered = " " + render_params(params)
    return f"repro data prepare {dataset}{_mirror_opt(config)}{rendered}"


def train_input(paper: str, scale: str, experiment: str) -> str:
    return data_file(catalog.get_workload(get_paper(paper).experiment(scale, experiment).workload).dataset)


def train_cmd(paper: str, scale: str, experiment: str, method: str, config: dict[str, Any]) -> str:
    """One job runs every seed of (paper, experiment, method), one after the other in one process
    (a result file per seed): the interpreter, torch and MLflow start once, not once per seed —
    about 8 s per process on a CPU, a third of a smoke trial. Seeds stay independent trials.

    ``processes_per_trial`` > 1: each trial trains in that many processes (``--processes``, DDP);
    a method that cannot is refused here, naming it, before any job runs."""
    n_seeds = config["seeds"][scale]
    procs = config.get("processes_per_trial", 1)
    if procs > 1:
        distributed.check_method(get_paper(paper).method(method), paper, procs)
    return (f"repro run {paper} --scale {scale} --experiment {experiment} --method {method} --seeds {n_seeds}"
            f" --threads {config['threads_per_trial']}{f' --processes {procs}' if procs > 1 else ''}"
            f" --checkpoint-seconds {config['checkpoint_seconds']:g}{_tracking_opt(config)} --no-progress")


def trial_file(paper: str, scale: str, experiment: str, method: str, seed: int | str) -> str:
    return _r(paths.trial_path(paper, scale, experiment, method, int(seed)))


def method_trial_files(paper: str, scale: str, experiment: str, method: str, seeds: list[int]) -> list[str]:
    """The result files one train job writes (one per seed)."""
    return [trial_file(paper, scale, experiment, method, s) for s in seeds]


def trial_files(paper: str, scale: str, seeds: list[int]) -> list[str]:
    return [trial_file(paper, scale, e.name, m, s)
            for e in get_paper(paper).experiments_at(scale).values() for m in e.methods for s in seeds]


def evaluate_cmd(paper: str, config: dict[str, Any]) -> str:
    scale = config["scale"]
    return f"repro evaluate {paper} --scale {scale} --seeds {config['seeds'][scale]}"


def claims_file(paper: str, scale: str) -> str:
    return _r(paths.claims_path(paper, scale))


def metrics_file(paper: str, scale: str) -> str:
    return _r(paths.metrics_path(paper, scale))


# What code a trial runs (its source trees and their content hash) is part of its environment;
# a trial's checkpoint records the same digest (``repro.run``), so a resume never mixes code versions.
source_dirs = environment.source_dirs
_tree_digest = environment.tree_digest
code_digest = environment.code_digest


def source_deps(paper: str) -> list[str]:
    """The same source trees as DVC dependencies, relative to the project root."""
    return [_r(d) for d in source_dirs(paper)]


def timed_experiments(paper: str, scale: str) -> set[str]:
    """Experiments whose trials a claim at *scale* times (a ``*time*`` metric): on a shared CPU a
    trial's time depends on what runs beside it (two jobs on two hyperthreads slow each other by
    up to ~40%, measured), so these trials run alone — the scheduler gives each every core —
    and method and baseline are timed under the same conditions."""
    return {e for c in get_paper(paper).claims_at(scale) if not c.not_run and "time" in c.metric
            for e in c.experiment_names}


def trial_cores(paper: str, scale: str, experiment: str, config: dict[str, Any], all_cores: int) -> int:
    """Cores the scheduler reserves for one trial: every core for a timed experiment at the smoke
    scale (CPU), else ``threads_per_trial`` x ``processes_per_trial``. Torch still uses
    ``threads_per_trial`` threads in each process."""
    cores = config["threads_per_trial"] * config.get("processes_per_trial", 1)
    if scale == "smoke" and experiment in timed_experiments(paper, scale):
        return max(all_cores, cores)
    return cores


def trial_signature(paper: str, scale: str, experiment: str, method: str) -> str:
    """What a trial depends on beyond its data: Snakemake re-runs it when this changes."""
    p = get_paper(paper)
    return json.dumps({"workload": p.experiment(scale, experiment).workload,
                       "hparams": p.trial_hparams(scale, experiment, method),
                       "code": code_digest(paper)}, sort_keys=True)


def report_cmd(paper: str, config: dict[str, Any]) -> str:
    scale = config["scale"]
    return f"repro report {paper} --scale {scale} --seeds {config['seeds'][scale]}{_tracking_opt(config)}"


def report_dir(paper: str) -> str:
    return _r(paths.reports_dir(paper))


def index_cmd(config: dict[str, Any]) -> str:
    board = " --leaderboard" if leaderboard.selected_workloads(config) else ""
    return f"repro index --scale {config['scale']} --papers {','.join(config['papers'])}{board}"


# --- the leaderboard: one timed job per board workload (every method x seed), then the board ---

def _board_opts(config: dict[str, Any]) -> str:
    methods = config["leaderboard"]["methods"]
    return (f" --scale {config['scale']} --papers {','.join(config['papers'])}"
            f" --methods {'all' if methods == 'all' else ','.join(methods)}")


def leaderboard_train_cmd(workload: str, config: dict[str, Any]) -> str:
    seeds = config["leaderboard"]["seeds"][config["scale"]]
    return (f"repro leaderboard train {workload}{_board_opts(config)} --seeds {seeds}"
            f" --threads {config['threads_per_trial']}{_tracking_opt(config)} --no-progress")


def leaderboard_input(workload: str) -> str:
    return data_file(catalog.get_workload(leaderboard.board_workload(workload).workload).dataset)


def leaderboard_file(scale: str, workload: str) -> str:
    return _r(leaderboard.result_path(scale, workload))


def leaderboard_files(config: dict[str, Any]) -> list[str]:
    return [leaderboard_file(config["scale"], w) for w in leaderboard.selected_workloads(config)]


def leaderboard_source_deps(config: dict[str, Any]) -> list[str]:
    return sorted({d for p in config["papers"] for d in source_deps(p)})


def leaderboard_signature(workload: str, config: dict[str, Any]) -> str:
    """What a board job depends on beyond its data: the board workload, every entrant's setup
    and the code of the core and every selected paper. Snakemake re-runs the job when it changes."""
    bw = leaderboard.board_workload(workload, config["scale"])
    board = leaderboard.entrants(bw, config["papers"], config["leaderboard"]["methods"])
    return json.dumps({"board": repr(bw), "entrants": {e.id: e.hparams or e.reason for e in board},
                       "seeds": config["leaderboard"]["seeds"][config["scale"]],
                       "code": {p: code_digest(p) for p in config["papers"]}}, sort_keys=True, default=str)


def leaderboard_cores(config: dict[str, Any], all_cores: int) -> int:
    """A board job times every method against the baseline: at the smoke scale (CPU) it runs
    alone, with every core reserved (see ``timed_experiments``)."""
    return max(all_cores, config["threads_per_trial"]) if config["scale"] == "smoke" else config["threads_per_trial"]


def leaderboard_report_cmd(config: dict[str, Any]) -> str:
    return (f"repro leaderboard report{_board_opts(config)} --workloads "
            f"{','.join(leaderboard.selected_workloads(config))}{_tracking_opt(config)}")


def leaderboard_outputs() -> list[str]:
    """The board's report files and its figures' directory (the Markdown written last)."""
    return [_r(paths.reports_dir() / "leaderboard.md"), _r(paths.reports_dir() / "leaderboard.html"),
            _r(leaderboard.report_dir())]


def index_files() -> list[str]:
    return [_r(paths.reports_dir() / "index.html"), _r(paths.reports_dir() / "index.md")]


def stages(config: dict[str, Any], dvc: bool = False) -> list[Stage]:
    """Every job of the DAG for *config*. *dvc*: commands as dvc.yaml spells them (templates)."""
    scale, seeds = config["scale"], cfg.seeds(config)
    out: list[Stage] = []
    datasets = sorted({d for p in config["papers"] for d in datasets_of(p, scale)}
                      | {catalog.get_workload(leaderboard.board_workload(w).workload).dataset
                         for w in leaderboard.selected_workloads(config)})
    for ds in datasets:
        out.append(Stage(f"prepare_{ds}", prepare_cmd(ds, config, dvc), deps=[], outs=data_files(ds),
                         params=[f"datasets.{ds}"] if ds in config["datasets"] else []))
    for paper in config["papers"]:
        for exp in get_paper(paper).experiments_at(scale).values():
            for method in exp.methods:
                out.append(Stage(
                    f"train_{paper}_{scale}_{exp.name}_{method}",
                    train_cmd(paper, scale, exp.name, method, config),
                    deps=[train_input(paper, scale, exp.name), *source_deps(paper)],
                    outs=method_trial_files(paper, scale, exp.name, method, seeds),
                ))
        out.append(Stage(f"evaluate_{paper}_{scale}", evaluate_cmd(paper, config),
                         deps=trial_files(paper, scale, seeds), outs=[claims_file(paper, scale)],
                         metrics=[metrics_file(paper, scale)]))
        out.append(Stage(f"report_{paper}", report_cmd(paper, config),
                         deps=[claims_file(paper, scale), *trial_files(paper, scale, seeds)],
                         outs=[report_dir(paper)]))
    boards = leaderboard.selected_workloads(config)
    for w in boards:
        out.append(Stage(f"leaderboard_train_{scale}_{w}", leaderboard_train_cmd(w, config),
                         deps=[leaderboard_input(w), *leaderboard_source_deps(config)],
                         outs=[leaderboard_file(scale, w)]))
    if boards:
        out.append(Stage(f"leaderboard_{scale}", leaderboard_report_cmd(config), deps=leaderboard_files(config),
                         outs=leaderboard_outputs()))
    out.append(Stage("index", index_cmd(config), deps=[report_dir(p) for p in config["papers"]]
                     + (leaderboard_outputs()[:1] if boards else []), outs=index_files()))
    return out


def dvc_yaml(config: dict[str, Any]) -> str:
    """``dvc.yaml`` text for *config* (params.yaml). Regenerate with ``repro pipeline dvc``."""
    body: dict[str, Any] = {}
    for s in stages(config, dvc=True):
        stage: dict[str, Any] = {"cmd": s.cmd}
        if s.deps:
            stage["deps"] = s.deps
        if s.params:
            stage["params"] = s.params
        if s.outs:
            stage["outs"] = s.outs
        if s.metrics:
            stage["metrics"] = [{m: {"cache": False}} for m in s.metrics]
        body[s.name] = stage
    header = ("# Generated by `repro pipeline dvc` from params.yaml and the paper packages: do not edit.\n"
              "# The same DAG as the Snakefile (checked by tests/test_pipeline_agreement.py).\n")
    return header + yaml.safe_dump({"stages": body}, sort_keys=False, width=200)
