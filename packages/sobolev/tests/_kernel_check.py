"""Run by test_sobolev_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported:
the fused forward + tangent kernel and its autograd Function against the PyTorch reference (fp32)."""

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_sobolev import kernels  # noqa: E402
from repro_sobolev.modeling_sobolev import SobolevNet  # noqa: E402

assert kernels.triton is not None and kernels.use_triton(torch.zeros(1))
gen = torch.Generator().manual_seed(0)
failures = []
# (problems, samples, in, out, directions): block edges, D not a power of two, K < BLOCK_K, one problem
for p, n, k, m, d in [(2, 20, 2, 24, 2), (3, 17, 33, 16, 3), (1, 16, 16, 40, 1), (2, 5, 7, 9, 4)]:
    h = torch.randn(p, n, k, generator=gen)
    t = torch.randn(p, n, d, k, generator=gen)
    w = torch.randn(p, k, m, generator=gen) / k ** 0.5
    b = torch.randn(p, 1, m, generator=gen)
    for act in ("relu", "none"):
        out, tout = kernels.jvp_layer_triton(h, t, w, b, act == "relu")
        ref, tref = kernels.jvp_layer_reference(h, t, w, b, act)
        if not (torch.allclose(out, ref, atol=1e-4, rtol=1e-4) and torch.allclose(tout, tref, atol=1e-4, rtol=1e-4)):
            failures.append(f"forward {act} p={p} n={n} k={k} m={m} d={d}: max err "
                            f"{(out - ref).abs().max():.2e} / {(tout - tref).abs().max():.2e}")
        # backward of the autograd Function vs autograd of the reference
        leaves = [x.clone().requires_grad_(True) for x in (h, t, w, b)]
        ref_leaves = [x.clone().requires_grad_(True) for x in (h, t, w, b)]
        go, gt = torch.randn(p, n, m, generator=gen), torch.randn(p, n, d, m, generator=gen)
        o, to = kernels.jvp_layer(*leaves, act)
        ((o * go).sum() + (to * gt).sum()).backward()
        ro, rto = kernels.jvp_layer_reference(*ref_leaves, act)
        ((ro * go).sum() + (rto * gt).sum()).backward()
        for name, a, r in zip("htwb", leaves, ref_leaves):
            if not torch.allclose(a.grad, r.grad, atol=1e-4, rtol=1e-4):
                failures.append(f"backward d{name} {act} p={p} n={n} k={k} m={m} d={d}")
# the whole network's input gradient through the kernel equals double-backprop autograd
net = SobolevNet([0, 1], [[[-1.0, 2.0], [0.0, 3.0]], [[-5.0, 5.0], [-4.0, 4.0]]], hidden=(24, 20))
x = torch.randn(19, 2, 2, generator=gen)
net.eval()
net.derivatives = "forward"
fwd = net(x)
net.derivatives = "autograd"
rev = net(x)
if not torch.allclose(fwd, rev, atol=1e-4, rtol=1e-4):
    failures.append(f"SobolevNet forward-mode vs autograd: max err {(fwd - rev).abs().max():.2e}")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok")
