"""Run by test_autoassist.py in a subprocess with TRITON_INTERPRET=1 (set before triton is imported):
the fused Triton selection kernel under the CPU interpreter vs the PyTorch reference, fp32; and on
the golden candidate stream of ``golden_reference.json`` (the reference sampler's accept decisions,
see ``_golden_reference.py``) so the kernel path is tied to the reference code too."""

import json
import os
import sys
from pathlib import Path

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
    stream = json.loads(Path(__file__).with_name("golden_reference.json").read_text())["stream"]
    order = torch.tensor(stream["order"])
    xf, y = torch.tensor(stream["x"])[order], torch.tensor(stream["y"])[order]
    w, u, coins = torch.tensor(stream["w"]), torch.tensor(stream["u"]), torch.tensor(stream["coins"])
    logits = torch.zeros(len(y), len(u))
    got = fused_select_triton(logits, xf, y, w, u, stream["base_prob"], coins, block_m=16, block_d=32)
    accepted = got["idx"][: int(got["count"])].tolist()
    assert accepted == stream["expected"]["accepted_positions"], "golden accept"
    assert torch.allclose(got["prob"], torch.tensor(stream["expected"]["accept_prob"])[order], atol=1e-6), "golden prob"
    print(f"ok golden reference stream n={len(y)} accepted={len(accepted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
