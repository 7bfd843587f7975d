"""The `repro` command line: exit code 2 and one error line for user mistakes, --help everywhere."""

from __future__ import annotations

import pytest

from repro.cli import build_parser, main

SUBCOMMANDS = [
    [], ["papers"], ["experiments"], ["datasets"], ["data"], ["data", "prepare"], ["run"], ["evaluate"],
    ["report"], ["index"], ["pipeline"], ["pipeline", "dvc"], ["pipeline", "stages"],
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
        (["experiments", "nope"], ["unknown paper 'nope'", "valid choices: ", "enkf"]),
        (["evaluate", "nope"], ["unknown paper 'nope'"]),
        (["report", "nope"], ["unknown paper 'nope'"]),
        (["run", "nope", "--experiment", "sine", "--method", "esmda", "--seed", "0"], ["unknown paper 'nope'"]),
        (["run", "enkf", "--experiment", "nope", "--method", "esmda", "--seed", "0"],
         ["experiment", "'nope'", "valid choices: mexican_hat, sine"]),
        (["run", "enkf", "--experiment", "sine", "--method", "nope", "--seed", "0"],
         ["method", "'nope'", "valid choices: enkf, esmda, gd_converged, gd_equal_budget"]),
        (["run", "enkf", "--experiment", "sine", "--method", "esmda", "--seed", "0", "--scale", "huge"],
         ["unknown scale 'huge'", "valid choices: paper, smoke"]),
        (["data", "prepare", "nope"], ["unknown dataset 'nope'", "sine"]),
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
    assert not (project.parent / "mlflow.db").exists()


def test_invalid_params_yaml_is_a_user_error(project, capsys):
    (project / "params.yaml").write_text("scale: smoke\nseeds: {smoke: 2}\n")
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
        main(["run", "enkf", "--experiment", "sine"])  # --method/--seed missing
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_listing_commands(project, capsys):
    code, out, _ = run_cli(capsys, ["papers"])
    assert code == 0
    assert any(line.startswith("enkf ") and "arXiv 2010.02626" in line for line in out.splitlines())
    code, out, _ = run_cli(capsys, ["experiments", "enkf", "--scale", "smoke"])
    assert code == 0
    assert "[smoke] sine: workload sine; methods: esmda, enkf, gd_equal_budget, gd_converged" in out
    assert "[paper]" not in out and out.count("claim ") == 10
    code, out, _ = run_cli(capsys, ["datasets"])
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and {"sine", "mexican_hat", "digits", "mnist", "cifar10"} <= set(names)


def test_data_prepare_uses_params_yaml(project, capsys):
    (project / "params.yaml").write_text("datasets:\n  sine: {n_train: 17}\n")
    code, out, _ = run_cli(capsys, ["data", "prepare", "sine"])
    assert code == 0 and out.strip() == "prepared sine -> data/prepared/sine.pt"
    from repro.datasets import load_prepared

    assert load_prepared("sine").x_train.shape == (17, 1)


def test_pipeline_dvc_write_and_check(project, capsys):
    code, _, err = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 2 and "out of date" in error_line(err)
    code, out, _ = run_cli(capsys, ["pipeline", "dvc"])
    assert code == 0 and (project / "dvc.yaml").is_file()
    code, out, _ = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 0 and "up to date" in out
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("smoke: 5", "smoke: 4"))
    code, _, err = run_cli(capsys, ["pipeline", "dvc", "--check"])
    assert code == 2 and "repro pipeline dvc" in error_line(err)


def test_parser_has_every_subcommand():
    parser = build_parser()
    args = parser.parse_args(["run", "enkf", "--experiment", "sine", "--method", "esmda", "--seed", "3"])
    assert (args.paper, args.experiment, args.method, args.seed, args.no_progress) == \
        ("enkf", "sine", "esmda", 3, False)
