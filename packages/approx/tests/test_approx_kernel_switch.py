"""The kernel switch (``ApproxConfig.kernel``): which path the sampled layers take, and that the
Triton path trains exactly like the reference (interpreter on CPU, the device on CUDA)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from repro.errors import ReproError
from repro.testing import run_under_triton_interpreter

from repro_approx import kernels
from repro_approx.configuration_approx import ApproxConfig
from repro_approx.wrap import approximate_model

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


def _launches(cfg: ApproxConfig, monkeypatch) -> int:
    calls = []
    monkeypatch.setattr(kernels, "sampled_gemm", lambda *a, **k: calls.append(1) or kernels.sampled_gemm_reference(
        *a[:4]))
    model = approximate_model(nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3)), cfg)[0]
    model(torch.randn(6, 8)).sum().backward()
    return len(calls)


@pytest.mark.skipif(kernels.interpreting(), reason="the interpreter puts CPU tensors on the Triton path")
@pytest.mark.parametrize("kernel", ["auto", "reference"])
def test_cpu_takes_the_reference_path(kernel, monkeypatch):
    cfg = ApproxConfig(ratio=0.5, mode="both", skip_first=False, kernel=kernel)
    assert not kernels.triton_path(kernel, torch.zeros(2, 2), torch.zeros(2, 2))
    assert _launches(cfg, monkeypatch) == 0


def test_reference_switch_wins_even_where_triton_could_run():
    t = torch.zeros(2, 2)
    assert not kernels.triton_path("reference", t, t)
    if kernels.triton_available() and (kernels.interpreting() or torch.cuda.is_available()):
        dev = t.to("cuda") if torch.cuda.is_available() else t
        assert kernels.triton_path("auto", dev, dev)


def test_triton_on_cpu_is_refused_before_training():
    if kernels.interpreting():
        pytest.skip("the interpreter runs the kernels on the CPU")
    with pytest.raises(ReproError, match="kernel='triton'.*choices: auto, triton, reference"):
        kernels.check_kernel("triton", torch.device("cpu"))
    kernels.check_kernel("auto", torch.device("cpu"))
    kernels.check_kernel("reference", torch.device("cpu"))


def test_mixed_dtypes_fall_back_to_the_reference():
    if not kernels.triton_available():
        pytest.skip("triton not installed")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.zeros(2, 2, device=dev), torch.zeros(2, 2, device=dev, dtype=torch.float64)
    assert not kernels.triton_path("auto", a, b)


@pytest.mark.skipif(kernels.triton is None, reason="triton not installed")
def test_training_steps_triton_equal_reference_under_interpreter():
    proc = run_under_triton_interpreter(HERE / "_approx_train_check.py", SRC)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or kernels.triton is None, reason="needs CUDA and triton")
def test_training_steps_triton_equal_reference_on_gpu():
    sys.path.insert(0, str(HERE))
    try:
        import _approx_train_check
    finally:
        sys.path.remove(str(HERE))
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the reference in full fp32; tl.dot may use TF32
    try:
        failures = _approx_train_check.compare("cuda", atol=5e-3, rtol=5e-3)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    assert not failures, failures


def test_kernel_hparam_is_validated():
    from repro.hparams import parse

    from repro_approx.configuration_approx import ApproxTrainConfig

    assert parse(ApproxTrainConfig, {"kernel": "reference"}, "approx").kernel == "reference"
    assert parse(ApproxTrainConfig, {}, "approx").kernel == "auto"
    with pytest.raises(ReproError, match="kernel"):
        parse(ApproxTrainConfig, {"kernel": "cuda"}, "approx")


def test_bench_times_the_whole_training_step():
    from repro.bench import run_benchmarks

    (case,) = [c for c in kernels.kernel_benchmarks() if c.name == "train_step"]
    step, dense = case.make(16, 8, 12, 0.5, torch.device("cpu"), True)
    step()
    dense()  # both run a full forward / backward / update
    doc = run_benchmarks([case], torch.device("cpu"), [(16, 8, 12)], [0.5])
    (row,) = doc["rows"]
    assert row["kernel"] == "train_step" and row["kernel_ms"] > 0 and row["dense_ms"] > 0 and row["goal"] is None
