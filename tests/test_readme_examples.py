"""Every `--config` example of the README, run exactly as written (in a temporary copy): a paper
alone, a subset with other seeds (nested --config values), and the paper scale as a dry run.
The index must list exactly the selected papers' current reports, never stale ones."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from conftest import ROOT, run


def config_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Choosing papers and scale\s+```sh\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if "snakemake" in line and "--config" in line]


def _overrides(args: list[str]) -> dict:
    i = args.index("--config") + 1
    out = {}
    while i < len(args) and not args[i].startswith("--"):
        key, value = args[i].split("=", 1)
        out[key] = yaml.safe_load(value)
        i += 1
    return out


def test_the_readme_has_the_three_kinds_of_example():
    examples = config_examples()
    assert len(examples) == 3
    assert all(shlex.split(e)[:3] == ["uv", "run", "snakemake"] for e in examples)
    kinds = [_overrides(shlex.split(e)) for e in examples]
    assert any(set(k) == {"papers"} for k in kinds)
    assert any("seeds" in k for k in kinds) and any(k.get("scale") == "paper" for k in kinds)


@pytest.mark.slow
def test_every_readme_config_example_runs_as_written(project_copy):
    params = yaml.safe_load((project_copy / "params.yaml").read_text())
    for example in config_examples():
        args = shlex.split(example)
        # `uv run` is this test's own environment (the same uv.lock, already synced); the rest of the
        # command is exactly the README's.
        proc = run(args[2:], project_copy, timeout=3000)
        over = _overrides(args)
        papers, scale = over.get("papers", params["papers"]), over.get("scale", params["scale"])
        if "--dry-run" in args:
            text = proc.stdout + proc.stderr
            assert re.search(r"^\s*train\s+\d+$", text, re.M), text[-2000:]  # the job table lists trials
            for paper in papers:
                assert f"results/{paper}/{scale}/" in text
            continue
        n_seeds = {**params["seeds"], **over.get("seeds", {})}[scale]
        for paper in papers:
            claims = json.loads((project_copy / f"results/{paper}/{scale}/claims.json").read_text())
            assert claims["seeds"] == list(range(n_seeds)), example
        index = (project_copy / "reports/index.md").read_text()
        listed = set(re.findall(r"\| `([a-z_0-9]+)` \|", index))
        assert listed == set(papers), (example, listed)  # exactly the selected, never a stale report
