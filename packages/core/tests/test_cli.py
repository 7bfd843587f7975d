"""The `repro` command line: exit code 2 and one error line for user mistakes, --help everywhere,
dataset parameters on the command line, and the index of exactly the selected papers."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from repro.checksums import file_digest
from repro.cli import build_parser, main

SUBCOMMANDS = [
    [], ["papers"], ["experiments"], ["datasets"], ["data"], ["data", "prepare"], ["run"], ["evaluate"],
    ["report"], ["index"], ["bench"], ["pipeline"], ["pipeline", "dvc"], ["pipeline", "stages"], ["results"],
    ["results", "save"], ["readme"], ["new"],
]


def run_cli(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("repro: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["experiments", "nope"], ["unknown paper 'nope'", "valid choices: fake"]),
        (["evaluate", "nope"], ["unknown paper 'nope'"]),
        (["report", "nope"], ["unknown paper 'nope'"]),
        (["run", "nope", "--experiment", "sine", "--method", "gd", "--seed", "0"], ["unknown paper 'nope'"]),
        (["run", "fake", "--experiment", "nope", "--method", "gd", "--seed", "0"],
         ["experiment", "'nope'", "valid choices: hat, sine"]),
        (["run", "fake", "--experiment", "sine", "--method", "nope", "--seed", "0"],
         ["method", "'nope'", "valid choices: boosted, gd"]),
        (["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--threads", "0"],
         ["--threads must be >= 1"]),
        (["run", "fake", "--experiment", "sine", "--method", "gd", "--seeds", "0"], ["--seeds must be >= 1"]),
        (["data", "prepare", "nope"], ["unknown dataset 'nope'", "sine"]),
        (["data", "prepare", "sine", "--bogus", "1"], ["'datasets.sine'", "'bogus' was unexpected"]),
        (["data", "prepare", "sine", "--n_train", "1"], ["'datasets.sine.n_train'", "less than the minimum"]),
        (["data", "prepare", "mnist", "--n_train", "100"], ["dataset 'mnist': unknown parameter 'n_train'"]),
        (["data", "prepare", "sine", "n_train", "5"], ["dataset parameter 'n_train': expected --KEY VALUE pairs"]),
        (["index", "--papers", "nope"], ["unknown paper (config key 'papers') 'nope'", "valid choices: fake"]),
        (["evaluate", "fake", "--seeds", "2"], ["'seeds.smoke'", "less than the minimum"]),
    ],
)
def test_user_errors_exit_2_with_one_line(project, capsys, argv, needles):
    code, out, err = run_cli(capsys, argv)
    assert code == 2
    line = error_line(err)
    for needle in needles:
        assert needle in line
    assert "Traceback" not in err
    assert not (project / "results").exists()
    assert not (project / "data" / "prepared").exists()
    assert not (project.parent / "mlflow.db").exists()


def test_run_with_scale_out_of_choices_is_an_argparse_error(project, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--scale", "huge"])
    assert info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_run_seeds_runs_each_seed_as_its_own_trial(project, sine_data, capsys):
    code, out, err = run_cli(capsys, ["run", "fake", "--experiment", "sine", "--method", "gd", "--seeds", "2"])
    assert code == 0, err
    files = [project / "results" / "fake" / "smoke" / "sine" / "gd" / f"seed{s}.json" for s in (0, 1)]
    assert all(f"wrote {f.relative_to(project)}" in out for f in files)
    one = [json.loads(f.read_text()) for f in files]
    assert [r["seed"] for r in one] == [0, 1]
    assert one[0]["summary"]["test_rmse"] != one[1]["summary"]["test_rmse"]  # two seeds, two trials
    again = json.loads(files[1].read_text())
    code, _, _ = run_cli(capsys, ["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "1"])
    assert code == 0
    alone = json.loads(files[1].read_text())
    assert alone["summary"]["test_rmse"] == again["summary"]["test_rmse"]  # a seed's trial is the same alone


def test_run_needs_exactly_one_of_seed_and_seeds(project, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--seeds", "2"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_invalid_params_yaml_is_a_user_error(project, capsys):
    (project / "params.yaml").write_text("scale: smoke\npapers: [fake]\nseeds: {smoke: 2}\n")
    code, _, err = run_cli(capsys, ["pipeline", "stages"])
    assert code == 2
    assert "'seeds.smoke'" in error_line(err)


def test_outside_a_project(capsys):
    code, _, err = run_cli(capsys, ["data", "prepare", "sine"])
    assert code == 2
    assert "REPRO_ROOT" in error_line(err)


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=lambda a: " ".join(a) or "repro")
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: repro")


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "fake", "--experiment", "sine"])  # --method/--seed missing
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["papers", "--bogus"])  # only `data prepare` takes extra options
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_listing_commands(project, capsys):
    code, out, _ = run_cli(capsys, ["papers"])
    assert code == 0
    assert out.splitlines() == ["fake         A Fake Paper (fake) (arXiv 0000.00000)"]
    code, out, _ = run_cli(capsys, ["experiments", "fake", "--scale", "smoke"])
    assert code == 0
    lines = out.splitlines()
    assert "[smoke] sine: workload sine; methods: gd, boosted" in lines
    assert "[smoke] hat: workload mexican_hat; methods: gd, boosted" in lines
    assert "[paper]" not in out
    assert 'method boosted (fixed: {"variant": "boosted"}): Adam with its learning rate boosted once' in lines
    assert "method gd: Adam, the baseline" in lines
    claims = [line.split()[1] for line in lines if line.startswith("claim ")]
    assert claims == ["boosted_rmse_vs_gd_sine", "boosted_rmse_vs_gd_hat", "boosted_time_to_target_avg",
                      "boosted_gpu_speedup", "gd_epochs_fixed"]
    assert "`lr`" not in out  # hyper-parameters only with --hparams
    code, out, _ = run_cli(capsys, ["experiments", "fake", "--hparams"])
    assert code == 0 and "[paper] sine: workload sine_wide" in out
    assert ("  - `boost` (float, default 1.0; in (0, inf]): learning-rate multiplier applied once at the start"
            in out.splitlines())
    code, out, _ = run_cli(capsys, ["datasets"])
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and {"sine", "mexican_hat", "digits", "mnist", "cifar10"} <= set(names)
    assert "fake_line" in names  # the papers' datasets too


def test_data_prepare_uses_params_yaml(project, capsys):
    (project / "params.yaml").write_text("papers: [fake]\ndatasets:\n  sine: {n_train: 17}\n")
    code, out, _ = run_cli(capsys, ["data", "prepare", "sine"])
    assert code == 0 and out.strip() == "prepared sine -> data/prepared/sine.pt"
    from repro.datasets import load_prepared

    assert load_prepared("sine").x_train.shape == (17, 1)


def test_data_prepare_parameters_on_the_command_line(project, capsys):
    """The pipeline passes a dataset's parameters as --KEY VALUE; they override params.yaml."""
    from repro.datasets import load_prepared

    out_file = project / "data" / "prepared" / "sine.pt"
    assert run_cli(capsys, ["data", "prepare", "sine"])[0] == 0
    default_digest = file_digest(out_file)
    assert load_prepared("sine").params["n_train"] == 200
    code, out, _ = run_cli(capsys, ["data", "prepare", "sine", "--n_train", "50", "--x_min", "-1.5", "--noise", "0"])
    assert code == 0 and out.strip() == "prepared sine -> data/prepared/sine.pt"
    assert file_digest(out_file) != default_digest
    data = load_prepared("sine")
    assert data.x_train.shape == (50, 1) and data.x_test.shape == (200, 1)
    assert data.params["n_train"] == 50 and data.params["x_min"] == -1.5 and data.params["noise"] == 0
    assert data.x_train.min() >= -1.5
    assert torch.allclose(data.y_train, torch.sin(data.x_train))  # noise 0
    assert run_cli(capsys, ["data", "prepare", "sine"])[0] == 0
    assert file_digest(out_file) == default_digest  # back to params.yaml's parameters, byte for byte


