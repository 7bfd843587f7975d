"""Fused forward + tangent (forward-mode JVP) layer of a stacked ReLU MLP, in Triton, with a
PyTorch reference.

For P independent layers (one per problem) it computes, for inputs h (P, N, K) and their
tangents t (P, N, D, K) (D directions per sample, e.g. the d unit vectors for a full input
gradient or one random direction for stochastic Sobolev training):

    a = h W + b,      ȧ_j = t_j W,                       (pre-activation and its tangents)
    ReLU:  out = a ⊙ 1[a > 0],  ṫ_j = ȧ_j ⊙ 1[a > 0]       (the mask epilogue)

with W (P, K, M) and b (P, 1, M). The Triton kernel computes both products in one K loop that
loads each W tile once for the value rows and all D tangent rows of a block of samples, and
applies bias, ReLU and the tangent mask in the epilogue, so neither ``a`` nor the unmasked
tangents are written to memory. Propagating (value, tangents) through every layer gives m(x) and
the directional derivatives ⟨∇m(x), v_j⟩ in one forward pass; training on them needs only an
ordinary backward pass through this layer (``JVPLayer.backward``, PyTorch) instead of double
backpropagation through the autograd graph.

Block sizes are fixed (no ``@triton.autotune``: it needs a GPU driver, and the interpreter
``TRITON_INTERPRET=1`` that the CPU tests use cannot run it). ``use_triton()`` picks the path:
Triton on CUDA tensors or under the interpreter, the reference otherwise. fp32 only is tested
under the interpreter (its reduced-precision arithmetic is not faithful).
"""

from __future__ import annotations

import torch

from repro.kernels import interpreting, load_triton, use_triton  # noqa: F401 (re-exported)

triton, tl = load_triton()


# ---- reference ----------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "tanh", "none")


