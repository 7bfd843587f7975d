"""The Boss's kernel switch (``AutoAssistConfig.kernel``): the reference on CPU, the fused Triton
selection kernel on CUDA (and under the interpreter), the same training either way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from repro.errors import ReproError
from repro.testing import run_under_triton_interpreter

from repro_autoassist import kernels
from repro_autoassist.paper import PAPER

HERE = Path(__file__).parent
SRC = HERE.parent / "src"


@pytest.mark.skipif(kernels.interpreting(), reason="the interpreter puts CPU tensors on the Triton path")
@pytest.mark.parametrize("kernel", ["auto", "reference"])
def test_cpu_selects_with_the_reference(kernel, monkeypatch):
    monkeypatch.setattr(kernels, "fused_select_triton", lambda *a, **k: pytest.fail("fused kernel on CPU"))
    g = torch.Generator().manual_seed(0)
    xf, y = torch.randn(20, 5, generator=g), torch.randint(0, 3, (20,), generator=g)
    w, u, coins = torch.randn(5, generator=g), torch.randn(3, generator=g), torch.rand(20, generator=g)
    assert not kernels.triton_path(kernel, xf)
    got = kernels.select(xf, y, w, u, 0.3, coins, kernel)
    assert torch.equal(got, kernels.select_reference(xf, y, w, u, 0.3, coins)[0])


def test_reference_switch_wins_on_any_device():
    assert not kernels.triton_path("reference", torch.zeros(1))
    if torch.cuda.is_available() and kernels.triton_available():
        assert kernels.triton_path("auto", torch.zeros(1, device="cuda"))
        assert not kernels.triton_path("reference", torch.zeros(1, device="cuda"))


def test_triton_on_cpu_is_refused_and_bad_values_named():
    if kernels.interpreting():
        pytest.skip("the interpreter runs the kernel on the CPU")
    with pytest.raises(ReproError, match="kernel='triton'.*choices: auto, triton, reference"):
        kernels.check_kernel("triton", torch.device("cpu"))
    with pytest.raises(ReproError, match="kernel"):
        PAPER.methods["autoassist"].validate({"selection": "autoassist", "kernel": "gpu"})
    PAPER.methods["autoassist"].validate({"selection": "autoassist", "kernel": "reference"})


@pytest.mark.skipif(not kernels.triton_available(), reason="triton not installed")
def test_training_triton_equals_reference_under_interpreter():
    proc = run_under_triton_interpreter(HERE / "_autoassist_train_check.py", SRC, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not kernels.triton_available(), reason="needs CUDA and triton")
def test_training_triton_equals_reference_on_gpu():
    sys.path.insert(0, str(HERE))
    try:
        import _autoassist_train_check
    finally:
        sys.path.remove(str(HERE))
    failures = _autoassist_train_check.compare("cuda", rel=1e-4)
    assert not failures, failures
