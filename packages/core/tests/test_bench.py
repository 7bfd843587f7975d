"""The kernel benchmark harness (CPU path): tables, goal column, output files, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from repro import bench
from repro.errors import ReproError


def _cases():
    def make(m, n, k, ratio, device, reference):
        a, b = torch.randn(m, k), torch.randn(k, n)
        kept = max(1, int(k * ratio))
        idx = torch.arange(kept)
        return (lambda: a.index_select(1, idx) @ b.index_select(0, idx)), (lambda: a @ b)

    return [bench.KernelBenchmark("toy_sampled_gemm", make, "toy", gemm=True),
            bench.KernelBenchmark("toy_other", make, "not a gemm", gemm=False)]


def test_cpu_run_writes_json_and_markdown(tmp_path):
    doc = bench.run_benchmarks(_cases(), torch.device("cpu"), shapes=[(32, 16, 64)], ratios=[0.5, 1.0])
    assert doc["device_type"] == "cpu" and "CPU" in doc["device"]
    assert "reference paths" in doc["mode"] and "no GPU kernels" in doc["mode"]
    assert len(doc["rows"]) == 4
    row = doc["rows"][0]
    assert row["goal"] == pytest.approx(0.6) and isinstance(row["meets_goal"], bool)
    assert row["judged"] is False  # small shape
    assert doc["rows"][2]["goal"] is None  # not a GEMM case
    js, md = bench.write_results(doc, tmp_path / "out" / "toy-cpu")
    assert json.loads(js.read_text())["rows"] == doc["rows"]
    text = md.read_text()
    assert "| toy_sampled_gemm | 32×16×64 | 0.50 |" in text and "not judged" in text and "Goal:" in text


def test_bad_inputs():
    with pytest.raises(ReproError, match="no kernel benchmarks"):
        bench.run_benchmarks([], torch.device("cpu"))
    with pytest.raises(ReproError, match="keep ratio"):
        bench.run_benchmarks(_cases(), torch.device("cpu"), shapes=[(4, 4, 4)], ratios=[1.5])
    with pytest.raises(ReproError, match="MxNxK"):
        bench.parse_shapes("12x3")
    assert bench.parse_shapes("4x5x6,7x8x9") == [(4, 5, 6), (7, 8, 9)]


def test_default_prefix_and_paper_field(tmp_path):
    from repro.paper import Paper

    assert "kernel_benchmarks" in Paper.__dataclass_fields__
    assert Paper.__dataclass_fields__["kernel_benchmarks"].default is None
    assert bench.default_prefix(tmp_path, "x", torch.device("cpu")) == tmp_path / "benchmarks" / "results" / "x-cpu"


def test_cli_has_bench_subcommand(capsys):
    from repro.cli import build_parser

    args = build_parser().parse_args(["bench", "somepaper", "--device", "cpu", "--ratios", "0.5"])
    assert args.paper == "somepaper" and args.func.__name__ == "cmd_bench"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    assert "--shapes" in capsys.readouterr().out
