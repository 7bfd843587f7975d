"""The pipeline DAG: stages(config) and the dvc.yaml generated from it (no Snakemake, no DVC here)."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from repro import config as cfg
from repro import pipeline
from repro.pipeline import dvc_yaml, render_params, stages
from repro.papers import get_paper
from repro.workloads import get_workload

SINE_CMD = ("repro data prepare sine --mirror ../shared/data --n_train 200 --n_test 200 --noise 0.05 "
            "--x_min -3.141592653589793 --x_max 3.141592653589793 --seed 1234")


def by_name(config, dvc=False):
    return {s.name: s for s in stages(config, dvc=dvc)}


def test_train_stages_one_per_experiment_method_running_every_seed(config):
    all_stages = stages(config)
    train = [s for s in all_stages if s.name.startswith("train_")]
    paper = get_paper("fake")
    expected = {f"train_fake_smoke_{e.name}_{m}" for e in paper.experiments_at("smoke").values() for m in e.methods}
    assert len(expected) == 2 * 2
    assert {s.name for s in train} == expected and len(train) == len(expected)
    names = [s.name for s in all_stages]
    assert len(names) == len(set(names))
    s = next(s for s in train if s.name == "train_fake_smoke_hat_boosted")
    assert s.cmd == ("repro run fake --scale smoke --experiment hat --method boosted --seeds 3 --threads 1 "
                     "--checkpoint-seconds 10 --no-progress")
    assert s.outs == [f"results/fake/smoke/hat/boosted/seed{k}.json" for k in range(3)]


def test_commands_carry_the_configuration(project):
    """Every command is given what it acts on, so a `--config` override reaches every job."""
    config = cfg.load(overrides={"scale": "paper", "seeds": {"smoke": 3, "paper": 4}, "threads_per_trial": 2,
                                 "checkpoint_seconds": 2.5, "mlflow": {"tracking_uri": "http://mlflow.example:5000"}})
    s = by_name(config)
    train = [v for k, v in s.items() if k.startswith("train_")]
    assert len(train) == 2 * 2 and all(len(t.outs) == 4 for t in train)
    assert all(" --scale paper " in t.cmd and " --seeds 4 " in t.cmd and " --threads 2 " in t.cmd for t in train)
    assert all(" --checkpoint-seconds 2.5 " in t.cmd for t in train)
    assert all("--tracking-uri http://mlflow.example:5000" in t.cmd for t in train)
    assert s["evaluate_fake_paper"].cmd == "repro evaluate fake --scale paper --seeds 4"
    assert s["report_fake"].cmd == ("repro report fake --scale paper --seeds 4 "
                                    "--tracking-uri http://mlflow.example:5000")
    assert s["index"].cmd == "repro index --scale paper --papers fake"
    assert s["evaluate_fake_paper"].outs == ["results/fake/paper/claims.json"]
    # without a configured tracking URI no option is passed (the job's environment decides)
    plain = by_name(cfg.load())
    assert all("--tracking-uri" not in v.cmd for v in plain.values())


def test_index_lists_every_configured_paper(project, fake_paper):
    import dataclasses

    from repro import papers

    papers.add_paper(dataclasses.replace(fake_paper, slug="fake2"))
    try:
        config = cfg.load(overrides={"papers": ["fake", "fake2"]})
        s = by_name(config)
        assert s["index"].cmd == "repro index --scale smoke --papers fake,fake2"
        assert s["index"].deps == ["reports/fake", "reports/fake2"]
        assert {"report_fake", "report_fake2", "evaluate_fake2_smoke"} <= set(s)
        assert sum(k.startswith("prepare_sine") for k in s) == 1  # a dataset is prepared once
    finally:
        papers.remove_paper("fake2")


def test_prepare_stages_only_for_used_datasets(config):
    prepare = {k: v for k, v in by_name(config).items() if k.startswith("prepare_")}
    assert set(prepare) == {"prepare_mexican_hat", "prepare_sine"}  # not digits, mnist, cifar
    sine = prepare["prepare_sine"]
    assert sine.cmd == SINE_CMD  # the dataset's parameters as --key value pairs, and the mirror
    assert sine.outs == ["data/prepared/sine.pt", "data/prepared/sine.pt.sha256"]
    assert sine.params == ["datasets.sine"] and sine.deps == []


def test_dvc_prepare_commands_use_the_params_template(config):
    dvc = {k: v for k, v in by_name(config, dvc=True).items() if k.startswith("prepare_")}
    assert dvc["prepare_sine"].cmd == "repro data prepare sine --mirror ../shared/data ${datasets.sine}"
    assert dvc["prepare_mexican_hat"].cmd == ("repro data prepare mexican_hat --mirror ../shared/data "
                                              "${datasets.mexican_hat}")
    # only the prepare commands differ between the two views
    plain = by_name(config)
    assert {k for k in plain if plain[k].cmd != by_name(config, dvc=True)[k].cmd} == set(dvc)


def test_prepare_cmd_without_params_or_mirror(project):
    config = cfg.load(overrides={"data_mirror": None})
    assert pipeline.prepare_cmd("mnist", config) == "repro data prepare mnist"
    assert pipeline.prepare_cmd("mnist", config, dvc=True) == "repro data prepare mnist"
    assert pipeline.prepare_cmd("digits", config) == "repro data prepare digits --test_fraction 0.25 --seed 0"
    assert pipeline.prepare_cmd("digits", config, dvc=True) == "repro data prepare digits ${datasets.digits}"
    spaced = cfg.load(overrides={"data_mirror": "my data"})
    assert pipeline.prepare_cmd("mnist", spaced) == "repro data prepare mnist --mirror 'my data'"


def test_render_params_is_dvc_dict_unpacking():
    """DVC unpacks `${dict}` in a command as `--key value` pairs, in the dict's order."""
    assert render_params({"n_train": 200, "noise": 0.05, "x_min": -3.5, "seed": 0}) == \
        "--n_train 200 --noise 0.05 --x_min -3.5 --seed 0"
    assert render_params({}) == ""
    assert shlex.split(render_params({"name": "a b"})) == ["--name", "a b"]  # quoted for the shell


