"""Fused Triton quantize/dequantize kernel, with the PyTorch reference it must match.

``quantize_rows(x2, bits, ...)`` quantizes an (N, D) matrix row by row in one kernel: each program
reduces its row's min/max (the per-sample range of PSQ; or reads a given zero point/scale: the
per-tensor range of PTQ, the forward quantizers), scales it to [0, B], adds the stochastic-rounding
noise, rounds, clamps and writes the dequantized value — one read for the range, one read and one
write for the values, no intermediate tensors. The rounding noise comes from Triton's Philox
generator, ``tl.rand(seed, row * D + col)``: a given seed gives the same draws whatever the block
size (reproducible), and the seed is drawn from torch's generator, so seeded runs repeat. A
``noise`` tensor (U[-1/2, 1/2), as the reference draws it) may be passed instead: then the kernel
and the reference see identical inputs (the tests compare them that way).

The per-column quantizer of the weight-gradient path is the same kernel on the transposed (strided)
view; BHQ is ``householder_apply`` (O(N D), ``quantizers.py``) + this kernel + the inverse.

Rounding: the kernel rounds half up (floor(y + 1/2)), torch half to even; they differ only when
(x - zero) * scale lands exactly on a half level (never seen on random data; the tests check
exact equality on random inputs). ``use_triton(t)``: Triton on CUDA tensors or under the
interpreter (``TRITON_INTERPRET=1``), the reference otherwise; fixed block sizes (no autotune:
it needs a GPU driver the interpreter lacks).
"""

from __future__ import annotations

import torch

from repro.kernels import interpreting, load_triton, use_triton  # noqa: F401 (re-exported)

from repro_fqt import quantizers as Q

triton, tl = load_triton()


