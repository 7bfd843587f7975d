"""Docs and metadata that no test reads drift: these tests read them."""

from __future__ import annotations

import json
import re

from conftest import ROOT, run

from repro.papers import get_paper, papers


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_second():
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert "snakemake --cores all" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci, "the README's test command must be the one .ci/run executes"


def test_every_paper_package_has_its_card_files():
    for slug in papers():
        paper = get_paper(slug)
        pkg = paper.package_dir
        readme = (pkg / "README.md").read_text()
        for heading in ("How to use", "Results", "What has not been verified"):
            assert heading in readme, f"{pkg}/README.md lacks a '{heading}' section"
        meta = json.loads((pkg / "metadata.json").read_text())
        assert meta["name"] == slug and meta["link"] == paper.url
        assert slug in (ROOT / "README.md").read_text()


def test_cli_commands_from_the_readme_run():
    assert "enkf" in run(["repro", "papers"], ROOT).stdout
    out = run(["repro", "experiments", "enkf"], ROOT).stdout
    assert "[smoke] sine" in out and "[paper] mexican_hat" in out
    for sub in ([], ["run"], ["data", "prepare"], ["pipeline", "dvc"], ["report"], ["evaluate"], ["index"]):
        assert run(["repro", *sub, "--help"], ROOT).returncode == 0
