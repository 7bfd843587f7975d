"""A fused Triton kernel: both N:M masks of a weight and both packed forms, in one launch.

``nm_mask_pack(w2, n, m)`` takes the O x K GEMM view of a weight and returns, for the forward
orientation (groups of M along each row: the reduction dimension of Y = X W2ᵀ) and the backward
orientation (groups of M along each column: the reduction dimension of dX = dY W2):

* ``mask_f`` / ``mask_b``: int8 0/1 masks, O x K;
* ``values_f`` (O x K N/M) / ``values_b`` (O N/M x K): the kept weights, N per group, in position order;
* ``indices_f`` / ``indices_b``: int8 position (0..M-1) of each kept weight inside its group.

Each program loads one (BLOCK_R x BLOCK_C) tile of W2 (both multiples of M) once, as a
(rows, groups, M) view for the forward orientation; the backward view (groups, M, cols) of the
same tile is a second read of the same addresses (served by L1/L2). The in-group rank of every
element is computed in registers: rank_i = #{j : |w_j| > |w_i| or (|w_j| = |w_i| and j < i)};
kept = rank < N (top-N, lower index on ties — exactly ``masks.nm_mask``); the packed slot is the
exclusive prefix count of kept elements in the group (``tl.cumsum``).

This packed format (values + int8 in-group indices) is ours: it is what an N:M engine such as SAT
consumes, not cuSPARSELt's swizzled 2-bit metadata — the 2:4 GPU path compresses with
``torch.sparse.to_sparse_semi_structured`` (``semi_structured.py``).

``use_triton(t)``: Triton on CUDA tensors or under ``TRITON_INTERPRET=1``, the reference
(``masks.nm_mask_pack_reference``) otherwise. Fixed block sizes (no autotune: it needs a driver).
The interpreter is exact here (comparisons and integer counts; values are copied, not computed).
"""

from __future__ import annotations

import torch

from repro.errors import ReproError
from repro.kernels import interpreting, load_triton, use_triton  # noqa: F401 (re-exported)

from repro_nm_sparse.masks import check_pattern, nm_mask_pack_reference

triton, tl = load_triton()


