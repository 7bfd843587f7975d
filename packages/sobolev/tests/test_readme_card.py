"""The README card's Python example runs as written, and its metadata matches the paper."""

from __future__ import annotations

import json
import re
from pathlib import Path

from repro_sobolev.paper import PAPER

PKG = Path(__file__).resolve().parents[1]


def test_python_example_runs():
    text = (PKG / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    net = namespace["net"]
    assert all(p.grad is not None for p in net.parameters())


def test_metadata():
    meta = json.loads((PKG / "metadata.json").read_text())
    assert meta["name"] == "sobolev" and meta["link"] == PAPER.url == "https://arxiv.org/abs/1706.04859"
    assert "TODO" not in json.dumps(meta) and "TODO" not in (PKG / "README.md").read_text()


def test_committed_benchmark_results_name_their_hardware():
    for name in ("sobolev-cpu", "sobolev-steps-cpu"):
        doc = json.loads((PKG / "benchmarks" / "results" / f"{name}.json").read_text())
        assert doc["device"] and doc["rows"]
        assert (PKG / "benchmarks" / "results" / f"{name}.md").read_text().startswith("Device:")
