"""Snakemake and DVC are two views of one DAG: same jobs, same commands, same inputs and outputs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from conftest import ROOT, run

LOG_REDIRECT = re.compile(r"\s*>\s*\S+\s+2>&1\s*$")


def snakemake_jobs(cwd: Path) -> dict[str, dict[str, set[str]]]:
    """command -> {inputs, outputs} for every job of a forced dry run (rule `all` has no command)."""
    out = run(["snakemake", "--dry-run", "--printshellcmds", "--forceall", "--cores", "1"], cwd).stdout
    jobs = {}
    for block in out.split("\n\n"):
        m = re.search(r"^Shell command: (.+)$", block, re.M)
        if not m or m.group(1) == "None":  # rule `all` runs nothing
            continue
        fields = {k: set(v.split(", ")) for k, v in re.findall(r"^\s+(input|output): (.+)$", block, re.M)}
        jobs[LOG_REDIRECT.sub("", m.group(1))] = {"inputs": fields.get("input", set()),
                                                 "outputs": fields.get("output", set())}
    return jobs


def dvc_stages(path: Path) -> dict[str, dict[str, set[str]]]:
    stages = yaml.safe_load(path.read_text())["stages"]
    out = {}
    for stage in stages.values():
        outs = set(stage.get("outs", [])) | {next(iter(m)) for m in stage.get("metrics", [])}
        # DVC also tracks each paper package's source (Snakemake tracks hyper-parameters as params).
        deps = {d for d in stage.get("deps", []) if not d.startswith("packages/")}
        out[stage["cmd"]] = {"inputs": deps, "outputs": outs}
    return out


def test_dvc_yaml_is_generated_from_current_params():
    run(["repro", "pipeline", "dvc", "--check"], ROOT)


def test_snakemake_and_dvc_list_the_same_jobs():
    smk = snakemake_jobs(ROOT)
    dvc = dvc_stages(ROOT / "dvc.yaml")
    assert len(dvc) > 10
    assert set(smk) == set(dvc), (set(smk) ^ set(dvc))
    for cmd, job in smk.items():
        assert job["outputs"] == dvc[cmd]["outputs"], cmd
        assert job["inputs"] == dvc[cmd]["inputs"], cmd


def test_every_train_stage_depends_on_its_package_source():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    train = {k: v for k, v in stages.items() if k.startswith("train_")}
    assert train and all(f"packages/{name.split('_')[1]}" in v["deps"] for name, v in train.items())


def test_snakemake_lint_is_clean():
    proc = run(["snakemake", "--lint"], ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakemake_rejects_bad_config_with_the_key_and_choices():
    bad_scale = run(["snakemake", "-n", "--config", "scale=huge"], ROOT, check=False)
    assert bad_scale.returncode != 0
    assert "scale" in bad_scale.stderr + bad_scale.stdout and "smoke" in bad_scale.stderr + bad_scale.stdout
    bad_paper = run(["snakemake", "-n", "--config", "papers=[nope]"], ROOT, check=False)
    assert bad_paper.returncode != 0
    text = bad_paper.stderr + bad_paper.stdout
    assert "unknown paper" in text and "nope" in text and "enkf" in text
