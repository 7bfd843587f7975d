"""The paper's declaration (the generic run/resume tests in tests/test_papers_generic.py cover every method too)."""

import json
from pathlib import Path

from repro_deepzero.paper import PAPER

PACKAGE = Path(__file__).resolve().parents[1]


def test_methods_of_the_issue_and_one_baseline():
    assert set(PAPER.methods) == {"fo_sgd", "rge", "cge", "cge_sparse", "cge_sparse_reuse"}
    assert [m for m in PAPER.methods.values() if m.is_baseline] == [PAPER.methods["fo_sgd"]]


def test_metadata_is_filled_and_used():
    meta = json.loads((PACKAGE / "metadata.json").read_text())
    assert "TODO" not in json.dumps(meta)
    assert PAPER.title == meta["title"] and PAPER.url == meta["link"]


def test_defaults_are_the_official_codes():
    from repro_deepzero.configuration_deepzero import DeepZeroConfig, SparseCGEConfig

    cfg, sparse = DeepZeroConfig(), SparseCGEConfig()
    assert (cfg.mu, cfg.mask_interval, cfg.grasp_queries, cfg.grasp_per_class) == (5e-3, 5, 192, 25)
    assert sparse.sparsity == 0.9 and cfg.sparsity == 0.0


def test_kernel_benchmarks_are_registered():
    cases = PAPER.kernel_benchmarks()
    assert {c.name for c in cases} == {"delta_linear", "delta_conv3x3"}


def test_readme_python_example_runs():
    import re

    import torch

    from repro.models import mlp

    block = re.search(r"```python\n(.*?)```", (PACKAGE / "README.md").read_text(), re.S).group(1)
    scope = {"torch": torch, "model": mlp([64, 16, 10], "relu"), "x": torch.rand(8, 64), "y": torch.arange(8) % 10}
    exec(block, scope)
    assert scope["queries"] == 1 + 1210 and set(scope["grads"]) == set(scope["prog"].params)
