"""A fused multi-tensor HSPG / Prox-SG step in Triton, with ``hspg.step_reference`` as its reference.

One launch updates every ZIG set of a model. Program (s, r) owns rows r*BLOCK_R.. of set s and
walks that set's member tensors (conv filters, biases, BN gamma/beta — any number, any row
length) through a table of raw addresses:

1. pass 1 reduces, per group, ||X_k||^2 and the one more sum the mode needs —
   <mu B + G + wd X, X_k> for the half-space test (then <X^_k, X_k> = ||X_k||^2 - alpha
   (that + lambda ||X_k||^2 / (||X_k|| + 1e-6))), or ||Z_k||^2 of the prox point Z = X - alpha B;
2. the group test: half-space keep = <X^_k, X_k> >= eps ||X_k||^2 and X_k != 0; prox scale
   max(0, 1 - alpha lambda / ||Z_k||);
3. pass 2 recomputes the trial point row by row and writes X (and the momentum buffer B).

So the step reads X, G (and B) twice and writes X (and B) once, with no concatenated copies,
no per-set launches and no host synchronisation; the unfused reference concatenates every set,
materialises psi / the trial point / the masks and copies the result back.

Block sizes are fixed (``@triton.autotune`` needs a GPU driver; the CPU tests run this kernel
under ``TRITON_INTERPRET=1``). fp32 parameters only (others take the reference path).
``use_triton`` decides: Triton on CUDA tensors or under the interpreter, the reference otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repro.kernels import interpreting, load_triton
from repro.kernels import use_triton as use_triton_for

from repro_oto.hspg import DELTA, MODES, rows, step_reference

triton, tl = load_triton()

MODE_CODE = {"subgradient": 0, "half_space": 1, "prox": 2}


def use_triton(t: torch.Tensor) -> bool:
    return use_triton_for(t, dtypes=(torch.float32,))


if triton is not None:

    @triton.jit
    def _zig_step_kernel(x_tbl, g_tbl, b_tbl, d_tbl, set_start, set_count, set_rows, set_eps,
                         lr, lmbda, momentum, wd,
                         MODE: tl.constexpr, HAS_MOM: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
        s = tl.program_id(0)
        n = tl.load(set_rows + s)
        m0 = tl.load(set_start + s)
        mc = tl.load(set_count + s)
        eps = tl.load(set_eps + s)
        r = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
        rmask = r < n
        xx = tl.zeros((BLOCK_R,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_R,), dtype=tl.float32)
        # pass 1: per-group sums
        for j in range(m0, m0 + mc):
            xp = tl.load(x_tbl + j).to(tl.pointer_type(tl.float32))
            gp = tl.load(g_tbl + j).to(tl.pointer_type(tl.float32))
            bp = tl.load(b_tbl + j).to(tl.pointer_type(tl.float32))
            d = tl.load(d_tbl + j)
            for c0 in range(0, d, BLOCK_D):
                cols = c0 + tl.arange(0, BLOCK_D)
                msk = rmask[:, None] & (cols[None, :] < d)
                off = r[:, None].to(tl.int64) * d + cols[None, :]
                x = tl.load(xp + off, mask=msk, other=0.0)
                q = tl.load(gp + off, mask=msk, other=0.0) + wd * x
                if HAS_MOM:
                    q += momentum * tl.load(bp + off, mask=msk, other=0.0)
                xx += tl.sum(x * x, axis=1)
                if MODE == 1:
                    acc += tl.sum(q * x, axis=1)
                if MODE == 2:
                    z = x - lr * q
                    acc += tl.sum(z * z, axis=1)
        # the group test
        coef = lmbda / (tl.sqrt(xx) + 1e-6)
        scale = tl.full((BLOCK_R,), 1.0, tl.float32)
        if MODE == 1:
            dot = xx - lr * (acc + coef * xx)
            scale = tl.where((dot >= eps * xx) & (xx > 0), 1.0, 0.0)
        if MODE == 2:
            zn = tl.sqrt(acc)
            scale = tl.where(zn > 0, tl.maximum(1.0 - lr * lmbda / tl.maximum(zn, 1e-30), 0.0), 0.0)
            coef = tl.zeros((BLOCK_R,), dtype=tl.float32)
        # pass 2: trial point, projection, write back
        for j in range(m0, m0 + mc):
            xp = tl.load(x_tbl + j).to(tl.pointer_type(tl.float32))
            gp = tl.load(g_tbl + j).to(tl.pointer_type(tl.float32))
            bp = tl.load(b_tbl + j).to(tl.pointer_type(tl.float32))
            d = tl.load(d_tbl + j)
            for c0 in range(0, d, BLOCK_D):
                cols = c0 + tl.arange(0, BLOCK_D)
                msk = rmask[:, None] & (cols[None, :] < d)
                off = r[:, None].to(tl.int64) * d + cols[None, :]
                x = tl.load(xp + off, mask=msk, other=0.0)
                q = tl.load(gp + off, mask=msk, other=0.0) + wd * x + coef[:, None] * x
                if HAS_MOM:
                    q += momentum * tl.load(bp + off, mask=msk, other=0.0)
                    tl.store(bp + off, q, mask=msk)
                tl.store(xp + off, (x - lr * q) * scale[:, None], mask=msk)


def _blocks() -> tuple[int, int]:
    return (8, 32) if interpreting() else (16, 128)


class ZigStep:
    """The fused step over a fixed list of ZIG sets (``sets[i]`` = the member tensors of set i).

    The tables of member addresses and row lengths are built once; the gradient (and buffer)
    addresses are re-read at every call (autograd allocates new gradient tensors).
    """

    def __init__(self, sets: Sequence[Sequence[torch.Tensor]], eps: Sequence[float]) -> None:
        if len(sets) != len(eps):
            raise ValueError("one eps per ZIG set")
        self.sets = [list(s) for s in sets]
        self.eps = [float(e) for e in eps]
        members = [t for s in self.sets for t in s]
        self.device = members[0].device if members else torch.device("cpu")
        self.triton = bool(members) and all(use_triton(t) and t.is_contiguous() for t in members)
        if self.triton:
            self._dev = lambda v, dt: torch.tensor(v, dtype=dt).to(self.device)
            self.x_tbl = self._dev([t.data_ptr() for t in members], torch.int64)
            self.d_tbl = self._dev([rows(t).shape[1] for t in members], torch.int64)
            starts, counts = [], []
            for s in self.sets:
                starts.append(sum(counts))
                counts.append(len(s))
            self.set_start = self._dev(starts, torch.int64)
            self.set_count = self._dev(counts, torch.int64)
            self.set_rows = self._dev([s[0].shape[0] for s in self.sets], torch.int64)
            self.set_eps = self._dev(self.eps, torch.float32)
            self.max_rows = max(s[0].shape[0] for s in self.sets)
            self._ptrs: tuple[int, ...] = ()

    def _table(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        ptrs = tuple(t.data_ptr() for t in tensors)
        return self._dev(list(ptrs), torch.int64)

    def __call__(self, grads: Sequence[Sequence[torch.Tensor]], bufs: Sequence[Sequence[torch.Tensor]] | None, *,
                 mode: str, lr: float, lmbda: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 force_reference: bool = False) -> None:
        """One step of every set in place: *grads* / *bufs* are nested like ``sets`` (bufs: None if momentum 0)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if momentum and bufs is None:
            raise ValueError("momentum > 0 needs momentum buffers")
        if force_reference or not self.triton:
            for i, (params, g) in enumerate(zip(self.sets, grads)):
                step_reference(params, g, bufs[i] if momentum else None, mode=mode, lr=lr, lmbda=lmbda,
                               eps=self.eps[i], momentum=momentum, weight_decay=weight_decay)
            return
        flat_g = [g.contiguous() for s in grads for g in s]
        g_tbl = self._table(flat_g)
        if momentum:
            flat_b = [b for s in bufs for b in s]
            if not all(b.is_contiguous() and b.dtype == torch.float32 for b in flat_b):
                raise ValueError("momentum buffers must be contiguous fp32 tensors")
            b_tbl = self._table(flat_b)
        else:
            b_tbl = self.x_tbl  # never read
        br, bd = _blocks()
        grid = (len(self.sets), triton.cdiv(self.max_rows, br))
        _zig_step_kernel[grid](self.x_tbl, g_tbl, b_tbl, self.d_tbl, self.set_start, self.set_count, self.set_rows,
                               self.set_eps, float(lr), float(lmbda), float(momentum), float(weight_decay),
                               MODE=MODE_CODE[mode], HAS_MOM=bool(momentum), BLOCK_R=br, BLOCK_D=bd)
        # contiguous copies of gradients, if any, are freed here: the caching allocator is stream-ordered