def jvp_layer_reference(h: torch.Tensor, t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, out_tangents) of the stacked layer: h (P, N, K), t (P, N, D, K), weight (P, K, M),
    bias (P, 1, M) -> (P, N, M), (P, N, D, M); *activation* relu, tanh or none. Differentiable by
    autograd."""
    a = torch.baddbmm(bias, h, weight)
    p, n, d, k = t.shape
    ta = torch.bmm(t.reshape(p, n * d, k), weight).reshape(p, n, d, weight.shape[-1])
    if activation == "relu":
        mask = (a > 0).to(a.dtype)
        return a * mask, ta * mask.unsqueeze(2)
    if activation == "tanh":
        out = torch.tanh(a)
        return out, ta * (1 - out * out).unsqueeze(2)
    if activation != "none":
        raise ValueError(f"jvp_layer: unknown activation {activation!r}; valid choices: {', '.join(ACTIVATIONS)}")
    return a, ta


# ---- Triton kernel ------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _jvp_layer_kernel(h_ptr, t_ptr, w_ptr, b_ptr, out_ptr, tout_ptr, N, K, M, D,
                          RELU: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
        # One program: problem p, samples [s0, s0 + BLOCK_S), outputs [m0, m0 + BLOCK_M).
        # Contiguous layouts: h (P, N, K), t (P, N, D, K), w (P, K, M), b (P, M), out (P, N, M),
        # tout (P, N, D, M). Tangent row r of the tile is sample r // BLOCK_D, direction r % BLOCK_D.
        p = tl.program_id(0)
        s0 = tl.program_id(1) * BLOCK_S
        m0 = tl.program_id(2) * BLOCK_M
        rs = s0 + tl.arange(0, BLOCK_S)
        rm = m0 + tl.arange(0, BLOCK_M)
        rt = tl.arange(0, BLOCK_S * BLOCK_D)
        ts = s0 + rt // BLOCK_D  # sample of each tangent row
        tj = rt % BLOCK_D  # direction of each tangent row
        t_ok = (ts < N) & (tj < D)
        t_row = ts * D + tj
        h_base = h_ptr + p * N * K
        t_base = t_ptr + p * N * D * K
        w_base = w_ptr + p * K * M
        acc = tl.zeros((BLOCK_S, BLOCK_M), dtype=tl.float32)
        tacc = tl.zeros((BLOCK_S * BLOCK_D, BLOCK_M), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            k_ok = rk < K
            w = tl.load(w_base + rk[:, None] * M + rm[None, :], mask=k_ok[:, None] & (rm[None, :] < M), other=0.0)
            hv = tl.load(h_base + rs[:, None] * K + rk[None, :], mask=(rs[:, None] < N) & k_ok[None, :], other=0.0)
            tv = tl.load(t_base + t_row[:, None] * K + rk[None, :], mask=t_ok[:, None] & k_ok[None, :], other=0.0)
            acc += tl.dot(hv, w, input_precision="ieee")
            tacc += tl.dot(tv, w, input_precision="ieee")
        bias = tl.load(b_ptr + p * M + rm, mask=rm < M, other=0.0)
        acc += bias[None, :]
        tacc3 = tl.reshape(tacc, (BLOCK_S, BLOCK_D, BLOCK_M))
        if RELU:
            keep = acc > 0
            acc = tl.where(keep, acc, 0.0)
            tacc3 = tl.where(keep[:, None, :], tacc3, 0.0)
        tacc = tl.reshape(tacc3, (BLOCK_S * BLOCK_D, BLOCK_M))
        m_ok = rm[None, :] < M
        tl.store(out_ptr + p * N * M + rs[:, None] * M + rm[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=(rs[:, None] < N) & m_ok)
        tl.store(tout_ptr + p * N * D * M + t_row[:, None] * M + rm[None, :], tacc.to(tout_ptr.dtype.element_ty),
                 mask=t_ok[:, None] & m_ok)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _blocks(n: int, m: int, d: int) -> tuple[int, int, int, int]:
    """(BLOCK_S, BLOCK_D, BLOCK_M, BLOCK_K): tl.dot needs every tile side >= 16."""
    bd = _next_pow2(d)
    if interpreting():
        return 16, bd, 16, 16  # small tiles: the interpreter is slow per element
    bs = max(16, min(64, 128 // bd))
    bm = 64 if m >= 64 else 32 if m >= 32 else 16
    return bs, bd, bm, 32


def jvp_layer_triton(h: torch.Tensor, t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     relu: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused kernel (no autograd; see ``jvp_layer`` for the differentiable op)."""
    p, n, k = h.shape
    d, m = t.shape[2], weight.shape[2]
    h, t, weight = h.contiguous(), t.contiguous(), weight.contiguous()
    b = bias.reshape(p, m).contiguous()
    out = torch.empty((p, n, m), device=h.device, dtype=h.dtype)
    tout = torch.empty((p, n, d, m), device=h.device, dtype=h.dtype)
    if n == 0 or m == 0:
        return out, tout
    bs, bd, bm, bk = _blocks(n, m, d)
    grid = (p, triton.cdiv(n, bs), triton.cdiv(m, bm))
    _jvp_layer_kernel[grid](h, t, weight, b, out, tout, n, k, m, d, RELU=relu,
                            BLOCK_S=bs, BLOCK_D=bd, BLOCK_M=bm, BLOCK_K=bk)
    return out, tout


class JVPLayer(torch.autograd.Function):
    """Forward: the fused kernel. Backward (PyTorch): with the ReLU mask m = 1[a > 0] (recomputed
    from the output: out > 0 exactly where a > 0), g = ∂L/∂out ⊙ m and G_j = ∂L/∂ṫ_j ⊙ m,

        ∂L/∂h = g Wᵀ,  ∂L/∂t_j = G_j Wᵀ,  ∂L/∂W = hᵀ g + Σ_j t_jᵀ G_j,  ∂L/∂b = Σ_n g.

    (The mask is piecewise constant, so it carries no gradient: the same as autograd's ReLU.)
    """

    @staticmethod
    def forward(ctx, h, t, weight, bias, relu):  # noqa: D401 - autograd signature
        out, tout = jvp_layer_triton(h, t, weight, bias, relu)
        ctx.save_for_backward(h, t, weight, out)
        ctx.relu = relu
        return out, tout

    @staticmethod
    def backward(ctx, g_out, g_tout):
        h, t, weight, out = ctx.saved_tensors
        return (*jvp_layer_backward(h, t, weight, out, ctx.relu, g_out, g_tout), None)


