"""The quantizers of the paper, as pure functions of tensors (the PyTorch reference path).

Every quantizer is a uniform quantizer behind a preconditioner T (the paper's framework; the
official code's ``image_classification/preconditioner.py``)::

    y = T(x)                       # scaled so that every row's range is [0, B], B = 2^bits - 1
    q = round(clamp(y + u, 0, B))  # u ~ U[-1/2, 1/2): stochastic rounding (unbiased), u = 0: nearest
    x_hat = T^{-1}(q)

A tensor is seen as a matrix ``x.view(N, -1)``: rows are samples (the first dimension).

* **per tensor** (``per_tensor_range``): one zero point and scale for the whole tensor; for
  weights and gradients (``align_zero=True``, the reference's ``ScalarPreconditioner``) the range
  is widened to contain 0 and zero falls exactly on an integer level; activations
  (``ScalarPreconditionerAct``) use the plain min/max. **PTQ** = stochastic per-tensor.
* **per sample** (``per_row_range``, **PSQ**): one zero point / scale per row (``DiagonalPreconditioner``);
  the weight-gradient path of PSQ/BHQ uses the per-column variant (``left=False`` there).
* **block Householder** (**BHQ**, ``bhq_plan`` + ``householder_apply``): rows sorted by range; each
  large-range row is grouped with a block of small-range rows; within a block the rows are scaled
  (s1 for the large row, s2 for the others) and reflected by the Householder matrix H that maps
  e1 to 1/sqrt(sz) (1, ..., 1), spreading the large row's magnitude over the block; then per-row
  quantization and the inverse diag(1/s) H. The reference builds T as a dense N x N matrix
  (``quantizers/quantizers.cpp``) and multiplies; here H y = y - 2 v (v^T y) per block, in O(N D).

Edge cases where the reference is undefined, and what we do (documented in the README): a
constant row (or tensor) whose value is large enough that value -+ 1e-8 rounds back to it in
float32 has an empty range (the reference: B / 0, NaN output): it is returned exactly;
``per_tensor_range`` with ``align_zero`` when zero would fall below the first level
(``floor(-min * scale) == 0``: the reference divides by zero) keeps the unaligned range; ``bhq_plan``
with N = 1 is the identity (PSQ), with N = 2 one block of both rows (the reference reads out of bounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EPS = 1e-8  # the reference's margin on min/max
SCHEMES = ("ptq", "psq", "bhq")


def num_bins(bits: int) -> int:
    """B = 2^bits - 1: the largest integer level of a *bits*-bit quantizer."""
    return 2 ** int(bits) - 1


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """The (N, D) matrix view of *x*: rows are samples (a 1-D tensor becomes one column)."""
    return x.reshape(x.shape[0], -1) if x.dim() > 0 else x.reshape(1, 1)


def per_tensor_range(x: torch.Tensor, bits: int, align_zero: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero point and scale (scalars, fp32) of the per-tensor quantizer: y = (x - zero) * scale.

    ``align_zero`` (weights, gradients; the reference's ``ScalarPreconditioner``): the range is
    [min(x.min() - eps, 0), max(x.max() + eps, 0)], then its top is moved so that x = 0 maps to
    the integer level floor(-zero * scale). Without it (activations, ``ScalarPreconditionerAct``):
    [x.min() - eps, x.max() + eps].
    """
    bins = num_bins(bits)
    x = x.detach().float()
    if not align_zero:
        mn, mx = x.min() - EPS, x.max() + EPS
        return mn, _scale(mn, mx, bins)
    mn = torch.clamp(x.min() - EPS, max=0.0)
    mx = torch.clamp(x.max() + EPS, min=0.0)
    scale = bins / (mx - mn)
    iqzero = torch.floor(-mn * scale)
    aligned_mx = (iqzero - bins) * mn / iqzero
    aligned = bins / (aligned_mx - mn)
    scale = torch.where(iqzero > 0, aligned, scale)  # floor == 0: the reference divides by zero
    return mn, scale


def _scale(mn: torch.Tensor, mx: torch.Tensor, bins: int) -> torch.Tensor:
    """B / (mx - mn); 1 where the range is empty in float32 (a constant row of magnitude above
    ~0.1, where x -+ eps rounds back to x): then y = 0 and the row comes back exactly as mn = x.
    (The reference divides by zero there and returns NaN.)"""
    span = mx - mn
    ok = span > 0
    return torch.where(ok, bins / torch.where(ok, span, torch.ones_like(span)), torch.ones_like(span))


