"""Fused Triton kernels for sampled GEMM, with a PyTorch reference for each.

* ``sampled_gemm(a, b, idx, scale)`` = sum_j scale_j A[:, idx_j] B[idx_j, :]. The Triton kernel
  walks the *index list* in its K loop: each step loads BLOCK_K indices and their scales, gathers
  the matching columns of A and rows of B straight from global memory, folds the scales into the
  A tile and accumulates with ``tl.dot`` — no ``index_select`` copies, no diag-scale product.
* ``pair_scores(a, b)`` = ||A[:, i]|| * ||B[i, :]||: one kernel reduces the column norms of A and
  the row norms of B and multiplies them.
* ``bernoulli_keep(scores, k, eps, u)``: the Bernoulli-CRS selection in one kernel:
  p_i = (1-eps) clamp(k s_i / sum s, 0, 1) + eps k / n, keep = u_i < p_i, scale_i = 1/p_i
  (0 where dropped); the kept indices are then ``nonzero`` (top-k selection uses ``torch.topk``).

An empty kept set (Bernoulli can keep nothing) is the empty sum: ``sampled_gemm`` returns zeros
(M x N) without launching a kernel, and so does ``sample_and_multiply`` when no pair is kept.

Block sizes are fixed (no ``@triton.autotune``: it needs a GPU driver, and the interpreter
``TRITON_INTERPRET=1`` used by the CPU tests cannot run it). ``use_triton()`` decides the path:
Triton on CUDA tensors or under the interpreter, the reference otherwise. The interpreter is
fp32-only in practice (its bf16 arithmetic is wrong); tests compare in fp32.
"""

from __future__ import annotations

import torch

from repro.kernels import interpreting, load_triton, triton_available, use_triton  # noqa: F401 (re-exported)

from repro_approx.sampling import keep_probabilities, select

triton, tl = load_triton()


GEMM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def triton_path(kernel: str, *tensors: torch.Tensor) -> bool:
    """Whether a sampled product of *tensors* runs the Triton kernels under the switch *kernel*
    (``ApproxConfig.kernel``): never for "reference"; otherwise when every tensor can
    (``use_triton``: CUDA or the interpreter, triton installed, fp32/fp16/bf16) and all share one
    dtype. "triton" is checked up front (``check_kernel``), so it differs from "auto" only there."""
    if kernel == "reference":
        return False
    return all(use_triton(t, GEMM_DTYPES) for t in tensors) and len({t.dtype for t in tensors}) == 1


def check_kernel(kernel: str, device: torch.device) -> None:
    """Refuse ``kernel="triton"`` where the Triton kernels cannot run (a clear error, before training)."""
    from repro.errors import ReproError

    if kernel == "triton" and not (triton_available() and (device.type == "cuda" or interpreting())):
        raise ReproError(f"approx hparam kernel='triton' needs triton and a CUDA device (or TRITON_INTERPRET=1); "
                         f"device is {device.type!r}, triton {'installed' if triton_available() else 'missing'}; "
                         f"choices: auto, triton, reference")


# ---- references ---------------------------------------------------------------------------------

