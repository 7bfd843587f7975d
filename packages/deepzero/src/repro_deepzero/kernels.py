"""The perturbed layer outputs of coordinate-wise ZO as a rank-one structured delta (Triton + reference).

Moving one weight coordinate by μ changes a layer's output by a structured, rank-one delta, so
the P perturbed outputs of a layer need no GEMM, only the cached output and a gather of its input:

* linear W[o, i]:        out_p[b, o'] = base[b, o'] + [o' = o] μ x[b, i]
* conv W[o, c, u, v]:    out_p[b, o', h, w] = base[b, o', h, w] + [o' = o] μ x_pad[b, c, h s + u, w s + v]
* batch norm γ_c:        out_p[b, c', ...] = base[b, c', ...] + [c' = c] μ x̂[b, c, ...]
* any bias / BN shift:   out_p[b, o', ...] = base[b, o', ...] + [o' = o] μ

All are ``structured_delta(base, src, co, ci, kh, kw, stride, padding, mu)`` on 4-D tensors
(linear and 1-D batch norm as 1x1 maps): ``base`` (B, Co, Ho, Wo) is the cached unperturbed
output, ``src`` (B, Ci, H, W) the cached input (or x̂; None for a bias), the index vectors (P,)
name each query's coordinate; the result is (P, B, Co, Ho, Wo). The Triton kernel writes it in
one pass (one program per (query, block of outputs)); the PyTorch reference does the same with
a repeat and an advanced-index add. ``use_triton`` picks Triton on CUDA tensors or under
``TRITON_INTERPRET=1`` (the CPU tests), the reference otherwise. Fixed block sizes (no
autotune: it needs a driver). Triton is imported lazily so listing papers does not import it.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from repro.kernels import interpreting, load_triton, triton_available, use_triton  # noqa: F401 (re-exported)


@functools.cache
def _triton():
    """(triton, kernel) or None when triton is not installed."""
    triton, tl = load_triton()
    if triton is None:  # pragma: no cover - depends on the install
        return None

    @triton.jit
    def _structured_delta_kernel(base_ptr, src_ptr, out_ptr, co_ptr, ci_ptr, kh_ptr, kw_ptr, mu,
                                 N, CO, HO, WO, CI, H, W, stride, padding,
                                 HAS_SRC: tl.constexpr, BLOCK: tl.constexpr):
        p = tl.program_id(0)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < N
        base = tl.load(base_ptr + offs, mask=m, other=0.0).to(tl.float32)
        co = tl.load(co_ptr + p)
        c = (offs // (WO * HO)) % CO
        hit = (c == co) & m
        if HAS_SRC:
            ci = tl.load(ci_ptr + p)
            kh = tl.load(kh_ptr + p)
            kw = tl.load(kw_ptr + p)
            w = offs % WO
            h = (offs // WO) % HO
            b = offs // (WO * HO * CO)
            r = h * stride + kh - padding
            s = w * stride + kw - padding
            valid = hit & (r >= 0) & (r < H) & (s >= 0) & (s < W)
            v = tl.load(src_ptr + ((b * CI + ci) * H + r) * W + s, mask=valid, other=0.0).to(tl.float32)
            val = tl.where(hit, base + mu * v, base)
        else:
            val = tl.where(hit, base + mu, base)
        tl.store(out_ptr + p * N + offs, val.to(out_ptr.dtype.element_ty), mask=m)

    return triton, _structured_delta_kernel


def structured_delta_reference(base: torch.Tensor, src: torch.Tensor | None, co: torch.Tensor, ci: torch.Tensor,
                               kh: torch.Tensor, kw: torch.Tensor, stride: int, padding: int,
                               mu: float) -> torch.Tensor:
    """PyTorch reference of :func:`structured_delta` (see the module docstring)."""
    p = len(co)
    ho, wo = base.shape[2], base.shape[3]
    out = base.unsqueeze(0).repeat(p, 1, 1, 1, 1)
    ar = torch.arange(p, device=base.device)
    co = co.to(base.device)
    if src is None:
        out[ar, :, co] += mu
        return out
    xp = F.pad(src, (padding, padding, padding, padding)) if padding else src
    rows = kh.to(base.device)[:, None] + stride * torch.arange(ho, device=base.device)
    cols = kw.to(base.device)[:, None] + stride * torch.arange(wo, device=base.device)
    vals = xp[:, ci.to(base.device)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, P, Ho, Wo)
    out[ar, :, co] += mu * vals.transpose(0, 1)
    return out


def structured_delta(base: torch.Tensor, src: torch.Tensor | None, co: torch.Tensor, ci: torch.Tensor,
                     kh: torch.Tensor, kw: torch.Tensor, stride: int, padding: int, mu: float,
                     force_reference: bool = False) -> torch.Tensor:
    """(P, B, Co, Ho, Wo): *base* plus, for query p, μ times the (shifted) input channel ci[p] at
    tap (kh[p], kw[p]) in output channel co[p] (μ alone where *src* is None: a bias)."""
    if force_reference or not use_triton(base) or len(co) == 0:
        return structured_delta_reference(base, src, co, ci, kh, kw, stride, padding, mu)
    triton, kernel = _triton()
    base = base.contiguous()
    n_out = base.numel()
    p = len(co)
    out = torch.empty((p, *base.shape), device=base.device, dtype=base.dtype)
    dev = base.device
    co_, ci_, kh_, kw_ = (t.to(device=dev, dtype=torch.int32).contiguous() for t in (co, ci, kh, kw))
    has_src = src is not None
    src_ = src.contiguous() if has_src else base  # unused pointer when there is no source
    ci_n, h, w = (src.shape[1], src.shape[2], src.shape[3]) if has_src else (1, 1, 1)
    block = 128 if interpreting() else 1024
    grid = (p, triton.cdiv(n_out, block))
    kernel[grid](base, src_, out, co_, ci_, kh_, kw_, float(mu), n_out, base.shape[1], base.shape[2], base.shape[3],
                 ci_n, h, w, int(stride), int(padding), HAS_SRC=has_src, BLOCK=block)
    return out


# ---- benchmark cases for ``repro bench deepzero`` ---------------------------------------------------

def kernel_benchmarks() -> list:
    """Perturbed layer outputs: the structured delta vs the naive batched forward (stacked weights).

    The harness's (M, N, K, ratio) grid is read as: batch M, N output features (channels), K input
    features (channels), and P = max(1, round(ratio * 64)) perturbed coordinates; the conv case
    uses 3x3 kernels on 16x16 maps (8x8 on the CPU). The "dense" column of the table is the naive
    batched forward that the kernel replaces — one GEMM / convolution of the shared input with the
    P stacked weight copies (the engine's own non-rank-one path) — not a@b.
    """
    from repro.bench import KernelBenchmark

    def _coords(p: int, sizes: tuple[int, ...], gen: torch.Generator) -> list[torch.Tensor]:
        return [torch.randint(0, s, (p,), generator=gen) for s in sizes]

    def make_linear(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        gen = torch.Generator().manual_seed(0)
        p = max(1, round(ratio * 64))
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        x = torch.randn(m, k, generator=gen).to(device, dtype)
        w = torch.randn(n, k, generator=gen).to(device, dtype)
        base = x @ w.t()
        co, ci = (t.to(device) for t in _coords(p, (n, k), gen))
        zero = torch.zeros_like(co)
        stacked = w.unsqueeze(0).repeat(p, 1, 1)
        stacked[torch.arange(p, device=device), co, ci] += 5e-3
        flat = stacked.reshape(p * n, k)

        def kernel():
            return structured_delta(base[:, :, None, None], x[:, :, None, None], co, ci, zero, zero, 1, 0, 5e-3,
                                    force_reference=reference)

        return kernel, (lambda: x @ flat.t())  # one GEMM against the P stacked weight copies

    def make_conv(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        gen = torch.Generator().manual_seed(0)
        p = max(1, round(ratio * 64))
        hw = 16 if device.type == "cuda" else 8
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        batch, cout, cin = max(1, m // 64), max(4, n // 16), max(4, k // 16)
        x = torch.randn(batch, cin, hw, hw, generator=gen).to(device, dtype)
        w = torch.randn(cout, cin, 3, 3, generator=gen).to(device, dtype)
        base = F.conv2d(x, w, padding=1)
        co, ci, kh, kw = (t.to(device) for t in _coords(p, (cout, cin, 3, 3), gen))
        stacked = w.unsqueeze(0).repeat(p, 1, 1, 1, 1)
        stacked[torch.arange(p, device=device), co, ci, kh, kw] += 5e-3
        filters = stacked.reshape(p * cout, cin, 3, 3)

        def naive():  # one convolution of the shared input with the P x C_out stacked filters
            return F.conv2d(x, filters, padding=1)

        def kernel():
            return structured_delta(base, x, co, ci, kh, kw, 1, 1, 5e-3, force_reference=reference)

        return kernel, naive

    return [
        KernelBenchmark("delta_linear", make_linear,
                        "perturbed linear outputs: structured delta (Triton on CUDA, PyTorch reference on CPU) vs "
                        "one GEMM with the P stacked weight copies", gemm=False),
        KernelBenchmark("delta_conv3x3", make_conv,
                        "perturbed 3x3 conv outputs (batch M/64, N/16 out and K/16 in channels): structured delta "
                        "vs one convolution with the P x C_out stacked filters", gemm=False),
    ]
