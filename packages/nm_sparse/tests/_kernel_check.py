"""Run by test_nm_sparse_kernels.py in a subprocess with TRITON_INTERPRET=1 set before triton is imported:
the fused Triton mask + pack kernel against the PyTorch reference, exactly (int masks, copied values)."""

import os
import sys

assert os.environ.get("TRITON_INTERPRET") == "1"
import torch  # noqa: E402

from repro_nm_sparse import kernels  # noqa: E402
from repro_nm_sparse.masks import nm_mask_pack_reference  # noqa: E402

assert kernels.triton is not None and kernels.use_triton(torch.zeros(1))
gen = torch.Generator().manual_seed(0)
failures = []
cases = [(8, 16, 2, 4), (16, 8, 2, 8), (12, 20, 1, 4), (8, 8, 4, 8), (16, 24, 2, 8), (4, 4, 4, 4), (6, 8, 1, 2)]
for rows, cols, n, m in cases:
    w = torch.randn(rows, cols, generator=gen)
    if rows == 16 and cols == 24:  # ties: repeated magnitudes (and signs) inside groups
        w = torch.randint(-2, 3, (rows, cols), generator=gen).float()
    for fwd, bwd in ((True, True), (True, False), (False, True)):
        if (bwd and rows % m) or (fwd and cols % m):
            continue
        got = kernels.nm_mask_pack(w, n, m, forward=fwd, backward=bwd)
        want = nm_mask_pack_reference(w, n, m, forward=fwd, backward=bwd)
        if set(got) != set(want):
            failures.append(f"{rows}x{cols} {n}:{m} keys {sorted(got)} != {sorted(want)}")
            continue
        for key in want:
            if not torch.equal(got[key], want[key]):
                failures.append(f"{rows}x{cols} {n}:{m} fwd={fwd} bwd={bwd}: {key} differs")
# a strided (transposed) input
wt = torch.randn(16, 8, generator=gen).t()
got, want = kernels.nm_mask_pack(wt, 2, 4), nm_mask_pack_reference(wt.contiguous(), 2, 4)
for key in want:
    if not torch.equal(got[key], want[key]):
        failures.append(f"strided input: {key} differs")
# the training entry point
mf, mb = kernels.nm_masks(torch.randn(8, 16, generator=gen), 2, 8, backward=True, kernel="triton")
if not (mf.dtype == torch.bool and mb is not None and int(mf.sum()) == 8 * 16 // 4 and int(mb.sum()) == 8 * 16 // 4):
    failures.append("nm_masks(kernel='triton') returned wrong masks")
print("\n".join(failures) or "ok")
sys.exit(1 if failures else 0)
