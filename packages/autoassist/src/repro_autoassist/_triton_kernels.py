"""The Triton kernels of ``kernels`` (imported lazily; ``TRITON_INTERPRET`` is read when triton is
first imported). Fixed block sizes; no autotuning (the interpreter path must not autotune)."""

import triton
import triton.language as tl

@triton.jit
def score_kernel(logits_ptr, x_ptr, y_ptr, w_ptr, u_ptr, coin_ptr, loss_ptr, prob_ptr, acc_ptr, cnt_ptr,
                 n, D, C, base_prob,
                 BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr, HAS_LOGITS: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    y = tl.load(y_ptr + rows, mask=rmask, other=0)
    # assistant score: x · w, in BLOCK_D chunks
    acc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        cmask = cols < D
        xv = tl.load(x_ptr + rows[:, None] * D + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0)
        wv = tl.load(w_ptr + cols, mask=cmask, other=0.0)
        acc += tl.sum(xv * wv[None, :], axis=1)
    z = acc + tl.load(u_ptr + y, mask=rmask, other=0.0)
    prob = base_prob + (1.0 - base_prob) * (1.0 / (1.0 + tl.exp(-z)))
    coin = tl.load(coin_ptr + rows, mask=rmask, other=2.0)
    accept = (coin < prob) & rmask
    if HAS_LOGITS:  # per-sample cross entropy (C <= BLOCK_C: one tile per row)
        ccols = tl.arange(0, BLOCK_C)
        lmask = rmask[:, None] & (ccols[None, :] < C)
        lg = tl.load(logits_ptr + rows[:, None] * C + ccols[None, :], mask=lmask, other=-float("inf"))
        mx = tl.max(lg, axis=1)
        mx = tl.where(rmask, mx, 0.0)
        lse = mx + tl.log(tl.sum(tl.where(lmask, tl.exp(lg - mx[:, None]), 0.0), axis=1))
        ly = tl.load(logits_ptr + rows * C + y, mask=rmask, other=0.0)
        tl.store(loss_ptr + rows, lse - ly, mask=rmask)
    tl.store(prob_ptr + rows, prob, mask=rmask)
    acc_i = accept.to(tl.int32)
    tl.store(acc_ptr + rows, acc_i, mask=rmask)
    tl.store(cnt_ptr + pid, tl.sum(acc_i, axis=0))

@triton.jit
def compact_kernel(acc_ptr, offs_ptr, idx_ptr, n, BLOCK_M: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    a = tl.load(acc_ptr + rows, mask=rmask, other=0)
    base = tl.load(offs_ptr + pid)  # exclusive prefix sum of block counts
    pos = base + tl.cumsum(a, axis=0) - 1
    tl.store(idx_ptr + pos, rows.to(tl.int64), mask=(a > 0) & rmask)