def jvp_layer_backward(h: torch.Tensor, t: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, relu: bool,
                       g_out: torch.Tensor | None, g_tout: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Gradients (h, t, weight, bias) of the fused layer from its saved inputs and output (see
    ``JVPLayer``); a pure function so the CPU tests check it against autograd of the reference."""
    p, n, d, k = t.shape
    m = weight.shape[2]
    g_out = torch.zeros_like(out) if g_out is None else g_out
    g_tout = torch.zeros((p, n, d, m), device=out.device, dtype=out.dtype) if g_tout is None else g_tout
    if relu:
        mask = (out > 0).to(out.dtype)
        g_out = g_out * mask
        g_tout = g_tout * mask.unsqueeze(2)
    g_tout_flat = g_tout.reshape(p, n * d, m)
    wt = weight.transpose(1, 2)
    g_h = torch.bmm(g_out, wt)
    g_t = torch.bmm(g_tout_flat, wt).reshape(p, n, d, k)
    g_w = torch.bmm(h.transpose(1, 2), g_out) + torch.bmm(t.reshape(p, n * d, k).transpose(1, 2), g_tout_flat)
    g_b = g_out.sum(dim=1, keepdim=True)
    return g_h, g_t, g_w, g_b


def jvp_layer(h: torch.Tensor, t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: str,
              force_reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable fused forward + tangent layer: the Triton kernel where available (CUDA or the
    interpreter) for ReLU and linear layers, else the PyTorch reference. Shapes as in
    ``jvp_layer_reference``."""
    if force_reference or not use_triton(h) or activation not in ("relu", "none"):
        return jvp_layer_reference(h, t, weight, bias, activation)
    return JVPLayer.apply(h, t, weight, bias, activation == "relu")


# ---- benchmark cases for ``repro bench`` --------------------------------------------------------

def kernel_benchmarks() -> list:
    """Cases for the core harness (``repro bench sobolev``). A shape M x N x K reads: M samples, a
    layer K -> N (one problem); the keep ratio r sets the number of tangent directions D = round(8 r)
    (r = 0.25: 2, the full gradient of a 2-D input; 1.0: 8). Each case is timed against the plain
    forward layer relu(h W + b) (no tangents) on the same inputs."""
    from repro.bench import KernelBenchmark

    def inputs(m: int, n: int, k: int, ratio: float, device: torch.device):
        dtype = torch.float32
        gen = torch.Generator(device="cpu").manual_seed(0)
        d = max(1, round(8 * ratio))
        h = torch.randn(1, m, k, generator=gen).to(device, dtype)
        t = torch.randn(1, m, d, k, generator=gen).to(device, dtype)
        w = (torch.randn(1, k, n, generator=gen) / k ** 0.5).to(device, dtype)
        b = torch.randn(1, 1, n, generator=gen).to(device, dtype)
        return h, t, w, b

    def make_fused(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        h, t, w, b = inputs(m, n, k, ratio, device)
        dense = lambda: torch.relu(torch.baddbmm(b, h, w))  # noqa: E731
        return (lambda: jvp_layer(h, t, w, b, "relu", force_reference=reference)), dense

    def make_unfused(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        h, t, w, b = inputs(m, n, k, ratio, device)
        dense = lambda: torch.relu(torch.baddbmm(b, h, w))  # noqa: E731
        return (lambda: jvp_layer_reference(h, t, w, b, "relu")), dense

    def make_func_jvp(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        h, t, w, b = inputs(m, n, k, ratio, device)
        dense = lambda: torch.relu(torch.baddbmm(b, h, w))  # noqa: E731

        def layer(x):
            return torch.relu(torch.baddbmm(b, x, w))

        tangents = t.permute(2, 0, 1, 3)  # (D, 1, M, K): one jvp per direction, vmapped

        def run():
            return torch.func.vmap(lambda tt: torch.func.jvp(layer, (h,), (tt,)), out_dims=(None, 0))(tangents)

        return run, dense

    return [
        KernelBenchmark("jvp_layer_fused", make_fused,
                        "fused forward + D tangents + ReLU mask (Triton on CUDA; the PyTorch reference on CPU)",
                        gemm=False),
        KernelBenchmark("jvp_layer_unfused", make_unfused,
                        "reference: baddbmm + bmm of the tangents + mask multiplies (separate kernels)", gemm=False),
        KernelBenchmark("jvp_layer_torch_func", make_func_jvp,
                        "torch.func.jvp of the layer, vmapped over the D directions", gemm=False),
    ]
