"""The 2:4 semi-structured GPU path: detection, compression and the sparse GEMMs.

PyTorch exposes NVIDIA's 2:4 sparse tensor cores through ``torch.sparse.to_sparse_semi_structured``
with two backends: cuSPARSELt (``SparseSemiStructuredTensorCUSPARSELT``, the default; SM90 support
from cuSPARSELt 0.6) and CUTLASS (``SparseSemiStructuredTensorCUTLASS``; enabled for SM8x only —
pytorch#132928 / #132009 report it failing on H100). Hopper support is uneven (pytorch#153825:
slower than dense on H100; torchao#1617: wrong results), so nothing is assumed: :func:`status`
*probes* each backend on a small bf16 problem, checks the result against the dense product, and
reports which one works, or why none does. Every caller falls back to the masked dense path and
says so (``semi_structured_used = 0`` in a trial's summary; the benchmark prints the reason).

Hardware sparsity is 2:4 only. An N:M pattern runs on it when every aligned block of 4 holds at
most 2 non-zeros (``masks.compressible_to_2of4``: 2:4, 1:4, 2:8, ...), and then at 2:4 speed:
2:8 brings no extra speed on a GPU.

BDWP needs two independent compressions per step: W ⊙ M_f for the forward GEMM (2:4 along K) and
(W ⊙ M_b)ᵀ for the activation-gradient GEMM (2:4 along O). Nothing here is checked on a GPU by
the CPU test-suite (``@pytest.mark.gpu`` tests cover it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DTYPE = torch.bfloat16  # the sparse GEMMs run in bf16 (2:4 tensor cores take fp16 / bf16 / int8 / fp8)


@dataclass(frozen=True)
class Status:
    available: bool
    backend: str  # "cusparselt" | "cutlass" | ""
    reason: str  # why not (or what was checked)
    device: str = ""

    def describe(self) -> str:
        if self.available:
            return f"2:4 semi-structured path: {self.backend} on {self.device} ({self.reason})"
        return f"2:4 semi-structured path not available: {self.reason}"


def _classes() -> dict[str, type]:
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT, SparseSemiStructuredTensorCUTLASS

    return {"cusparselt": SparseSemiStructuredTensorCUSPARSELT, "cutlass": SparseSemiStructuredTensorCUTLASS}


def _probe(cls: type, device: torch.device) -> str | None:
    """None if *cls* compresses and multiplies a 2:4 bf16 matrix correctly on *device*, else why not."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(128, 128, generator=gen)
    keep = torch.zeros(128, 32, 4, dtype=torch.bool)
    keep[..., :2] = True  # positions 0, 1 of every block of 4
    w = (w * keep.reshape(128, 128)).to(device, DTYPE)
    x = torch.randn(64, 128, generator=gen).to(device, DTYPE)
    try:
        ws = cls.from_dense(w)
        got = F.linear(x, ws).float()
        torch.cuda.synchronize(device)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here", with the message
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    want = (x.float() @ w.float().t())
    err = (got - want).abs().max().item()
    if not err <= 0.05 * want.abs().max().item():
        return f"wrong result (max error {err:.3g} against the dense product)"
    return None


@functools.cache
def status(device: str = "cuda") -> Status:
    """Which 2:4 backend works on *device* (probed once per process)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return Status(False, "", "no CUDA device (CPU run: the masked dense reference path is used)")
    try:
        classes = _classes()
    except ImportError as exc:
        return Status(False, "", f"this torch has no semi-structured sparse tensors ({exc})")
    name = torch.cuda.get_device_name(dev)
    cap = torch.cuda.get_device_capability(dev)
    if cap < (8, 0):
        return Status(False, "", f"{name} (sm_{cap[0]}{cap[1]}) has no sparse tensor cores (needs sm_80+)", name)
    why = {}
    for backend, cls in classes.items():
        problem = _probe(cls, dev)
        if problem is None:
            return Status(True, backend, f"probe on sm_{cap[0]}{cap[1]} matched the dense product", name)
        why[backend] = problem
    return Status(False, "", f"{name} (sm_{cap[0]}{cap[1]}): " + "; ".join(f"{k}: {v}" for k, v in why.items()), name)


def compress(w2: torch.Tensor, backend: str) -> torch.Tensor:
    """A 2:4-sparse 2-D tensor as a ``SparseSemiStructuredTensor`` of *backend* (bf16, contiguous)."""
    return _classes()[backend].from_dense(w2.to(DTYPE).contiguous())


def shape_ok(rows: int, cols: int, backend: str) -> bool:
    """Whether a sparse operand of this shape meets *backend*'s size constraints (multiples of its minimum)."""
    try:
        c = _classes()[backend]._DTYPE_SHAPE_CONSTRAINTS[DTYPE]
    except (ImportError, KeyError):
        return False
    return rows >= c.sparse_min_rows and rows % c.sparse_min_rows == 0 and \
        cols >= c.sparse_min_cols and cols % c.sparse_min_cols == 0


def sparse_linear(x2: torch.Tensor, w_sparse: torch.Tensor) -> torch.Tensor:
    """x2 (R x K, bf16) times the compressed (O x K) operand, transposed: R x O (= x2 Wᵀ)."""
    return F.linear(x2, w_sparse)