def test_prepare_command_round_trips_through_the_cli_parser(config):
    """What the prepare command passes is what `repro data prepare` reads back."""
    from repro.cli import _dataset_params, build_parser

    argv = shlex.split(by_name(config)["prepare_sine"].cmd)[1:]
    args, extra = build_parser().parse_known_args(argv)
    assert args.dataset == "sine" and args.mirror == "../shared/data"
    assert _dataset_params(extra) == cfg.dataset_params(config, "sine")


def test_every_train_stage_depends_on_its_data_and_source(config):
    all_stages = stages(config)
    produced = {out for s in all_stages for out in s.outs}
    paper = get_paper("fake")
    core_src, paper_src = pipeline.source_deps("fake")
    assert core_src.endswith("packages/core/src") and paper_src.endswith("fake_package/src")
    for s in all_stages:
        if not s.name.startswith("train_"):
            continue
        exp_name = next(e for e in paper.experiments_at("smoke") if s.name.startswith(f"train_fake_smoke_{e}_"))
        dataset = get_workload(paper.experiment("smoke", exp_name).workload).dataset
        assert s.deps == [f"data/prepared/{dataset}.pt", core_src, paper_src]
        assert all(d in produced for d in s.deps if d.startswith("data/"))


def test_source_deps_inside_a_checkout(project, monkeypatch):
    """In a checkout the source trees are spelled relative to the root: packages/<dir>/src."""
    from repro import paths

    (project / "packages" / "core" / "src").mkdir(parents=True)
    (project / "packages" / "fake_package" / "src").mkdir(parents=True)
    assert pipeline.source_deps("fake") == ["packages/core/src", "packages/fake_package/src"]
    assert paths.project_root() == project.resolve()