def per_row_range(x2: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row zero points and scales, each (N, 1): [min_n - eps, max_n + eps] -> [0, B]."""
    x2 = x2.detach().float()
    mn = x2.min(dim=1, keepdim=True).values - EPS
    mx = x2.max(dim=1, keepdim=True).values + EPS
    return mn, _scale(mn, mx, num_bins(bits))


def per_column_range(x2: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column zero points and scales, each (1, D) (the reference's ``DiagonalPreconditioner(left=False)``)."""
    x2 = x2.detach().float()
    mn = x2.min(dim=0, keepdim=True).values - EPS
    mx = x2.max(dim=0, keepdim=True).values + EPS
    return mn, _scale(mn, mx, num_bins(bits))


def round_levels(y: torch.Tensor, bins: int, noise: torch.Tensor | None) -> torch.Tensor:
    """round(clamp(y + noise, 0, B)) in the reference's order (noise None: nearest rounding).

    With noise u ~ U[-1/2, 1/2) this is stochastic rounding: E[q] = y for y in [0, B].
    """
    if noise is not None:
        y = y + noise
    return y.clamp(0.0, float(bins)).round()


def quantize_affine(x: torch.Tensor, zero: torch.Tensor, scale: torch.Tensor, bins: int,
                    noise: torch.Tensor | None) -> torch.Tensor:
    """Dequantized (x - zero) * scale rounded to an integer level in [0, B] (zero/scale broadcast)."""
    return round_levels((x - zero) * scale, bins, noise) / scale + zero


def draw_noise(shape: torch.Size | tuple[int, ...], device: torch.device,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """U[-1/2, 1/2) noise of stochastic rounding (torch's RNG: the global one unless *generator*)."""
    return torch.rand(shape, device=device, generator=generator) - 0.5


# ---- the three gradient quantizers and the forward quantizers -----------------------------------

def quantize_per_tensor(x: torch.Tensor, bits: int, noise: torch.Tensor | None = None,
                        align_zero: bool = True) -> torch.Tensor:
    """Per-tensor quantize/dequantize of *x* (noise None: deterministic; weights, activations, PTQ)."""
    zero, scale = per_tensor_range(x, bits, align_zero)
    return quantize_affine(x.float(), zero, scale, num_bins(bits), noise).to(x.dtype)


def quantize_per_row(x: torch.Tensor, bits: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample (per-row) quantize/dequantize (PSQ)."""
    x2 = as_rows(x).float()
    zero, scale = per_row_range(x2, bits)
    n2 = None if noise is None else noise.reshape(x2.shape)
    return quantize_affine(x2, zero, scale, num_bins(bits), n2).reshape(x.shape).to(x.dtype)


def quantize_per_column(x: torch.Tensor, bits: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-column (per-feature over the batch) quantize/dequantize: the weight-gradient path of PSQ/BHQ."""
    x2 = as_rows(x).float()
    zero, scale = per_column_range(x2, bits)
    n2 = None if noise is None else noise.reshape(x2.shape)
    return quantize_affine(x2, zero, scale, num_bins(bits), n2).reshape(x.shape).to(x.dtype)


# ---- block Householder quantizer ----------------------------------------------------------------

def householder_max(sz: torch.Tensor) -> torch.Tensor:
    """max |H_ij| of the sz x sz Householder reflection mapping e1 to 1/sqrt(sz) (1, ..., 1), per entry of *sz*.

    With a = 1/sqrt(sz): H_00 = H_0j = a, H_jj = 1 - a^2/(1-a), and for sz >= 3 also
    H_jk = -a^2/(1-a) (j != k > 0); 1 for sz = 1.
    """
    szf = sz.double().clamp(min=2)
    a = 1 / torch.sqrt(szf)
    off = a * a / (1 - a)
    out = torch.maximum(a, (1 - off).abs())
    out = torch.where(sz >= 3, torch.maximum(out, off), out)
    return torch.where(sz <= 1, torch.ones_like(out), out)


def householder_dense(sz: int) -> torch.Tensor:
    """The dense sz x sz reflection I - 2 v v^T, v = (t - e1)/||t - e1||, t = 1/sqrt(sz) 1 (tests only)."""
    if sz == 1:
        return torch.ones(1, 1)
    e1 = torch.zeros(sz, dtype=torch.float64)
    e1[0] = 1
    v = torch.full((sz,), 1 / math.sqrt(sz), dtype=torch.float64) - e1
    v = v / v.norm()
    return (torch.eye(sz, dtype=torch.float64) - 2 * torch.outer(v, v)).float()


@dataclass(frozen=True)
class BHQPlan:
    """The block structure of a BHQ transform T = H diag(s) for N rows, in the rows' own order.

    Attributes (each a length-N tensor indexed by the original row):
        block: the row's block id (0 .. n_blocks-1; block b is led by the b-th largest range).
        v: the row's entry of its block's unit Householder vector.
        s: the row's scale (s1 for the block's leading large row, s2 for its small rows).
        n_blocks: number of blocks (the number of "large" rows; 0: identity, no transform).
    """

    block: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor
    n_blocks: int

    @property
    def identity(self) -> bool:
        return self.n_blocks == 0

    def sizes(self) -> torch.Tensor:
        return torch.bincount(self.block, minlength=self.n_blocks)

    def to(self, device: torch.device) -> "BHQPlan":
        return BHQPlan(self.block.to(device), self.v.to(device), self.s.to(device), self.n_blocks)

    def dense(self) -> torch.Tensor:
        """T as a dense N x N matrix (tests and the reference-style benchmark only)."""
        return self.dense_reflection() * self.s[None, :]

    def dense_reflection(self) -> torch.Tensor:
        """The block-diagonal (permuted) reflection H as a dense N x N matrix (tests, benchmark)."""
        n, dev = self.block.numel(), self.block.device
        if self.identity:
            return torch.eye(n, device=dev)
        same = self.block[:, None] == self.block[None, :]
        return torch.eye(n, device=dev) - 2 * torch.where(same, torch.outer(self.v, self.v), 0.0)


def bhq_plan(ranges: torch.Tensor) -> BHQPlan:
    """The block Householder transform for rows whose ranges (max - min + eps) are *ranges*.

    Follows ``get_transform`` of the reference (``quantizers/quantizers.cpp``), vectorised:

    1. Sort the ranges descending: lambda_0 >= ... >= lambda_{N-1}.
    2. Move the smallest rows into the "small" set one by one; stop at the first k (number of
       small rows) where the smallest remaining large row would be allotted more than one small
       row, k * lambda_{N-k-1} / sum_{i < N-k} lambda_i > 1.
    3. Large row i gets round(cumsum) of its share k * lambda_i / sum(large) of the small rows
       (in sorted order): its block is [row i] + the next small rows; size sz_i >= 2.
    4. Block scales: w1 = lambda_i / sqrt(sz), w2 = lambda_2 * max|H| (lambda_2: the block's
       largest small range), s1 = w1^(-1/3), s2 = (w2 / (sz - 1))^(-1/3), (s1, s2) * ||(1/s1, 1/s2)||.
    """
    r = ranges.detach().double().flatten()
    dev = r.device
    n = r.numel()
    if n <= 1:
        return BHQPlan(torch.zeros(n, dtype=torch.long, device=dev), torch.zeros(n, device=dev),
                       torch.ones(n, device=dev), 0)
    vals, rank = torch.sort(r, descending=True, stable=True)
    prefix = torch.cumsum(vals, 0)  # prefix[j] = sum of the j+1 largest
    k = torch.arange(1, n, device=dev)  # candidate numbers of small rows
    large_total = prefix[n - 1 - k]  # sum of the n - k largest
    share_of_smallest_large = k * vals[n - 1 - k] / large_total
    hits = torch.nonzero(share_of_smallest_large > 1).flatten()
    n_small = int(k[hits[0]]) if hits.numel() else n - 1  # n = 2: one block (the reference is undefined)
    n_large = n - n_small
    share = n_small * vals[:n_large] / prefix[n_large - 1]
    nums = torch.floor(torch.cumsum(share, 0) + 0.5).long()  # roundf: half away from zero (positive)
    nums[-1] = n_small  # the reference checks this equality; rounding of a float sum could miss it
    starts = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), nums[:-1]])
    sz = nums - starts + 1
    if (sz < 2).any():  # an allotment of zero small rows: cannot happen past the stopping rule
        raise ValueError(f"bhq_plan: a block of size < 2 (sizes {sz.tolist()})")
    # per sorted position: block id and whether it leads the block
    block_sorted = torch.empty(n, dtype=torch.long, device=dev)
    block_sorted[:n_large] = torch.arange(n_large, device=dev)
    block_sorted[n_large:] = torch.repeat_interleave(torch.arange(n_large, device=dev), sz - 1)
    lead = torch.zeros(n, dtype=torch.bool, device=dev)
    lead[:n_large] = True
    szf = sz.double()
    a = 1 / torch.sqrt(szf)
    qmax = householder_max(sz)
    lam1 = vals[:n_large]
    lam2 = vals[n_large + starts]
    w1, w2 = lam1 / torch.sqrt(szf), lam2 * qmax
    s1, s2 = w1 ** (-1 / 3), (w2 / (szf - 1)) ** (-1 / 3)
    norm = torch.sqrt(1 / s1 ** 2 + 1 / s2 ** 2)
    s1, s2 = s1 * norm, s2 * norm
    vnorm = torch.sqrt(2 - 2 * a)  # ||1/sqrt(sz) 1 - e1||
    b = block_sorted
    v_sorted = torch.where(lead, (a[b] - 1) / vnorm[b], a[b] / vnorm[b])
    s_sorted = torch.where(lead, s1[b], s2[b])
    block = torch.empty_like(b)
    v = torch.empty(n, dtype=torch.float64, device=dev)
    s = torch.empty(n, dtype=torch.float64, device=dev)
    block[rank], v[rank], s[rank] = b, v_sorted, s_sorted
    return BHQPlan(block, v.float(), s.float(), n_large)


