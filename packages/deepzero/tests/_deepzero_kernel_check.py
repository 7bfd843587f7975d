"""Run by test_deepzero_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported:
the Triton structured-delta kernel against its PyTorch reference (fp32, tiny shapes), directly and
inside the engine's rank-one CGE."""

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_deepzero import engine, kernels  # noqa: E402

assert kernels.use_triton(torch.zeros(1)), "the interpreter should route to Triton"
gen = torch.Generator().manual_seed(0)
failures = []
cases = [  # (batch, c_out, h_out, w_out, c_in, h_in, w_in, stride, padding, bias)
    (3, 5, 1, 1, 7, 1, 1, 1, 0, False),   # linear
    (2, 4, 6, 6, 3, 6, 6, 1, 1, False),   # 3x3 conv, padding 1
    (2, 4, 3, 3, 3, 6, 6, 2, 1, False),   # strided
    (2, 4, 4, 4, 3, 4, 4, 1, 0, True),    # bias
]
for b, co, ho, wo, ci, hi, wi, s, p, bias in cases:
    base = torch.randn(b, co, ho, wo, generator=gen)
    src = None if bias else torch.randn(b, ci, hi, wi, generator=gen)
    n = 6
    idx = [torch.randint(0, m, (n,), generator=gen) for m in (co, ci, 3 if ho > 1 else 1, 3 if wo > 1 else 1)]
    got = kernels.structured_delta(base, src, *idx, s, p, 0.01)
    want = kernels.structured_delta_reference(base, src, *idx, s, p, 0.01)
    if not torch.allclose(got, want, rtol=1e-6, atol=1e-6):
        failures.append(f"structured_delta {b, co, ho, wo, ci, s, p, bias}: max err {(got - want).abs().max()}")

from repro.models import mlp, small_cnn  # noqa: E402

torch.manual_seed(0)
for model, x in ((mlp([10, 6, 4], "relu"), torch.randn(5, 10)), (small_cnn(1, 4, 4), torch.randn(3, 1, 6, 6))):
    prog = engine.Program(model)
    y = torch.arange(len(x)) % 4
    coords = {nm: torch.arange(min(p.numel(), 12)) for nm, p in prog.params.items()}
    got, _ = engine.cge(prog, x, y, coords, 5e-3, "rank_one")
    want, _ = engine.cge(prog, x, y, coords, 5e-3, "rank_one", force_reference=True)
    for nm in prog.names:
        if not torch.allclose(got[nm], want[nm], rtol=0, atol=1e-4):
            failures.append(f"engine rank_one {type(model).__name__} {nm}: max err {(got[nm] - want[nm]).abs().max()}")
print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
