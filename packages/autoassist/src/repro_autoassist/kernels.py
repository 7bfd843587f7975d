"""Fused selection: per-sample loss + Assistant score + Bernoulli acceptance + stream compaction.

For a batch of n instances with Boss logits ``logits`` (n × C), flattened inputs ``xf`` (n × D),
labels ``y``, Assistant parameters ``w`` (D), ``u`` (C), floor ``b`` and uniform coins (n):

    loss_i   = logsumexp(logits_i) − logits_i[y_i]          (cross entropy, the Boss's feedback)
    prob_i   = b + (1 − b)·σ(xf_i · w + u[y_i])             (acceptance probability)
    accept_i = coin_i < prob_i
    idx      = indices i with accept_i, in increasing order, packed to the front of an n-vector
               (the rest −1); count = number accepted, a 0-d device tensor

``fused_select_triton`` does this with two Triton kernels and one device ``cumsum`` of per-block
counts (no host round trip); ``fused_select_reference`` is the PyTorch reference. The coins are
inputs so both paths make identical decisions. Triton is imported lazily (module ``_triton_kernels``);
``TRITON_INTERPRET=1`` set before triton's first import in the process selects Triton's CPU
interpreter (fp32 only there). No autotuning (fixed block sizes), in particular not in the
interpreter path. The training pipeline's Boss calls ``select`` (the switch ``AutoAssistConfig.kernel``):
on CUDA the fused kernel (without logits: before the Boss's forward there are none, so the loss
part is compiled out), on CPU or with ``kernel="reference"`` ``select_reference``. Either way the
accepted count is read on the host once per candidate batch, to slice it (the method needs it).

Both paths decide per candidate batch only; how accepted instances become optimizer steps
(``AutoAssistConfig.batching``: "fill" buffers them into batches of exactly B, "thin" steps on
each thinned candidate batch) is applied downstream, in ``methods.InstanceShrinking``, to the
accepted indices in the order both paths return them (increasing), so it is the same for either.
``coin < b + (1 − b)·p`` makes the same decision as the reference sampler's two-stage test
(``coin < b``, else ``(coin − b)/(1 − b) < p``) up to rounding at the boundary; the tests check
both paths against the reference's decisions on a golden stream (tests/golden_reference.json).
"""

from __future__ import annotations

from typing import Any

import torch

from repro.kernels import interpreting, triton_available  # noqa: F401 (re-exported)


KERNELS = ("auto", "triton", "reference")


def triton_path(kernel: str, t: torch.Tensor) -> bool:
    """Whether the Boss's selection of a batch on *t*'s device runs the fused kernel under *kernel*."""
    return kernel != "reference" and (t.is_cuda or interpreting()) and triton_available()


def check_kernel(kernel: str, device: torch.device) -> None:
    """Refuse ``kernel="triton"`` where the Triton kernel cannot run (a clear error, before training)."""
    from repro.errors import ReproError

    if kernel == "triton" and not (triton_available() and (device.type == "cuda" or interpreting())):
        raise ReproError(f"autoassist hparam kernel='triton' needs triton and a CUDA device (or TRITON_INTERPRET=1); "
                         f"device is {device.type!r}, triton {'installed' if triton_available() else 'missing'}; "
                         f"choices: {', '.join(KERNELS)}")


def select(xf: torch.Tensor, y: torch.Tensor, w: torch.Tensor, u: torch.Tensor, base_prob: float,
           coins: torch.Tensor, kernel: str = "auto") -> torch.Tensor:
    """The accepted indices (increasing) of a candidate batch: the fused Triton selection kernel on
    the Triton path (``triton_path``), ``select_reference`` otherwise; the same decisions (fp32)."""
    if not triton_path(kernel, xf) or len(y) == 0:
        return select_reference(xf, y, w, u, base_prob, coins)[0]
    out = fused_select_triton(None, xf, y, w, u, base_prob, coins)
    return out["idx"][: int(out["count"])]  # one host read per batch: the batch is sliced to it


def select_reference(xf: torch.Tensor, y: torch.Tensor, w: torch.Tensor, u: torch.Tensor, base_prob: float,
                     coins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accepted indices (increasing) and the acceptance probabilities, PyTorch only."""
    prob = base_prob + (1.0 - base_prob) * torch.sigmoid(xf @ w + u[y])
    return (coins < prob).nonzero().squeeze(1), prob


def fused_select_reference(logits: torch.Tensor, xf: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                           u: torch.Tensor, base_prob: float, coins: torch.Tensor) -> dict[str, torch.Tensor]:
    n = len(y)
    losses = torch.logsumexp(logits.float(), dim=1) - logits.float().gather(1, y.view(-1, 1)).squeeze(1)
    accepted, prob = select_reference(xf.float(), y, w.float(), u.float(), base_prob, coins)
    idx = torch.full((n,), -1, dtype=torch.int64, device=y.device)
    idx[: len(accepted)] = accepted
    return {"losses": losses, "prob": prob, "accept": coins < prob, "idx": idx,
            "count": torch.tensor(len(accepted), device=y.device)}


def _kernels() -> tuple[Any, Any]:
    """The two kernels. ``triton.jit`` (and triton.language's own helpers) choose the interpreter when
    triton is first imported, so ``TRITON_INTERPRET=1`` must be set before any import of triton in
    the process (the tests run the interpreter check in a subprocess for that reason)."""
    from repro_autoassist import _triton_kernels as mod

    return mod.score_kernel, mod.compact_kernel


def fused_select_triton(logits: torch.Tensor | None, xf: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                        u: torch.Tensor, base_prob: float, coins: torch.Tensor,
                        block_m: int = 64, block_d: int = 64) -> dict[str, torch.Tensor]:
    """The fused Triton path; same outputs as ``fused_select_reference`` (fp32). *logits* None:
    selection only (``losses`` is then left unset, uninitialised memory)."""
    import triton

    score_kernel, compact_kernel = _kernels()
    n, D = xf.shape
    dev = y.device
    has_logits = logits is not None
    logits = logits.float().contiguous() if has_logits else torch.empty((n, 1), dtype=torch.float32, device=dev)
    C = logits.shape[1]
    xf = xf.float().contiguous()
    w, u, coins = w.float().contiguous(), u.float().contiguous(), coins.float().contiguous()
    y = y.contiguous()
    nblocks = triton.cdiv(n, block_m)
    losses = torch.empty(n, dtype=torch.float32, device=dev)
    prob = torch.empty(n, dtype=torch.float32, device=dev)
    accept = torch.empty(n, dtype=torch.int32, device=dev)
    counts = torch.empty(nblocks, dtype=torch.int32, device=dev)
    idx = torch.full((n,), -1, dtype=torch.int64, device=dev)
    score_kernel[(nblocks,)](logits, xf, y, w, u, coins, losses, prob, accept, counts, n, D, C, float(base_prob),
                             BLOCK_M=block_m, BLOCK_D=block_d, BLOCK_C=max(16, triton.next_power_of_2(C)),
                             HAS_LOGITS=has_logits)
    inclusive = torch.cumsum(counts, 0)
    offs = (inclusive - counts).to(torch.int32)
    compact_kernel[(nblocks,)](accept, offs, idx, n, BLOCK_M=block_m)
    return {"losses": losses, "prob": prob, "accept": accept.bool(), "idx": idx, "count": inclusive[-1]}
