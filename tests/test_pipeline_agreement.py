"""Snakemake and DVC are two views of one DAG: same jobs, same commands, same inputs and outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run
from repro.pipeline import render_params

LOG_REDIRECT = re.compile(r"\s*>\s*\S+\s+2>&1\s*$")
TEMPLATE = re.compile(r"\$\{datasets\.([A-Za-z0-9_]+)\}")


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


def render_dvc_cmd(cmd: str, params: dict) -> str:
    """A dvc.yaml command as DVC runs it: ``${datasets.X}`` unpacked from params.yaml."""
    return TEMPLATE.sub(lambda m: render_params(params["datasets"][m.group(1)]), cmd)


def dvc_stages(path: Path, params: dict) -> dict[str, dict[str, set[str]]]:
    stages = yaml.safe_load(path.read_text())["stages"]
    out = {}
    for stage in stages.values():
        outs = set(stage.get("outs", [])) | {next(iter(m)) for m in stage.get("metrics", [])}
        # DVC also tracks the core's and each paper package's source (Snakemake has the content
        # hash of the same trees in each trial's params).
        deps = {d for d in stage.get("deps", []) if not d.startswith("packages/")}
        out[render_dvc_cmd(stage["cmd"], params)] = {"inputs": deps, "outputs": outs}
    return out


def params_yaml() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_dvc_yaml_is_generated_from_current_params():
    run(["repro", "pipeline", "dvc", "--check"], ROOT)


def test_snakemake_and_dvc_list_the_same_jobs():
    smk = snakemake_jobs(ROOT)
    dvc = dvc_stages(ROOT / "dvc.yaml", params_yaml())
    assert len(dvc) > 10
    assert not any("${" in cmd for cmd in dvc)  # every template was rendered
    prepare = [cmd for cmd in smk if cmd.startswith("repro data prepare sine ")]
    assert prepare and "--n_train " in prepare[0]  # Snakemake passes the parameters themselves
    assert set(smk) == set(dvc), (set(smk) ^ set(dvc))
    for cmd, job in smk.items():
        assert job["outputs"] == dvc[cmd]["outputs"], cmd
        assert job["inputs"] == dvc[cmd]["inputs"], cmd


def test_dvc_prepare_stages_use_the_params_templates():
    """In dvc.yaml a dataset's parameters are a DVC template over its params.yaml block (so a
    change there re-runs exactly that preparation), and the stage lists that block as a param."""
    params = params_yaml()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    prepare = {k: v for k, v in stages.items() if k.startswith("prepare_")}
    assert prepare
    for name, stage in prepare.items():
        ds = name.removeprefix("prepare_")
        if ds in params["datasets"]:
            assert stage["cmd"].endswith(" ${datasets." + ds + "}"), name
            assert stage["params"] == [f"datasets.{ds}"], name
        else:
            assert "${" not in stage["cmd"] and "params" not in stage, name


def test_render_params_is_what_dvc_unpacks():
    """The core renders `--key value` pairs exactly as DVC unpacks a `${dict}` in a command."""
    interpolate = pytest.importorskip("dvc.parsing.interpolate")
    for ds, block in params_yaml()["datasets"].items():
        assert render_params(block) == interpolate.to_str(block), ds


def test_every_train_stage_depends_on_its_package_source():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    train = {k: v for k, v in stages.items() if k.startswith("train_")}
    assert train
    for name, stage in train.items():
        paper = stage["cmd"].split()[2]  # repro run <paper> ...
        assert name.startswith(f"train_{paper}_")
        assert (ROOT / "packages" / paper / "src").is_dir()
        assert [d for d in stage["deps"] if d.startswith("packages/")] == ["packages/core/src",
                                                                          f"packages/{paper}/src"], name


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


def test_snakemake_config_overrides_reach_every_command():
    """`--config` strings (Snakemake keeps nested values as strings) are coerced, and the
    override is on the command line of every job that acts on it."""
    out = run(["snakemake", "--dry-run", "--printshellcmds", "--forceall", "--cores", "1", "--config",
               "papers=[enkf]", "seeds={smoke: 4, paper: 5}"], ROOT).stdout
    commands = re.findall(r"^Shell command: (.+)$", out, re.M)
    assert any(c.startswith("repro evaluate enkf --scale smoke --seeds 4") for c in commands)
    assert any(c.startswith("repro report enkf --scale smoke --seeds 4") for c in commands)
    assert any(c.startswith("repro index --scale smoke --papers enkf ") for c in commands)
    train = [c for c in commands if c.startswith("repro run ")]
    assert train and all(c.startswith("repro run enkf --scale smoke") for c in train)
    # one job per (experiment, method) runs all four seeds
    assert len(train) == 2 * 4 and all(" --seeds 4 " in c for c in train)