if triton is not None:

    @triton.jit
    def _quantize_rows_kernel(x_ptr, out_ptr, noise_ptr, zero_ptr, scale_ptr, n_cols,
                              stride_xr, stride_xc, stride_or, stride_oc, stride_zr, bins, eps, seed,
                              FUSED_RANGE: tl.constexpr, STOCHASTIC: tl.constexpr, HAS_NOISE: tl.constexpr,
                              BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * stride_xr
        if FUSED_RANGE:
            lo = tl.full((BLOCK,), float("inf"), tl.float32)
            hi = tl.full((BLOCK,), float("-inf"), tl.float32)
            for c0 in range(0, n_cols, BLOCK):
                cols = c0 + tl.arange(0, BLOCK)
                m = cols < n_cols
                v = tl.load(x_row + cols * stride_xc, mask=m, other=0.0).to(tl.float32)
                lo = tl.minimum(lo, tl.where(m, v, float("inf")))
                hi = tl.maximum(hi, tl.where(m, v, float("-inf")))
            zero = tl.min(lo, axis=0) - eps
            top = tl.max(hi, axis=0) + eps
            ok = top > zero  # an empty float32 range: scale 1, the row comes back as zero = x
            scale = tl.where(ok, bins / tl.where(ok, top - zero, 1.0), 1.0)
        else:
            zero = tl.load(zero_ptr + row * stride_zr)
            scale = tl.load(scale_ptr + row * stride_zr)
        for c0 in range(0, n_cols, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            m = cols < n_cols
            v = tl.load(x_row + cols * stride_xc, mask=m, other=0.0).to(tl.float32)
            y = (v - zero) * scale
            if STOCHASTIC:
                if HAS_NOISE:
                    u = tl.load(noise_ptr + row * n_cols + cols, mask=m, other=0.0)
                else:
                    u = tl.rand(seed, row * n_cols + cols) - 0.5
                y = y + u
            y = tl.minimum(tl.maximum(y, 0.0), bins)
            q = tl.floor(y + 0.5)
            out = q / scale + zero
            tl.store(out_ptr + row * stride_or + cols * stride_oc, out.to(out_ptr.dtype.element_ty), mask=m)


def _block(n_cols: int) -> int:
    if interpreting():
        return 32  # the interpreter pays per loop iteration: small tiles, few of them
    return min(1024, max(32, triton.next_power_of_2(n_cols)))


def quantize_rows_reference(x2: torch.Tensor, bits: int, zero: torch.Tensor | None = None,
                            scale: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: per-row range unless *zero*/*scale* (broadcast to (N, 1)) are given; *noise*
    None: nearest rounding."""
    x2f = x2.float()
    if zero is None or scale is None:
        zero, scale = Q.per_row_range(x2f, bits)
    return Q.quantize_affine(x2f, zero, scale, Q.num_bins(bits), noise).to(x2.dtype)


def quantize_rows(x2: torch.Tensor, bits: int, *, zero: torch.Tensor | None = None,
                  scale: torch.Tensor | None = None, stochastic: bool = True, noise: torch.Tensor | None = None,
                  seed: int | None = None, generator: torch.Generator | None = None,
                  force_reference: bool = False) -> torch.Tensor:
    """Quantize/dequantize the rows of the (N, D) matrix *x2* (any strides) at *bits*.

    Args:
        zero, scale: a given range (scalars or per-row (N, 1) tensors); None: each row's min/max (PSQ).
        stochastic: stochastic rounding (gradients); False: nearest (weights, activations).
        noise: explicit U[-1/2, 1/2) rounding noise of x2's shape (then both paths use it).
        seed: the kernel's Philox seed; None: drawn from torch's generator (*generator* or the global one).
    """
    if x2.dim() != 2:
        raise ValueError(f"quantize_rows expects an (N, D) matrix, got shape {tuple(x2.shape)}")
    if not stochastic:
        noise = None
    if force_reference or not use_triton(x2) or x2.numel() == 0:
        if stochastic and noise is None:
            noise = Q.draw_noise(x2.shape, x2.device, generator)
        return quantize_rows_reference(x2, bits, zero, scale, noise)
    n_rows, n_cols = x2.shape
    out = torch.empty_like(x2)
    fused = zero is None or scale is None
    if fused:
        zero_t = scale_t = torch.zeros(1, device=x2.device, dtype=torch.float32)
        stride_z = 0
    else:
        zero_t = torch.as_tensor(zero, dtype=torch.float32, device=x2.device).reshape(-1).contiguous()
        scale_t = torch.as_tensor(scale, dtype=torch.float32, device=x2.device).reshape(-1).contiguous()
        if zero_t.numel() not in (1, n_rows) or scale_t.numel() != zero_t.numel():
            raise ValueError(f"quantize_rows: zero/scale must be scalars or one per row ({n_rows}), "
                             f"got {zero_t.numel()} and {scale_t.numel()}")
        stride_z = 0 if zero_t.numel() == 1 else 1
    has_noise = stochastic and noise is not None
    noise_t = noise.float().contiguous() if has_noise else zero_t
    if seed is None:
        dev = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator, device=dev).item()) if stochastic else 0
    _quantize_rows_kernel[(n_rows,)](
        x2, out, noise_t, zero_t, scale_t, n_cols, x2.stride(0), x2.stride(1), out.stride(0), out.stride(1),
        stride_z, float(Q.num_bins(bits)), Q.EPS, int(seed),
        FUSED_RANGE=fused, STOCHASTIC=stochastic, HAS_NOISE=has_noise, BLOCK=_block(n_cols))
    return out


# ---- the quantizers of the layers, dispatched to the kernel or the reference --------------------

def quantize_tensor(x: torch.Tensor, bits: int, *, stochastic: bool, align_zero: bool = True,
                    generator: torch.Generator | None = None, force_reference: bool = False) -> torch.Tensor:
    """Per-tensor quantize/dequantize (PTQ gradients; weights and activations with nearest rounding)."""
    if x.numel() == 0:
        return x
    zero, scale = Q.per_tensor_range(x, bits, align_zero)
    x2 = Q.as_rows(x)
    return quantize_rows(x2, bits, zero=zero, scale=scale, stochastic=stochastic, generator=generator,
                         force_reference=force_reference).reshape(x.shape)


def quantize_samples(x: torch.Tensor, bits: int, *, generator: torch.Generator | None = None,
                     force_reference: bool = False) -> torch.Tensor:
    """Per-sample (per-row) stochastic quantize/dequantize (PSQ)."""
    if x.numel() == 0:
        return x
    return quantize_rows(Q.as_rows(x), bits, generator=generator, force_reference=force_reference).reshape(x.shape)


def quantize_columns(x: torch.Tensor, bits: int, *, generator: torch.Generator | None = None,
                     force_reference: bool = False) -> torch.Tensor:
    """Per-column stochastic quantize/dequantize (weight-gradient path of PSQ/BHQ): the row kernel
    on the transposed view."""
    if x.numel() == 0:
        return x
    x2 = Q.as_rows(x)
    noise = None
    if force_reference or not use_triton(x2):  # the reference draws its noise in the (N, D) shape
        noise = Q.draw_noise(x2.shape, x2.device, generator).t()
    return quantize_rows(x2.t(), bits, noise=noise, generator=generator,
                         force_reference=force_reference).t().reshape(x.shape)


def quantize_householder(x: torch.Tensor, bits: int, *, generator: torch.Generator | None = None,
                         force_reference: bool = False) -> torch.Tensor:
    """BHQ: T^{-1} Q_rows(T x), T applied as block Householder reflections (no N x N matrix)."""
    if x.numel() == 0:
        return x
    x2 = Q.as_rows(x).float()
    plan = Q.bhq_plan(Q.row_ranges(x2)).to(x2.device)
    tx = Q.householder_apply(x2, plan)
    q = quantize_rows(tx, bits, generator=generator, force_reference=force_reference)
    return Q.householder_apply(q, plan, inverse=True).reshape(x.shape).to(x.dtype)


def quantize_gradient(g: torch.Tensor, scheme: str, bits: int, *, generator: torch.Generator | None = None,
                      force_reference: bool = False) -> torch.Tensor:
    """The activation-gradient quantizer *scheme* at *bits*: ``ptq`` | ``psq`` | ``bhq``."""
    if scheme == "ptq":
        return quantize_tensor(g, bits, stochastic=True, generator=generator, force_reference=force_reference)
    if scheme == "psq":
        return quantize_samples(g, bits, generator=generator, force_reference=force_reference)
    if scheme == "bhq":
        return quantize_householder(g, bits, generator=generator, force_reference=force_reference)
    raise ValueError(f"unknown gradient quantizer {scheme!r}; choose one of ptq, psq, bhq")


def quantize_weight_gradient(g: torch.Tensor, persample: bool, bits: int, *, generator: torch.Generator | None = None,
                             force_reference: bool = False) -> torch.Tensor:
    """The weight-gradient path of gradient bifurcation: per tensor (PTQ) or per column (PSQ, BHQ),
    as the reference's ``weight_gradient_preconditioner``."""
    if persample:
        return quantize_columns(g, bits, generator=generator, force_reference=force_reference)
    return quantize_tensor(g, bits, stochastic=True, generator=generator, force_reference=force_reference)


# ---- benchmark cases for ``repro bench`` --------------------------------------------------------

def bhq_dense_reference(x: torch.Tensor, bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """BHQ the way the official code applies it: dense N x N T and T^{-1}, two matrix products
    (``preconditioner.py``: ``self.T @ x`` and ``self.T_inv @ x``), unfused per-row quantization."""
    x2 = Q.as_rows(x).float()
    plan = Q.bhq_plan(Q.row_ranges(x2)).to(x2.device)
    h = plan.dense_reflection()
    t, t_inv = h * plan.s[None, :], h / plan.s[:, None]
    tx = t @ x2
    q = quantize_rows_reference(tx, bits, noise=Q.draw_noise(tx.shape, tx.device, generator))
    return (t_inv @ q).reshape(x.shape)


def kernel_benchmarks() -> list:
    """The quantizer cases this package registers with the core's harness (``repro bench fqt``).

    Shapes: the gradient is an (M, N) matrix (M samples, N features; K and the keep ratio are
    ignored, run with ``--ratios 1``). "dense" is what each kernel replaces: the unfused PyTorch
    quantizer (several passes, temporaries) for PSQ / PTQ, the reference's dense T @ x for BHQ.
    """
    from repro.bench import KernelBenchmark

    def grad(m: int, n: int, device: torch.device) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(0)
        scale = torch.rand(m, 1, generator=gen) ** 4  # per-sample magnitudes spread over decades
        return (torch.randn(m, n, generator=gen) * scale).to(device)

    def make_psq(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        g = grad(m, n, device)
        return (lambda: quantize_samples(g, 4, force_reference=reference),
                lambda: quantize_samples(g, 4, force_reference=True))

    def make_ptq(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        g = grad(m, n, device)
        return (lambda: quantize_tensor(g, 4, stochastic=True, force_reference=reference),
                lambda: quantize_tensor(g, 4, stochastic=True, force_reference=True))

    def make_bhq(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        g = grad(m, n, device)
        return (lambda: quantize_householder(g, 4, force_reference=reference), lambda: bhq_dense_reference(g, 4))

    return [
        KernelBenchmark("psq_fused", make_psq, "per-sample min/max + scale + stochastic rounding in one kernel "
                                               "vs the unfused PyTorch quantizer", gemm=False),
        KernelBenchmark("ptq_fused", make_ptq, "per-tensor stochastic rounding in one kernel (range by torch) "
                                               "vs the unfused PyTorch quantizer", gemm=False),
        KernelBenchmark("bhq_blockwise", make_bhq, "BHQ as block Householder reflections (O(N D)) + fused "
                                                   "quantizer vs the reference's dense N x N T @ x", gemm=False),
    ]
