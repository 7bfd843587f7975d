"""The package's declaration and documents: metadata filled in, README blocks and examples, claims
wired to experiments that run the methods they read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from repro_fqt.paper import PAPER

PKG = Path(__file__).resolve().parents[1]


def test_metadata_is_filled_in():
    meta = json.loads((PKG / "metadata.json").read_text())
    assert meta["name"] == "fqt" and meta["link"] == "https://arxiv.org/abs/2010.14298"
    assert all(v and "TODO" not in v for v in meta.values())
    assert PAPER.title == meta["title"] and PAPER.url == meta["link"]


def test_readme_has_the_generated_blocks_and_no_todo():
    text = (PKG / "README.md").read_text()
    assert "TODO" not in text
    for block in ("claims", "methods"):
        assert f"<!-- repro:{block} paper=fqt scale=smoke -->" in text and f"<!-- /repro:{block} -->" in text
    assert "`exact`" in text and "`qat`" in text and "`{ptq,psq,bhq}{8,6,5,4}`" in text


def test_readme_python_example_runs():
    text = (PKG / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    assert 0 < scope["summary_values"](scope["stats"])["grad_var_ratio_bhq_psq_b4"] < 10


def test_claims_read_what_their_experiments_produce():
    smoke = PAPER.experiments_at("smoke")["mnist_cnn"]
    for claim in PAPER.claims_at("smoke"):
        assert claim.experiment == "mnist_cnn"
        if claim.metric.startswith("grad_"):
            assert claim.method == "qat" and smoke.methods["qat"]["variance_draws"] >= 4
            bits = {int(b) for b in re.findall(r"(\d)$|b(\d)", claim.metric)[0] if b}
            assert bits <= set(smoke.methods["qat"].get("variance_bits", (8, 6, 5, 4)))
    assert any(c.not_run for c in PAPER.claims_at("paper"))
