"""N:M masks: the pure math, in PyTorch (the reference every other path is tested against).

An N:M mask keeps, in every group of M consecutive elements along one dimension of a weight
matrix, the N of largest magnitude (ties: the lower index wins, so a mask is deterministic).

Orientation. A layer's weight is viewed as the matrix ``W2`` (O x K) of its GEMMs: rows are output
features / channels, columns the reduction dimension of the forward product Y = X W2ᵀ
(``in_features`` for a Linear; ``kh * kw * C_in`` in NHWC order for a Conv2d, as the SR-STE code
``Sparse_NHWC`` groups it: consecutive input channels of one kernel tap, when C_in is a multiple
of M).

* ``dim=1`` ("forward" mask): groups of M consecutive columns of a row — the reduction dimension
  of the forward GEMM, so Y = X (W2 ⊙ M_f)ᵀ is an N:M-sparse GEMM.
* ``dim=0`` ("backward" mask, BDWP): groups of M consecutive rows of a column — the reduction
  dimension of the activation-gradient GEMM dX = dY (W2 ⊙ M_b), so that product is N:M sparse too.

The SR-STE gradient term (Zhou et al., ICLR 2021, eqn 4; ``Sparse.backward`` of the official
code): dL/dW = dL/dW̃ + λ_w (1 − M) ⊙ W, with W̃ = W ⊙ M.
"""

from __future__ import annotations

import torch

from repro.errors import ReproError


def check_pattern(n: int, m: int) -> None:
    """N:M must satisfy 1 <= N <= M."""
    if not (isinstance(n, int) and isinstance(m, int)) or not 1 <= n <= m:
        raise ReproError(f"N:M pattern needs integers 1 <= n <= m, got n={n!r}, m={m!r}")


def nm_mask(w2: torch.Tensor, n: int, m: int, dim: int = 1) -> torch.Tensor:
    """Boolean mask (same shape as the 2-D *w2*) keeping the top-*n* |w| of every group of *m*
    consecutive elements along *dim* (1: along each row; 0: along each column).

    Ties keep the lower index. ``n == m`` keeps everything. Every element's wins in its group are
    counted with two vectorised comparisons per pair of positions (over all groups at once), which
    is several times faster on a CPU than sorting or ``topk`` over groups of 4-16.
    Raises ``ReproError`` when the size along *dim* is not a multiple of *m*.
    """
    check_pattern(n, m)
    if w2.dim() != 2 or dim not in (0, 1):
        raise ReproError(f"nm_mask needs a 2-D tensor and dim 0 or 1, got shape {tuple(w2.shape)}, dim {dim}")
    if w2.shape[dim] % m:
        raise ReproError(f"nm_mask: size {w2.shape[dim]} along dim {dim} is not a multiple of M={m}")
    if n == m:
        return torch.ones_like(w2, dtype=torch.bool)
    a = w2.detach().abs()
    # the group axis in the middle: (O K/M, M, 1) for row groups, (O/M, M, K) for column groups
    a3 = a.reshape(-1, m, 1) if dim == 1 else a.reshape(-1, m, a.shape[1])
    slabs = [a3[:, i] for i in range(m)]
    # wins_i = #{j : |w_i| > |w_j| or (|w_i| = |w_j| and i < j)}; kept iff wins_i >= M - N. Bool
    # comparisons are added as uint8 views (no conversion kernel): two comparisons per pair i < j.
    wins = torch.zeros((m,) + slabs[0].shape, dtype=torch.uint8, device=w2.device)
    count = [wins[i] for i in range(m)]
    for i in range(m):
        for j in range(i + 1, m):
            count[i] += torch.ge(slabs[i], slabs[j]).view(torch.uint8)  # ties: the lower index wins
            count[j] += torch.gt(slabs[j], slabs[i]).view(torch.uint8)
    return (wins >= m - n).movedim(0, 1).reshape(w2.shape)


def group_counts(mask: torch.Tensor, m: int, dim: int = 1) -> torch.Tensor:
    """Number of kept elements in every group of *m* along *dim* of a 2-D mask (tests, checks)."""
    t = mask if dim == 1 else mask.t()
    return t.reshape(t.shape[0], -1, m).sum(-1)


# ---- the GEMM view of a layer's weight --------------------------------------------------------

def weight_2d(w: torch.Tensor) -> torch.Tensor:
    """The O x K GEMM view of a Linear (O x K) or Conv2d (O x C x kh x kw -> O x (kh kw C), NHWC)."""
    if w.dim() == 2:
        return w
    if w.dim() == 4:
        return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)
    raise ReproError(f"weight_2d: expected a 2-D (Linear) or 4-D (Conv2d) weight, got shape {tuple(w.shape)}")