assert abs(DELTA - 1e-6) < 1e-12  # the kernel hard-codes the v1 subgradient's 1e-6


# ---- benchmark cases for ``repro bench oto`` -------------------------------------------------------

def _synthetic_sets(m: int, n: int, k: int, ratio: float, device: torch.device):
    """max(1, n // 512) ZIG sets of m groups, each like a conv + BN layer: a (m, k) filter bank, bias,
    gamma, beta; a fraction 1 - *ratio* of the groups already zero."""
    gen = torch.Generator().manual_seed(0)
    sets, grads = [], []
    for _ in range(max(1, n // 512)):
        params = [torch.randn(m, k, generator=gen), torch.randn(m, generator=gen), torch.ones(m), torch.zeros(m)]
        dead = torch.randperm(m, generator=gen)[: int(round(m * (1 - ratio)))]
        for p in params:
            p[dead] = 0
        sets.append([p.to(device) for p in params])
        grads.append([(0.01 * torch.randn(p.shape, generator=gen)).to(device) for p in params])
    return sets, grads


def kernel_benchmarks() -> list:
    """The cases this package registers with the core's benchmark harness (M groups of K elements per set,
    max(1, N // 512) sets, keep ratio = the fraction of groups not yet zero)."""
    from repro.bench import KernelBenchmark

    def make_fused_vs_unfused(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        sets, grads = _synthetic_sets(m, n, k, ratio, device)
        step = ZigStep(sets, [0.0] * len(sets))
        kw = dict(mode="half_space", lr=1e-3, lmbda=1e-3)
        return (lambda: step(grads, None, force_reference=reference, **kw)), \
               (lambda: step(grads, None, force_reference=True, **kw))

    def make_vs_sgd(m: int, n: int, k: int, ratio: float, device: torch.device, reference: bool):
        sets, grads = _synthetic_sets(m, n, k, ratio, device)
        step = ZigStep(sets, [0.0] * len(sets))
        flat_p = [p for s in sets for p in s]
        flat_g = [g for s in grads for g in s]
        kw = dict(mode="half_space", lr=1e-3, lmbda=1e-3)
        return (lambda: step(grads, None, force_reference=reference, **kw)), \
               (lambda: torch._foreach_add_(flat_p, flat_g, alpha=-1e-3))

    return [
        KernelBenchmark("hspg_fused_step", make_fused_vs_unfused,
                        "fused multi-tensor half-space step (Triton on CUDA; the PyTorch reference on CPU) "
                        "vs the unfused PyTorch reference step (concatenate, norms, trial point, mask, split)",
                        gemm=False),
        KernelBenchmark("hspg_vs_sgd", make_vs_sgd,
                        "the same half-space step vs a plain SGD update of the same tensors (foreach add): "
                        "what the group projection costs on top of SGD", gemm=False),
    ]
