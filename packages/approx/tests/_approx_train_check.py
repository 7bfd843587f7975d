"""Run by test_approx_kernel_switch.py in a subprocess with TRITON_INTERPRET=1 (set before triton is
imported), and imported by its gpu test: a few SGD steps of an approximated MLP with
``kernel="triton"`` equal the same steps with ``kernel="reference"`` (fp32), for forward, backward
and both-mode sampling, top-k and Bernoulli-CRS; the Triton path must actually launch the kernels."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import torch
from torch import nn

from repro_approx import kernels
from repro_approx.configuration_approx import ApproxConfig
from repro_approx.wrap import approximate_model

CASES = [ApproxConfig(ratio=0.5, strategy="topk", mode="forward"),
         ApproxConfig(ratio=0.5, strategy="bernoulli", mode="backward"),
         ApproxConfig(ratio=0.4, strategy="crs", mode="both")]


def train(cfg: ApproxConfig, device: str, steps: int = 3) -> tuple[list[torch.Tensor], list[float], int]:
    """Parameters and losses after *steps* SGD steps; and how many fused GEMMs were launched."""
    launched = 0
    real = kernels.sampled_gemm

    def counting(*args, **kwargs):
        nonlocal launched
        launched += 1
        return real(*args, **kwargs)

    kernels.sampled_gemm = counting
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 5)).to(device)
        approximate_model(model, replace(cfg, skip_first=False))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        gen = torch.Generator().manual_seed(1)
        losses = []
        torch.manual_seed(2)  # the sampling draws (Bernoulli coins, CRS) come from the global stream
        for _ in range(steps):
            x = torch.randn(48, 24, generator=gen).to(device)
            y = torch.randint(0, 5, (48,), generator=gen).to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return [p.detach().float().cpu() for p in model.parameters()], losses, launched
    finally:
        kernels.sampled_gemm = real


def compare(device: str, atol: float, rtol: float) -> list[str]:
    failures = []
    for cfg in CASES:
        ref, ref_losses, ref_launched = train(replace(cfg, kernel="reference"), device)
        got, got_losses, got_launched = train(replace(cfg, kernel="triton"), device)
        name = f"{cfg.strategy}/{cfg.mode}"
        if ref_launched or not got_launched:
            failures.append(f"{name}: fused GEMM launches reference={ref_launched} triton={got_launched}")
        for i, (a, b) in enumerate(zip(ref, got)):
            if not torch.allclose(a, b, atol=atol, rtol=rtol):
                failures.append(f"{name}: parameter {i} differs, max err {(a - b).abs().max():.3g}")
        print(f"{name}: losses reference {ref_losses} triton {got_losses}; {got_launched} fused GEMMs")
    return failures


if __name__ == "__main__":
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    problems = compare("cpu", atol=1e-5, rtol=1e-4)
    print("\n".join(problems) or "ok")
    sys.exit(1 if problems else 0)
