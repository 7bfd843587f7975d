"""Run by test_autoassist.py in a subprocess with TRITON_INTERPRET=1 (set before triton is imported):
the fused Triton selection kernel under the CPU interpreter vs the PyTorch reference, fp32."""

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch  # noqa: E402

from repro_autoassist.kernels import fused_select_reference, fused_select_triton  # noqa: E402


def inputs(n: int, d: int, c: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g) * 3, torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g),
            torch.randn(d, generator=g) * 0.3, torch.randn(c, generator=g), 0.3, torch.rand(n, generator=g))


def main() -> int:
    for n, d, c in [(1, 3, 2), (37, 64, 10), (130, 100, 10), (64, 8, 3)]:
        args = inputs(n, d, c, seed=n)
        ref = fused_select_reference(*args)
        got = fused_select_triton(*args, block_m=32, block_d=32)
        assert torch.allclose(got["losses"], ref["losses"], atol=1e-5), (n, "losses")
        assert torch.allclose(got["prob"], ref["prob"], atol=1e-6), (n, "prob")
        assert torch.equal(got["accept"], ref["accept"]), (n, "accept")
        assert int(got["count"]) == int(ref["count"]) and torch.equal(got["idx"], ref["idx"]), (n, "idx")
        print(f"ok n={n} d={d} c={c} accepted={int(ref['count'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