def test_data_prepare_to_another_file_with_a_mirror_option(project, capsys, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    code, out, _ = run_cli(capsys, ["data", "prepare", "digits", "--mirror", str(mirror), "--out",
                                    str(project / "elsewhere.pt"), "--seed", "3"])
    assert code == 0 and out.strip() == "prepared digits -> elsewhere.pt"
    from repro.datasets import load_prepared

    assert load_prepared("digits", project / "elsewhere.pt").params == {"test_fraction": 0.25, "seed": 3}
    code, _, err = run_cli(capsys, ["data", "prepare", "mnist", "--mirror", str(tmp_path / "nowhere")])
    assert code == 2  # a configured mirror that does not exist is ignored: the download is tried
    assert "could not download" in error_line(err)


class NotATensor:
    """Anything torch.load(weights_only=True) refuses to unpickle."""


def test_unloadable_prepared_file_is_a_clean_error(project, capsys):
    """Checksum matches, but torch.load(weights_only=True) refuses it: exit 2, no traceback."""
    from repro.files import save_torch

    out = project / "data" / "prepared" / "sine.pt"
    save_torch({"x_train": torch.zeros(3, 1), "meta": NotATensor()}, out)
    out.with_name("sine.pt.sha256").write_text(file_digest(out) + "\n")
    code, _, err = run_cli(capsys, ["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0"])
    assert code == 2
    line = error_line(err)
    assert "matches its checksum but is not a prepared dataset that can be loaded safely" in line
    assert "repro data prepare sine" in line
    assert "Traceback" not in err and "UnpicklingError" not in err.replace("(UnpicklingError)", "")
    assert not (project / "results").exists() and not (project.parent / "mlflow.db").exists()


def write_summary(project, slug, scale, **counts):
    d = project / "reports" / slug
    d.mkdir(parents=True, exist_ok=True)
    summary = {"reproduced": 0, "not reproduced": 0, "inconclusive": 0, "by construction": 0, "not run": 0, **counts}
    (d / "summary.json").write_text(json.dumps({"paper": slug, "title": f"A Fake Paper ({slug})", "scale": scale,
                                                "summary": summary, "n_claims": sum(summary.values())}))


@pytest.fixture
def two_papers(fake_paper):
    from repro import papers

    papers.add_paper(dataclasses.replace(fake_paper, slug="fake2"))
    yield
    papers.remove_paper("fake2")


def test_index_lists_exactly_the_given_papers(project, capsys, two_papers):
    write_summary(project, "fake", "smoke", reproduced=2, **{"by construction": 1})
    write_summary(project, "fake2", "smoke", inconclusive=3)
    code, out, _ = run_cli(capsys, ["index", "--papers", "fake"])
    assert code == 0 and out.strip() == "wrote reports/index.html"
    md = (project / "reports" / "index.md").read_text()
    assert "A Fake Paper (fake)" in md and "fake2" not in md
    row = next(line for line in md.splitlines() if "`fake`" in line)
    assert "✔ reproduced: 2" in row and row.rstrip().endswith("| 1 |")  # by construction: its own column
    assert "by construction: 1" not in row  # never counted among the verdicts
    assert "(fake/index.md)" in md and 'href="fake/index.html"' in (project / "reports" / "index.html").read_text()
    code, _, _ = run_cli(capsys, ["index", "--papers", "fake,fake2"])
    md = (project / "reports" / "index.md").read_text()
    assert code == 0 and "(fake2/index.md) | `fake2` | smoke | ? inconclusive: 3 | 0 |" in md


def test_index_refuses_a_report_of_another_scale(project, capsys, two_papers):
    write_summary(project, "fake", "paper", reproduced=1)
    code, _, err = run_cli(capsys, ["index", "--papers", "fake", "--scale", "smoke"])
    assert code == 2
    line = error_line(err)
    assert "reports/fake/summary.json is a 'paper' report, not 'smoke'" in line
    assert "repro report fake --scale smoke" in line
    assert not (project / "reports" / "index.md").exists()
    assert run_cli(capsys, ["index", "--papers", "fake", "--scale", "paper"])[0] == 0
    code, _, err = run_cli(capsys, ["index", "--papers", "fake2", "--scale", "paper"])
    assert code == 2 and "reports/fake2/summary.json is missing; run `repro report fake2` first" in error_line(err)


def test_pipeline_dvc_write_and_check(project, capsys):
    code, _, err = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 2 and "out of date" in error_line(err)
    code, out, _ = run_cli(capsys, ["pipeline", "dvc"])
    assert code == 0 and (project / "dvc.yaml").is_file()
    assert "${datasets.sine}" in (project / "dvc.yaml").read_text()
    code, out, _ = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 0 and "up to date" in out
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("smoke: 3", "smoke: 4"))
    code, _, err = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 2 and "repro pipeline dvc" in error_line(err)


def test_pipeline_stages_applies_options(project, capsys):
    code, out, _ = run_cli(capsys, ["pipeline", "stages", "--json"])
    assert code == 0
    stages = [json.loads(line) for line in out.splitlines()]
    assert stages[-1]["name"] == "index" and stages[-1]["cmd"] == "repro index --scale smoke --papers fake"
    train = [s for s in stages if s["name"].startswith("train_")]
    assert len(train) == 2 * 2  # experiments x methods, each job running the smoke seeds of params.yaml
    assert sum(len(s["outs"]) for s in train) == 2 * 2 * 3


def test_parser_has_every_subcommand():
    parser = build_parser()
    args = parser.parse_args(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "3"])
    assert (args.paper, args.experiment, args.method, args.seed, args.no_progress) == \
        ("fake", "sine", "gd", 3, False)
    args = parser.parse_args(["evaluate", "fake", "--scale", "paper", "--seeds", "4"])
    assert (args.scale, args.seeds) == ("paper", 4)
    args = parser.parse_args(["index", "--scale", "smoke", "--papers", "a,b"])
    assert (args.scale, args.papers) == ("smoke", "a,b")