def householder_apply(x2: torch.Tensor, plan: BHQPlan, inverse: bool = False) -> torch.Tensor:
    """T x = H (s * x) (or T^{-1} x = (H x) / s) for the (N, D) matrix *x2*, block by block.

    H y = y - 2 v (v^T y) within each block: one segmented reduction (``index_add``) and one
    rank-1 update per block, O(N D); no N x N matrix is formed.
    """
    if plan.identity:
        return x2
    v = plan.v.to(x2.device, x2.dtype)[:, None]
    s = plan.s.to(x2.device, x2.dtype)[:, None]
    block = plan.block.to(x2.device)
    y = x2 if inverse else x2 * s
    dots = torch.zeros(plan.n_blocks, x2.shape[1], device=x2.device, dtype=x2.dtype).index_add_(0, block, v * y)
    hy = y - 2 * v * dots[block]
    return hy / s if inverse else hy


def row_ranges(x2: torch.Tensor) -> torch.Tensor:
    """max_n - min_n + eps per row (the reference's ``mvec``)."""
    return x2.max(dim=1).values - x2.min(dim=1).values + EPS


def quantize_bhq(x: torch.Tensor, bits: int, noise: torch.Tensor | None = None,
                 plan: BHQPlan | None = None) -> torch.Tensor:
    """Block Householder quantize/dequantize: T^{-1} Q_rows(T x) with T from ``bhq_plan``."""
    x2 = as_rows(x).float()
    plan = plan if plan is not None else bhq_plan(row_ranges(x2))
    tx = householder_apply(x2, plan)
    n2 = None if noise is None else noise.reshape(x2.shape)
    zero, scale = per_row_range(tx, bits)
    q = quantize_affine(tx, zero, scale, num_bins(bits), n2)
    return householder_apply(q, plan, inverse=True).reshape(x.shape).to(x.dtype)


def quantize_gradient(g: torch.Tensor, scheme: str, bits: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The activation-gradient quantizer *scheme* (ptq | psq | bhq) at *bits* (reference path)."""
    if scheme == "ptq":
        return quantize_per_tensor(g, bits, noise, align_zero=True)
    if scheme == "psq":
        return quantize_per_row(g, bits, noise)
    if scheme == "bhq":
        return quantize_bhq(g, bits, noise)
    raise ValueError(f"unknown gradient quantizer {scheme!r}; choose one of {', '.join(SCHEMES)}")