def sampled_gemm_reference(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (a.index_select(1, idx) * scale.to(a.dtype)) @ b.index_select(0, idx)


def pair_scores_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(a.float(), dim=0) * torch.linalg.vector_norm(b.float(), dim=1)


def bernoulli_keep_reference(scores: torch.Tensor, k: int, eps: float, u: torch.Tensor) -> torch.Tensor:
    """Per-index scale: 1/p_i where kept, 0 where dropped (p from ``sampling.keep_probabilities``)."""
    p = keep_probabilities(scores, k, "bernoulli", eps)
    return torch.where(u.to(p.device) < p, 1.0 / p, torch.zeros_like(p))


# ---- Triton kernels -----------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _sampled_gemm_kernel(a_ptr, b_ptr, c_ptr, idx_ptr, scale_ptr, M, N, K_KEPT,
                             stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for j0 in range(0, K_KEPT, BLOCK_K):
            rj = j0 + tl.arange(0, BLOCK_K)
            jmask = rj < K_KEPT
            kk = tl.load(idx_ptr + rj, mask=jmask, other=0)
            sc = tl.load(scale_ptr + rj, mask=jmask, other=0.0)
            a = tl.load(a_ptr + rm[:, None] * stride_am + kk[None, :] * stride_ak,
                        mask=(rm[:, None] < M) & jmask[None, :], other=0.0)
            b = tl.load(b_ptr + kk[:, None] * stride_bk + rn[None, :] * stride_bn,
                        mask=jmask[:, None] & (rn[None, :] < N), other=0.0)
            a = (a.to(tl.float32) * sc[None, :]).to(b.dtype)
            acc += tl.dot(a, b)
        tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty),
                 mask=(rm[:, None] < M) & (rn[None, :] < N))

    @triton.jit
    def _pair_scores_kernel(a_ptr, b_ptr, out_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                            BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr):
        pid = tl.program_id(0)
        rk = pid * BLOCK_K + tl.arange(0, BLOCK_K)
        kmask = rk < K
        sa = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for r0 in range(0, M, BLOCK_R):
            rr = r0 + tl.arange(0, BLOCK_R)
            a = tl.load(a_ptr + rr[:, None] * stride_am + rk[None, :] * stride_ak,
                        mask=(rr[:, None] < M) & kmask[None, :], other=0.0).to(tl.float32)
            sa += tl.sum(a * a, axis=0)
        sb = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for c0 in range(0, N, BLOCK_R):
            rc = c0 + tl.arange(0, BLOCK_R)
            b = tl.load(b_ptr + rk[:, None] * stride_bk + rc[None, :] * stride_bn,
                        mask=kmask[:, None] & (rc[None, :] < N), other=0.0).to(tl.float32)
            sb += tl.sum(b * b, axis=1)
        tl.store(out_ptr + rk, tl.sqrt(sa) * tl.sqrt(sb), mask=kmask)

    @triton.jit
    def _bernoulli_keep_kernel(s_ptr, u_ptr, out_ptr, n, total, k, eps, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        r = pid * BLOCK + tl.arange(0, BLOCK)
        m = r < n
        s = tl.load(s_ptr + r, mask=m, other=0.0)
        u = tl.load(u_ptr + r, mask=m, other=2.0)
        p = tl.minimum(tl.maximum(k * s / total, 0.0), 1.0)
        p = (1.0 - eps) * p + eps * k / n
        tl.store(out_ptr + r, tl.where(u < p, 1.0 / p, 0.0), mask=m)


def _gemm_blocks(m: int, n: int, kept: int) -> tuple[int, int, int]:
    if interpreting():
        return 16, 16, 16  # small tiles: the interpreter is slow per element
    bm = 128 if m >= 128 else 64 if m >= 64 else 16
    bn = 128 if n >= 128 else 64 if n >= 64 else 16
    return bm, bn, 32


def sampled_gemm(a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor, scale: torch.Tensor,
                 force_reference: bool = False) -> torch.Tensor:
    """sum_j scale_j A[:, idx_j] B[idx_j, :] for A (M x K), B (K x N); fused Triton kernel when available."""
    if force_reference or not use_triton(a):
        return sampled_gemm_reference(a, b, idx, scale)
    m, n = a.shape[0], b.shape[1]
    if idx.numel() == 0 or m == 0 or n == 0:  # nothing kept (the empty sum) or an empty output: no launch
        return torch.zeros((m, n), device=a.device, dtype=a.dtype)
    c = torch.empty((m, n), device=a.device, dtype=a.dtype)
    idx = idx.to(device=a.device, dtype=torch.int64).contiguous()
    scale = scale.to(device=a.device, dtype=torch.float32).contiguous()
    bm, bn, bk = _gemm_blocks(m, n, idx.numel())
    grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
    _sampled_gemm_kernel[grid](a, b, c, idx, scale, m, n, idx.numel(), a.stride(0), a.stride(1),
                               b.stride(0), b.stride(1), c.stride(0), c.stride(1),
                               BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    return c


def pair_scores(a: torch.Tensor, b: torch.Tensor, force_reference: bool = False) -> torch.Tensor:
    """||A[:, i]|| * ||B[i, :]|| (fp32), fused column/row-norm kernel when available."""
    if force_reference or not use_triton(a) or a.shape[1] == 0:
        return pair_scores_reference(a, b)
    k = a.shape[1]
    out = torch.empty(k, device=a.device, dtype=torch.float32)
    bk, br = (16, 16) if interpreting() else (64, 64)
    _pair_scores_kernel[(triton.cdiv(k, bk),)](a, b, out, a.shape[0], b.shape[1], k, a.stride(0), a.stride(1),
                                               b.stride(0), b.stride(1), BLOCK_K=bk, BLOCK_R=br)
    return out


def bernoulli_keep(scores: torch.Tensor, k: int, eps: float, u: torch.Tensor,
                   force_reference: bool = False) -> torch.Tensor:
    """Per-index scale of the Bernoulli-CRS draw (1/p_i kept, 0 dropped) given uniforms *u*."""
    n = scores.numel()
    total = float(scores.float().sum())
    if force_reference or not use_triton(scores) or total <= 0 or n == 0:
        return bernoulli_keep_reference(scores, k, eps, u)
    s = scores.float().contiguous()
    out = torch.empty_like(s)
    block = 128
    _bernoulli_keep_kernel[(triton.cdiv(n, block),)](s, u.float().contiguous(), out, n, total, float(k), float(eps),
                                                     BLOCK=block)
    return out


def sample_and_multiply(a: torch.Tensor, b: torch.Tensor, k: int, strategy: str = "topk", eps: float = 0.1,
                        u: torch.Tensor | None = None, force_reference: bool = False) -> torch.Tensor:
    """Scores -> selection -> fused sampled GEMM (the whole approximate product).

    k >= n keeps every pair with scale 1 (the exact product, as ``sampling.select``); an empty
    Bernoulli draw (e.g. ``u`` all ones) gives zeros.
    """
    s = pair_scores(a, b, force_reference)
    if k >= s.numel():
        idx = torch.arange(s.numel(), device=a.device)
        scale = torch.ones(s.numel(), device=a.device)
    elif strategy == "topk":
        idx = torch.topk(s, k, sorted=False).indices
        scale = torch.ones(k, device=a.device)
    elif strategy == "bernoulli":
        u = u if u is not None else torch.rand(s.numel(), device=s.device)
        per = bernoulli_keep(s, k, eps, u, force_reference)
        idx = torch.nonzero(per).flatten()
        scale = per[idx]
    else:
        idx, scale = select(s, k, strategy, eps)
    return sampled_gemm(a, b, idx, scale, force_reference)


# ---- benchmark cases for ``repro bench`` --------------------------------------------------------

def kernel_benchmarks() -> list:
    """The kernel cases this package registers with the core's benchmark harness."""
    from repro.bench import KernelBenchmark

    def make_sampled_gemm(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(m, k, generator=gen).to(device, dtype)
        b = torch.randn(k, n, generator=gen).to(device, dtype)
        kept = max(1, int(k * ratio))
        idx = torch.randperm(k, generator=gen)[:kept].sort().values.to(device)
        scale = torch.ones(kept, device=device)
        return (lambda: sampled_gemm(a, b, idx, scale, force_reference=reference)), (lambda: a @ b)

    def make_gather_then_gemm(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        sampled, dense = make_sampled_gemm(m, n, k, ratio, device, True)
        return sampled, dense

    def make_scores(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(m, k, generator=gen).to(device, dtype)
        b = torch.randn(k, n, generator=gen).to(device, dtype)
        kk = max(1, int(k * ratio))
        return (lambda: torch.topk(pair_scores(a, b, force_reference=reference), kk).indices), (lambda: a @ b)

    def make_train_step(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        """One whole SGD step (forward, backward, update) of a 3-layer MLP, batch m, widths k -> n -> n
        -> n, every layer sampled (forward mode, top-k) vs the same step with plain layers; bf16
        autocast on CUDA for both. The kernel switch picks the path: Triton on CUDA, reference else."""
        from repro_approx.configuration_approx import ApproxConfig
        from repro_approx.wrap import approximate_model

        def step_of(sampled: bool):
            gen = torch.Generator(device="cpu").manual_seed(0)
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(k, n), torch.nn.ReLU(), torch.nn.Linear(n, n), torch.nn.ReLU(),
                                        torch.nn.Linear(n, n)).to(device)
            if sampled:
                cfg = ApproxConfig(ratio=min(ratio, 1.0), skip_first=False,
                                   kernel="reference" if reference else "auto")
                approximate_model(model, cfg)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)
            x = torch.randn(m, k, generator=gen).to(device)

            def step() -> None:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    loss = model(x).float().square().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return step

        return step_of(True), step_of(False)

    return [
        KernelBenchmark("train_step", make_train_step,
                        "a whole SGD step of a sampled 3-layer MLP (k -> n -> n -> n, batch m) against the same "
                        "step with plain layers: the kernels inside training, not alone", gemm=False),
        KernelBenchmark("sampled_gemm", make_sampled_gemm,
                        "fused gather-K GEMM (Triton on CUDA; index_select + matmul reference on CPU)", gemm=True),
        KernelBenchmark("index_select_gemm", make_gather_then_gemm,
                        "reference: index_select copies + scale + dense matmul of the kept slices", gemm=True),
        KernelBenchmark("scores_topk", make_scores, "column/row-norm scores + top-k selection", gemm=False),
    ]