def test_code_digest_follows_content_not_mtime(tmp_path):
    import os

    tree = tmp_path / "src"
    (tree / "pkg").mkdir(parents=True)
    f = tree / "pkg" / "mod.py"
    f.write_text("x = 1\n")
    (tree / "pkg" / "__pycache__").mkdir()
    (tree / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"compiled")

    def digest():
        pipeline._tree_digest.cache_clear()
        return pipeline._tree_digest(tree)

    first = digest()
    os.utime(f, (1, 1))
    (tree / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"recompiled")
    assert digest() == first  # touched, bytecode changed: same code
    f.write_text("x = 2\n")
    assert digest() != first
    pipeline._tree_digest.cache_clear()


def test_trial_signature(project):
    sig = json.loads(pipeline.trial_signature("fake", "smoke", "sine", "boosted"))
    assert sig["workload"] == "sine"
    assert sig["hparams"] == get_paper("fake").trial_hparams("smoke", "sine", "boosted")
    assert sig["hparams"]["variant"] == "boosted"  # the fixed switch is part of what a trial runs
    assert sig["code"] == pipeline.code_digest("fake") and len(sig["code"]) == 16
    other = json.loads(pipeline.trial_signature("fake", "smoke", "sine", "gd"))
    assert other["hparams"] != sig["hparams"] and other["code"] == sig["code"]


def test_paper_scale_uses_wide_workloads(project):
    config = cfg.load(overrides={"scale": "paper", "seeds": {"smoke": 3, "paper": 3}})
    all_stages = stages(config)
    assert sum(len(s.outs) for s in all_stages if s.name.startswith("train_")) == 2 * 2 * 3
    assert {s.name for s in all_stages if s.name.startswith("prepare_")} == {"prepare_sine", "prepare_mexican_hat"}
    assert all("--scale paper" in s.cmd for s in all_stages if s.name.startswith("train_"))


def test_evaluate_report_and_index(config):
    s = by_name(config)
    trials = {o for v in s.values() if v.name.startswith("train_") for o in v.outs}
    evaluate = s["evaluate_fake_smoke"]
    assert set(evaluate.deps) == trials
    assert evaluate.outs == ["results/fake/smoke/claims.json"]
    assert evaluate.metrics == ["results/fake/smoke/metrics.json"]
    assert evaluate.cmd == "repro evaluate fake --scale smoke --seeds 3"
    report = s["report_fake"]
    assert "results/fake/smoke/claims.json" in report.deps and trials <= set(report.deps)
    assert report.cmd == "repro report fake --scale smoke --seeds 3"
    assert report.outs == ["reports/fake"]
    assert s["index"].deps == ["reports/fake"]
    assert s["index"].cmd == "repro index --scale smoke --papers fake"
    assert s["index"].outs == ["reports/index.html", "reports/index.md"]
    assert list(s)[-1] == "index"


def test_dvc_yaml_parses_with_same_stages(config):
    text = dvc_yaml(config)
    assert text.startswith("# Generated by `repro pipeline dvc`")
    doc = yaml.safe_load(text)
    all_stages = stages(config, dvc=True)
    assert list(doc["stages"]) == [s.name for s in all_stages]
    for s in all_stages:
        d = doc["stages"][s.name]
        assert d["cmd"] == s.cmd
        assert d.get("deps", []) == s.deps
        assert d.get("outs", []) == s.outs
        assert d.get("params", []) == s.params
    assert doc["stages"]["prepare_sine"]["cmd"].endswith("${datasets.sine}")
    assert doc["stages"]["evaluate_fake_smoke"]["metrics"] == [{"results/fake/smoke/metrics.json": {"cache": False}}]


@pytest.mark.parametrize("n", [3, 4])
def test_seeds_change_the_dag(project, n):
    s = stages(cfg.load(overrides={"seeds": {"smoke": n, "paper": 5}}))
    assert sum(len(v.outs) for v in s if v.name.startswith("train_")) == 2 * 2 * n
    assert not any(o.endswith(f"/seed{n}.json") for v in s for o in v.outs)
    assert next(v for v in s if v.name == "evaluate_fake_smoke").cmd.endswith(f"--seeds {n}")