def from_2d(w2: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`weight_2d` for a weight of *shape*."""
    if len(shape) == 2:
        return w2.reshape(shape)
    o, c, kh, kw = shape
    return w2.reshape(o, kh, kw, c).permute(0, 3, 1, 2)


def layer_mask(w: torch.Tensor, n: int, m: int, orientation: str = "forward") -> torch.Tensor:
    """The N:M mask of a Linear or Conv2d weight, in the weight's own shape.

    ``orientation``: "forward" (groups along the reduction dimension K of the forward GEMM) or
    "backward" (groups along the output dimension O: the reduction dimension of the
    activation-gradient GEMM).
    """
    if orientation not in ("forward", "backward"):
        raise ReproError(f"orientation must be 'forward' or 'backward', got {orientation!r}")
    w2 = weight_2d(w)
    return from_2d(nm_mask(w2, n, m, dim=1 if orientation == "forward" else 0), w.shape)


def can_mask(w: torch.Tensor, m: int, orientation: str) -> bool:
    """Whether the GEMM view of *w* splits into whole groups of *m* along the orientation's dimension."""
    w2_shape = (w.shape[0], w[0].numel())
    return w2_shape[1 if orientation == "forward" else 0] % m == 0


def srste_gradient(grad_masked: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, decay: float) -> torch.Tensor:
    """SR-STE: dL/dW = dL/dW̃ + λ_w (1 − M) ⊙ W (the straight-through gradient plus the decay of
    the pruned weights). ``decay = 0`` is plain STE. *mask*: 0/1 float (or boolean) keep mask.
    (One fused ``addcmul`` on float masks: CPU kernels on boolean masks are several times slower.)"""
    if decay == 0:
        return grad_masked
    keep = mask.to(w.dtype) if mask.dtype == torch.bool else mask
    return torch.addcmul(grad_masked, w, 1 - keep, value=decay)


# ---- packed values + in-group indices (what the Triton kernel writes) ---------------------------

def pack(w2: torch.Tensor, mask: torch.Tensor, n: int, m: int, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress the kept elements of *w2* (mask from :func:`nm_mask` along *dim*) into ``values``
    and ``indices`` (int8 position 0..m-1 inside the group), *n* per group, in position order.

    dim=1: both are O x (K n / m); dim=0: both are (O n / m) x K.
    """
    t, mk = (w2, mask) if dim == 1 else (w2.t(), mask.t())
    rows = t.shape[0]
    g = t.reshape(rows, -1, m)
    km = mk.reshape(rows, -1, m)
    if bool((km.sum(-1) != n).any()):
        raise ReproError(f"pack: every group must keep exactly n={n} elements")
    pos = torch.arange(m, device=w2.device).expand_as(km)
    idx = pos[km].reshape(rows, -1, n)  # boolean indexing walks in memory order: position order per group
    vals = g[km].reshape(rows, -1, n)
    vals, idx = vals.reshape(rows, -1), idx.reshape(rows, -1).to(torch.int8)
    return (vals, idx) if dim == 1 else (vals.t().contiguous(), idx.t().contiguous())


def unpack(values: torch.Tensor, indices: torch.Tensor, n: int, m: int, dim: int = 1) -> torch.Tensor:
    """Inverse of :func:`pack`: the dense matrix with zeros at the pruned positions."""
    v, i = (values, indices) if dim == 1 else (values.t(), indices.t())
    rows = v.shape[0]
    v3, i3 = v.reshape(rows, -1, n), i.reshape(rows, -1, n).long()
    out = torch.zeros(rows, v3.shape[1], m, dtype=values.dtype, device=values.device)
    out.scatter_(-1, i3, v3)
    out = out.reshape(rows, -1)
    return out if dim == 1 else out.t().contiguous()


def nm_mask_pack_reference(w2: torch.Tensor, n: int, m: int, forward: bool = True, backward: bool = True
                           ) -> dict[str, torch.Tensor]:
    """The reference of the fused Triton kernel: both masks (int8) and both packed forms of *w2*.

    Keys: ``mask_f``, ``values_f``, ``indices_f`` (groups along rows, dim=1) and ``mask_b``,
    ``values_b``, ``indices_b`` (groups along columns, dim=0), for the orientations requested.
    """
    out: dict[str, torch.Tensor] = {}
    for on, dim, tag in ((forward, 1, "f"), (backward, 0, "b")):
        if not on:
            continue
        mk = nm_mask(w2, n, m, dim)
        vals, idx = pack(w2, mk, n, m, dim)
        out[f"mask_{tag}"], out[f"values_{tag}"], out[f"indices_{tag}"] = mk.to(torch.int8), vals, idx
    return out


def compressible_to_2of4(n: int, m: int) -> bool:
    """Whether every N:M-sparse row is also 2:4 sparse (so 2:4 sparse tensor cores can run it):
    each aligned block of 4 then holds at most 2 non-zeros. True for 2:4, 1:4, 1:2, 2:8, 2:16, ...
    (not for 4:8: a group of 8 may put 3 or 4 of its kept weights in one block of 4)."""
    return (m % 4 == 0 and n <= 2) or (m == 2 and n <= 1)