if triton is not None:

    @triton.jit
    def _nm_mask_pack_kernel(w_ptr, mf_ptr, vf_ptr, if_ptr, mb_ptr, vb_ptr, ib_ptr, R, C,
                             stride_r, stride_c,
                             N: tl.constexpr, M: tl.constexpr, BG_R: tl.constexpr, BG_C: tl.constexpr,
                             DO_F: tl.constexpr, DO_B: tl.constexpr):
        pid_r = tl.program_id(0)
        pid_c = tl.program_id(1)
        j = tl.arange(0, M)
        if DO_F:
            # forward view: rows r (BG_R * M of them), column groups gc (BG_C), position j in the group
            r = pid_r * (BG_R * M) + tl.arange(0, BG_R * M)
            gc = pid_c * BG_C + tl.arange(0, BG_C)
            col = gc[None, :, None] * M + j[None, None, :]
            ok = (r[:, None, None] < R) & (col < C)
            x = tl.load(w_ptr + r[:, None, None] * stride_r + col * stride_c, mask=ok, other=0.0)
            a = tl.abs(x.to(tl.float32))
            rank = tl.zeros((BG_R * M, BG_C, M), dtype=tl.int32)
            for i in tl.static_range(M):
                a_i = tl.sum(tl.where(j[None, None, :] == i, a, 0.0), axis=2)  # element i of every group
                beats = (a_i[:, :, None] > a) | ((a_i[:, :, None] == a) & (i < j[None, None, :]))
                rank += beats.to(tl.int32)
            kept = (rank < N).to(tl.int32)
            slot = tl.cumsum(kept, axis=2) - kept
            tl.store(mf_ptr + r[:, None, None] * C + col, kept.to(tl.int8), mask=ok)
            out = r[:, None, None] * (C // M * N) + gc[None, :, None] * N + slot
            keep = ok & (kept == 1)
            tl.store(vf_ptr + out, x, mask=keep)
            tl.store(if_ptr + out, (j[None, None, :] + 0 * slot).to(tl.int8), mask=keep)
        if DO_B:
            # backward view of the same tile: row groups gr (BG_R), position j, columns c (BG_C * M)
            gr = pid_r * BG_R + tl.arange(0, BG_R)
            c = pid_c * (BG_C * M) + tl.arange(0, BG_C * M)
            row = gr[:, None, None] * M + j[None, :, None]
            okb = (row < R) & (c[None, None, :] < C)
            xb = tl.load(w_ptr + row * stride_r + c[None, None, :] * stride_c, mask=okb, other=0.0)
            ab = tl.abs(xb.to(tl.float32))
            rankb = tl.zeros((BG_R, M, BG_C * M), dtype=tl.int32)
            for i in tl.static_range(M):
                b_i = tl.sum(tl.where(j[None, :, None] == i, ab, 0.0), axis=1)
                beatsb = (b_i[:, None, :] > ab) | ((b_i[:, None, :] == ab) & (i < j[None, :, None]))
                rankb += beatsb.to(tl.int32)
            keptb = (rankb < N).to(tl.int32)
            slotb = tl.cumsum(keptb, axis=1) - keptb
            tl.store(mb_ptr + row * C + c[None, None, :], keptb.to(tl.int8), mask=okb)
            outb = (gr[:, None, None] * N + slotb) * C + c[None, None, :]
            keepb = okb & (keptb == 1)
            tl.store(vb_ptr + outb, xb, mask=keepb)
            tl.store(ib_ptr + outb, (j[None, :, None] + 0 * slotb).to(tl.int8), mask=keepb)


def _blocks(m: int) -> tuple[int, int]:
    """Groups per tile along rows / columns: tiles of (BG_R M) x (BG_C M) elements."""
    if interpreting():
        return 2, 2
    return (max(1, 32 // m), max(1, 32 // m))


def nm_mask_pack(w2: torch.Tensor, n: int, m: int, forward: bool = True, backward: bool = True,
                 force_reference: bool = False) -> dict[str, torch.Tensor]:
    """Both N:M masks and packed forms of the 2-D *w2* (keys as ``masks.nm_mask_pack_reference``);
    the fused Triton kernel when available, the PyTorch reference otherwise."""
    check_pattern(n, m)
    if w2.dim() != 2:
        raise ReproError(f"nm_mask_pack needs a 2-D tensor, got shape {tuple(w2.shape)}")
    rows, cols = w2.shape
    if forward and cols % m:
        raise ReproError(f"nm_mask_pack: {cols} columns is not a multiple of M={m} (forward orientation)")
    if backward and rows % m:
        raise ReproError(f"nm_mask_pack: {rows} rows is not a multiple of M={m} (backward orientation)")
    if force_reference or not use_triton(w2) or not (forward or backward) or w2.numel() == 0:
        return nm_mask_pack_reference(w2, n, m, forward, backward)
    if m & (m - 1):
        return nm_mask_pack_reference(w2, n, m, forward, backward)  # tl.arange needs a power of two
    dev, dt = w2.device, w2.dtype
    empty_i8 = torch.empty(1, dtype=torch.int8, device=dev)
    empty_v = torch.empty(1, dtype=dt, device=dev)
    mf = torch.empty(rows, cols, dtype=torch.int8, device=dev) if forward else empty_i8
    vf = torch.empty(rows, cols // m * n, dtype=dt, device=dev) if forward else empty_v
    i_f = torch.empty(rows, cols // m * n, dtype=torch.int8, device=dev) if forward else empty_i8
    mb = torch.empty(rows, cols, dtype=torch.int8, device=dev) if backward else empty_i8
    vb = torch.empty(rows // m * n, cols, dtype=dt, device=dev) if backward else empty_v
    ib = torch.empty(rows // m * n, cols, dtype=torch.int8, device=dev) if backward else empty_i8
    bgr, bgc = _blocks(m)
    grid = (triton.cdiv(rows, bgr * m), triton.cdiv(cols, bgc * m))
    _nm_mask_pack_kernel[grid](w2, mf, vf, i_f, mb, vb, ib, rows, cols, w2.stride(0), w2.stride(1),
                               N=n, M=m, BG_R=bgr, BG_C=bgc, DO_F=forward, DO_B=backward)
    out: dict[str, torch.Tensor] = {}
    if forward:
        out.update(mask_f=mf, values_f=vf, indices_f=i_f)
    if backward:
        out.update(mask_b=mb, values_b=vb, indices_b=ib)
    return out


def nm_masks(w2: torch.Tensor, n: int, m: int, backward: bool, kernel: str = "auto"
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The boolean forward mask and (if *backward*) the backward mask of *w2*, for training.

    *kernel*: "auto" (Triton on CUDA, the reference elsewhere), "reference" or "triton" (fails
    without CUDA or the interpreter)."""
    from repro_nm_sparse.masks import nm_mask

    if kernel == "triton" and not use_triton(w2):
        raise ReproError("mask_kernel 'triton' needs a CUDA tensor (or TRITON_INTERPRET=1) and triton installed")
    if kernel == "reference" or (kernel == "auto" and not (w2.is_cuda and triton is not None)):
        return nm_mask(w2, n, m, 1), (nm_mask(w2, n, m, 0) if backward else None)
    out = nm_mask_pack(w2.detach().contiguous(), n, m, forward=True, backward=backward)
    return out["mask_f"].bool(), (out["mask_b"].bool() if backward else None)


# ---- benchmark cases for ``repro bench nm_sparse`` ----------------------------------------------

def pattern_for_ratio(ratio: float) -> tuple[int, int]:
    """The N:8 pattern the harness's keep ratio stands for (0.25 -> 2:8, 0.5 -> 4:8, 1.0 -> 8:8)."""
    return max(1, min(8, round(ratio * 8))), 8


def kernel_benchmarks() -> list:
    """Cases for the core harness (``repro bench nm_sparse``): an (M x K) @ (K x N) problem whose
    (K x N) operand is the layer weight (transposed: O = N, reduction K). The harness's keep ratio r
    stands for N:8 with N = round(8 r) (mask kernel) or, for the 2:4 sparse GEMMs, for what 2:4
    hardware can run: r <= 0.5 runs the 2:4 sparse GEMM (a 2:8 weight runs at 2:4 speed), r > 0.5
    has no sparse format and runs the dense GEMM. CPU: the masked dense reference product; the
    description of each case says whether the GPU path was available. The richer benchmark at the
    paper-scale model shapes is ``benchmarks/bench_nm_sparse.py``."""
    from repro.bench import KernelBenchmark

    from repro_nm_sparse import semi_structured as ss
    from repro_nm_sparse.masks import nm_mask

    def operands(m_: int, n_: int, k_: int, device: torch.device):
        dtype = ss.DTYPE if device.type == "cuda" else torch.float32
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(m_, k_, generator=gen).to(device, dtype)
        w = torch.randn(n_, k_, generator=gen).to(device, dtype)  # O x K
        return a, w

    def make_mask_pack(m_: int, n_: int, k_: int, ratio: float, device: torch.device, reference: bool):
        a, w = operands(m_, n_, k_, device)
        nn_, mm_ = pattern_for_ratio(ratio)
        w = w[: n_ - n_ % mm_] if n_ % mm_ else w
        return (lambda: nm_mask_pack(w, nn_, mm_, force_reference=reference)), (lambda: a @ w.t())

    def make_gemm(orientation: str):
        def make(m_: int, n_: int, k_: int, ratio: float, device: torch.device, reference: bool):
            a, w = operands(m_, n_, k_, device)
            st = ss.status(str(device))
            if orientation == "fwd":  # Y = A W2ᵀ, W2 2:4 along K
                wm = w * nm_mask(w, 2, 4, 1).to(w.dtype)
                dense = (lambda: a @ w.t())
                if st.available and not reference and ratio <= 0.5 and ss.shape_ok(*w.shape, st.backend):
                    ws = ss.compress(wm, st.backend)
                    return (lambda: ss.sparse_linear(a, ws)), dense
                return (lambda: a @ wm.t()), dense
            # BP: dX = dY W2 with dY (M x O): the sparse operand is W2ᵀ (K x O), 2:4 along O
            gy = torch.randn(m_, n_, generator=torch.Generator().manual_seed(1)).to(device, a.dtype)
            wm = w * nm_mask(w, 2, 4, 0).to(w.dtype)
            dense = (lambda: gy @ w)
            if st.available and not reference and ratio <= 0.5 and ss.shape_ok(k_, n_, st.backend):
                wst = ss.compress(wm.t(), st.backend)
                return (lambda: ss.sparse_linear(gy, wst)), dense
            return (lambda: gy @ wm), dense
        return make

    gpu = ss.status("cuda")
    note = gpu.describe()
    return [
        KernelBenchmark("nm_mask_pack", make_mask_pack,
                        "fused Triton N:M masks + packing, both orientations (CUDA; PyTorch reference on CPU); "
                        "timed against the dense GEMM of the same shape", gemm=False),
        KernelBenchmark("sparse24_fwd", make_gemm("fwd"),
                        f"forward GEMM with a 2:4 weight (sparse along K); {note}", gemm=True),
        KernelBenchmark("sparse24_bgrad", make_gemm("bgrad"),
                        f"activation-gradient GEMM with a 2:4 weight along O (BDWP); {note}", gemm=True),
    ]
