"""The pipeline DAG, declared once. Snakemake's rules and ``dvc.yaml`` are two views of it.

``stages(config)`` lists every job — its command, inputs, outputs and params — for the papers
and scale in the config. The Snakemake rules (``workflow/rules/*.smk``) take their inputs and
commands from the helpers below; ``dvc.yaml`` is written from ``stages()`` by
``repro pipeline dvc``; a test runs Snakemake's dry run and checks it lists the same jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from repro import config as cfg
from repro import paths
from repro.registry import get_paper


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


def _r(p) -> str:
    return paths.rel(p)


def datasets_of(paper: str, scale: str) -> list[str]:
    from repro.workloads import get_workload

    return sorted({get_workload(e.workload).dataset for e in get_paper(paper).experiments_at(scale).values()})


def data_file(dataset: str) -> str:
    return _r(paths.prepared_data_path(dataset))


def data_files(dataset: str) -> list[str]:
    """The prepared tensors and their checksum sidecar (written last)."""
    return [data_file(dataset), data_file(dataset) + ".sha256"]


def prepare_cmd(dataset: str) -> str:
    return f"repro data prepare {dataset}"


def train_input(paper: str, scale: str, experiment: str) -> str:
    from repro.workloads import get_workload

    return data_file(get_workload(get_paper(paper).experiment(scale, experiment).workload).dataset)


def train_cmd(paper: str, scale: str, experiment: str, method: str, seed: int | str, threads: int | str) -> str:
    return (f"repro run {paper} --scale {scale} --experiment {experiment} --method {method} --seed {seed}"
            f" --threads {threads} --no-progress")


def trial_file(paper: str, scale: str, experiment: str, method: str, seed: int | str) -> str:
    return _r(paths.trial_path(paper, scale, experiment, method, int(seed)))


def trial_files(paper: str, scale: str, seeds: list[int]) -> list[str]:
    return [trial_file(paper, scale, e.name, m, s)
            for e in get_paper(paper).experiments_at(scale).values() for m in e.methods for s in seeds]


def evaluate_cmd(paper: str, scale: str) -> str:
    return f"repro evaluate {paper} --scale {scale}"


def claims_file(paper: str, scale: str) -> str:
    return _r(paths.claims_path(paper, scale))


def metrics_file(paper: str, scale: str) -> str:
    return _r(paths.metrics_path(paper, scale))


def trial_signature(paper: str, scale: str, experiment: str, method: str) -> str:
    """What a trial depends on beyond its data: Snakemake re-runs it when this changes."""
    import json

    exp = get_paper(paper).experiment(scale, experiment)
    return json.dumps({"workload": exp.workload, "hparams": exp.methods[method]}, sort_keys=True)


def report_cmd(paper: str, scale: str) -> str:
    return f"repro report {paper} --scale {scale}"


def report_dir(paper: str) -> str:
    return _r(paths.reports_dir(paper))


INDEX_CMD = "repro index"


def index_files() -> list[str]:
    return [_r(paths.reports_dir() / "index.html"), _r(paths.reports_dir() / "index.md")]


def package_source(paper: str) -> str:
    """The paper package's source as a DVC dependency: the project's own ``packages/<name>``
    (where it is installed from in a checkout), else wherever it is installed."""
    installed = get_paper(paper).package_dir
    local = paths.project_root() / "packages" / installed.name
    return _r(local if local.is_dir() else installed)


def stages(config: dict[str, Any]) -> list[Stage]:
    scale, seeds = config["scale"], cfg.seeds(config)
    out: list[Stage] = []
    datasets = sorted({d for p in config["papers"] for d in datasets_of(p, scale)})
    for ds in datasets:
        out.append(Stage(f"prepare_{ds}", prepare_cmd(ds), deps=[], outs=data_files(ds),
                         params=[f"datasets.{ds}"] if ds in config["datasets"] else []))
    for paper in config["papers"]:
        for exp in get_paper(paper).experiments_at(scale).values():
            for method in exp.methods:
                for seed in seeds:
                    out.append(Stage(
                        f"train_{paper}_{scale}_{exp.name}_{method}_seed{seed}",
                        train_cmd(paper, scale, exp.name, method, seed, config["threads_per_trial"]),
                        deps=[train_input(paper, scale, exp.name), package_source(paper)],
                        outs=[trial_file(paper, scale, exp.name, method, seed)],
                    ))
        out.append(Stage(f"evaluate_{paper}_{scale}", evaluate_cmd(paper, scale),
                         deps=trial_files(paper, scale, seeds), outs=[claims_file(paper, scale)],
                         metrics=[metrics_file(paper, scale)]))
        out.append(Stage(f"report_{paper}", report_cmd(paper, scale),
                         deps=[claims_file(paper, scale), *trial_files(paper, scale, seeds)],
                         outs=[report_dir(paper)]))
    out.append(Stage("index", INDEX_CMD, deps=[report_dir(p) for p in config["papers"]], outs=index_files()))
    return out


def dvc_yaml(config: dict[str, Any]) -> str:
    """``dvc.yaml`` text for *config* (params.yaml). Regenerate with ``repro pipeline dvc``."""
    body: dict[str, Any] = {}
    for s in stages(config):
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
