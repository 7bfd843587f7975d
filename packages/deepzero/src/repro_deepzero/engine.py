"""Batched perturbed forward passes: the zeroth-order engine behind CGE, RGE and ZO-GraSP.

A network is described as a flat list of operations (:class:`Op`); every parametrised layer
(linear, conv, batch norm) is an op of its own, so a forward pass can restart at any layer.
Activations carry a leading *perturbation* axis: shape ``(P, B, ...)`` holds the batch of B
samples under P different parameter vectors, all evaluated by one batched computation (one
GEMM with stacked weights, a grouped convolution, per-group batch statistics) — never a Python
loop over coordinates.

How the P perturbed forwards of one parameter tensor are computed (``mode``):

* ``"naive"``: every perturbed query is a full forward pass from the network input with the
  perturbed weights (stacked per query): the P queries of a batch recompute the unperturbed
  layers before the perturbed one P times.
* ``"reuse"`` (the paper's feature reuse): a perturbation of layer l restarts the forward pass
  from the cached input of layer l (one unperturbed forward per step fills the cache). The
  estimates are bit-identical to ``"naive"``: layer l and everything after it run the same
  code on the same inputs, and the cached input equals what the naive path recomputes (the
  rows of a CPU GEMM / convolution do not depend on how many other rows share the call — the
  tests check the equality itself). In both, layer l evaluates its P perturbed weight copies
  on the one shared input as a single GEMM / convolution with P x C_out stacked filters.
* ``"rank_one"`` (ours): as ``"reuse"``, but the perturbed layer's output is not recomputed at
  all: a single-coordinate perturbation μ e_i of a weight changes the layer output by a
  rank-one, structured delta (linear W[j, i]: μ·x[:, i] in output unit j; conv W[o, c, u, v]:
  μ times input channel c shifted by (u, v) in output channel o; batch-norm scale γ_c: μ·x̂_c),
  so ``kernels.structured_delta`` writes cached output + delta (a Triton kernel on GPU) with no
  GEMM. The estimates agree with ``"naive"`` to floating-point rounding (not bit-identical:
  z + μ·x rounds differently from (W + μE)x).

Batch norm always uses the statistics of the batch (training mode, as the official code's ZO
forwards do), per perturbation group; the engine never touches running statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError

MODES = ("naive", "reuse", "rank_one")
PARAM_KINDS = ("linear", "conv", "bn")


@dataclass(frozen=True)
class Op:
    """One operation: ``kind``, the names of its parameters (weight first, then bias) and its settings."""

    kind: str
    params: tuple[str, ...] = ()
    cfg: Mapping[str, Any] = field(default_factory=dict)


State = tuple[torch.Tensor, "torch.Tensor | None"]  # (main activations, saved skip input or None)


# ---- model -> ops -------------------------------------------------------------------------------

def _sequential_ops(seq: nn.Sequential, prefix: str = "") -> list[Op]:
    ops: list[Op] = []
    for name, m in seq.named_children():
        full = f"{prefix}{name}"
        if isinstance(m, nn.Sequential):
            ops += _sequential_ops(m, full + ".")
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1:
                raise ReproError(f"zo engine: Flatten({m.start_dim}) at {full!r}: only start_dim=1 is supported")
            ops.append(Op("flatten"))
        elif isinstance(m, nn.Linear):
            ops.append(Op("linear", (f"{full}.weight",) + ((f"{full}.bias",) if m.bias is not None else ())))
        elif isinstance(m, nn.Conv2d):
            s, p = m.stride, m.padding
            if (m.groups != 1 or m.dilation != (1, 1) or isinstance(p, str) or s[0] != s[1] or p[0] != p[1]
                    or m.kernel_size[0] != m.kernel_size[1] or m.padding_mode != "zeros"):
                raise ReproError(f"zo engine: conv {full!r} must be square, zero-padded, ungrouped, undilated")
            ops.append(Op("conv", (f"{full}.weight",) + ((f"{full}.bias",) if m.bias is not None else ()),
                          {"stride": s[0], "padding": p[0]}))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not m.affine:
                raise ReproError(f"zo engine: batch norm {full!r} must be affine")
            ops.append(Op("bn", (f"{full}.weight", f"{full}.bias"), {"eps": m.eps}))
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid)):
            ops.append(Op({nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}[type(m)]))
        elif isinstance(m, nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            stride = m.stride if isinstance(m.stride, int) else m.stride[0]
            if stride != k or m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)):
                raise ReproError(f"zo engine: max-pool {full!r} must have stride = kernel and no padding")
            ops.append(Op("maxpool", (), {"k": k}))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if m.output_size not in (1, (1, 1)):
                raise ReproError(f"zo engine: adaptive pool {full!r} must pool to 1x1")
            ops.append(Op("gap", (), {"keepdim": True}))
        elif isinstance(m, nn.Identity) or (isinstance(m, nn.Dropout) and m.p == 0):
            continue
        else:
            raise ReproError(f"zo engine: module {full!r} ({type(m).__name__}) is not supported")
    return ops


def model_ops(model: nn.Module) -> list[Op]:
    """The engine's description of *model*: its ``zo_ops()`` or, for an ``nn.Sequential`` of
    supported layers (the core's ``mlp`` and ``small_cnn``), one op per layer."""
    if hasattr(model, "zo_ops"):
        return list(model.zo_ops())
    if isinstance(model, nn.Sequential):
        return _sequential_ops(model)
    raise ReproError(f"zo engine: model {type(model).__name__} is neither an nn.Sequential nor has zo_ops()")


# ---- batched operations on (P, B, ...) activations ----------------------------------------------

def _bcast(v: torch.Tensor, batched: bool, ndim: int) -> torch.Tensor:
    """A per-channel vector (C,) or per-query (P, C) shaped to broadcast over (P, B, C, ...)."""
    tail = (1,) * (ndim - 3)
    return v.reshape(v.shape[0], 1, v.shape[1], *tail) if batched else v.reshape(1, 1, v.shape[0], *tail)


def batch_norm_train(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x̂ with the statistics of each perturbation group's batch (dims B and spatial)."""
    dims = (1,) + tuple(range(3, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def apply_op(op: Op, state: State, params: Mapping[str, torch.Tensor],
             batched: Mapping[str, torch.Tensor]) -> State:
    """Run one op on *state*; a parameter named in *batched* has one value per query, shape (P, ...)."""
    x, skip = state
    k = op.kind
    if k in PARAM_KINDS:
        wname = op.params[0]
        bname = op.params[1] if len(op.params) > 1 else None
        w, wb = params[wname], batched.get(wname)
        b = params[bname] if bname else None
        bb = batched.get(bname) if bname else None
        p, n = x.shape[0], x.shape[1]
        if k == "linear":
            if wb is None:
                y = F.linear(x.reshape(p * n, x.shape[2]), w, b if bb is None else None).reshape(p, n, -1)
            elif p == 1:  # one input shared by all queries: a single GEMM against the stacked weights
                q, o = wb.shape[0], wb.shape[1]
                y = F.linear(x[0], wb.reshape(q * o, -1)).reshape(n, q, o).transpose(0, 1)
                if bb is None and b is not None:
                    y = y + b
            else:
                y = torch.bmm(x, wb.transpose(1, 2))
                if bb is None and b is not None:
                    y = y + b
            if bb is not None:
                y = y + bb[:, None, :]
        elif k == "conv":
            s, pad = op.cfg["stride"], op.cfg["padding"]
            if wb is None:
                y = F.conv2d(x.reshape(p * n, *x.shape[2:]), w, b if bb is None else None, s, pad)
                y = y.reshape(p, n, *y.shape[1:])
            elif p == 1:  # one input shared by all queries: one convolution with the stacked filters
                q, co = wb.shape[0], wb.shape[1]
                y = F.conv2d(x[0], wb.reshape(q * co, *wb.shape[2:]), None, s, pad)
                y = y.reshape(n, q, co, *y.shape[2:]).transpose(0, 1)
                if bb is None and b is not None:
                    y = y + _bcast(b, False, y.dim())
            else:  # P inputs and P stacked weights = one grouped convolution
                c, h, wd = x.shape[2:]
                xg = x.transpose(0, 1).reshape(n, p * c, h, wd)
                y = F.conv2d(xg, wb.reshape(p * wb.shape[1], *wb.shape[2:]), None, s, pad, groups=p)
                y = y.reshape(n, p, wb.shape[1], *y.shape[2:]).transpose(0, 1)
                if bb is None and b is not None:
                    y = y + _bcast(b, False, y.dim())
            if bb is not None:
                y = y + _bcast(bb, True, y.dim())
        else:  # batch norm, training-mode statistics
            xhat = batch_norm_train(x, op.cfg["eps"])
            scale = _bcast(wb, True, x.dim()) if wb is not None else _bcast(w, False, x.dim())
            shift = _bcast(bb, True, x.dim()) if bb is not None else _bcast(b, False, x.dim())
            y = xhat * scale + shift
        return y, skip
    if k == "relu":
        return torch.relu(x), skip
    if k == "tanh":
        return torch.tanh(x), skip
    if k == "sigmoid":
        return torch.sigmoid(x), skip
    if k == "maxpool":
        p, n = x.shape[:2]
        y = F.max_pool2d(x.reshape(p * n, *x.shape[2:]), op.cfg["k"])
        return y.reshape(p, n, *y.shape[1:]), skip
    if k == "gap":
        return x.mean(dim=(3, 4), keepdim=bool(op.cfg.get("keepdim", False))), skip
    if k == "flatten":
        return x.reshape(x.shape[0], x.shape[1], -1), skip
    if k == "save_skip":
        return x, x
    if k == "add_skip":
        from repro_deepzero.models import option_a_shortcut

        assert skip is not None, "add_skip without save_skip"
        short = option_a_shortcut(skip, op.cfg["planes"]) if op.cfg["downsample"] else skip
        return x + short, None
    raise ReproError(f"zo engine: unknown op kind {k!r}")


# ---- the program: cached base forward, perturbed forwards -----------------------------------------

@dataclass
class Cache:
    """The unperturbed forward of one batch: the state entering every op, its output, the logits."""

    inputs: list[State]
    outputs: list[torch.Tensor]
    logits: torch.Tensor  # (1, B, C)


LossRows = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_rows(name: str) -> LossRows:
    """Per-query mean loss: logits (P, B, C) and targets (B, ...) -> (P,)."""
    def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # log-sum-exp minus the target logit: the same value as F.cross_entropy, ~4x faster on
        # (P*B, C) rows on a CPU
        p, n, _ = logits.shape
        picked = logits.gather(2, y.reshape(1, n, 1).expand(p, n, 1)).squeeze(2)
        return (torch.logsumexp(logits, 2) - picked).mean(1)

    def mse(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = logits.shape[0]
        return ((logits - y.reshape(1, *logits.shape[1:])) ** 2).reshape(p, -1).mean(1)

    table = {"cross_entropy": cross_entropy, "mse": mse}
    if name not in table:
        raise ReproError(f"zo engine: loss {name!r} is not supported (choose from {sorted(table)})")
    return table[name]


class Program:
    """A model as engine ops, with its live parameters (read, never written)."""

    def __init__(self, model: nn.Module, loss: str = "cross_entropy") -> None:
        self.ops = model_ops(model)
        self.params = {n: p for n, p in model.named_parameters()}
        self.loss = loss_rows(loss)
        self.ce = loss == "cross_entropy"
        self.param_op: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            for name in op.params:
                if name not in self.params:
                    raise ReproError(f"zo engine: op {op.kind} names parameter {name!r}, which the model lacks")
                self.param_op[name] = i
        missing = sorted(set(self.params) - set(self.param_op))
        if missing:
            raise ReproError(f"zo engine: parameters {missing[:3]} are used by no op")
        self.names = [n for n in self.params if n in self.param_op]  # the model's parameter order
        self.weight_names = [n for n in self.names
                             if n == self.ops[self.param_op[n]].params[0] and self.ops[self.param_op[n]].kind != "bn"]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def run(self, state: State, start: int = 0, batched: Mapping[str, torch.Tensor] | None = None,
            params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits (P, B, C) of the ops from *start* on."""
        params = params if params is not None else self.params
        batched = batched or {}
        for op in self.ops[start:]:
            state = apply_op(op, state, params, batched)
        return state[0]

    @torch.no_grad()
    def base(self, x: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None) -> Cache:
        """The unperturbed forward of batch *x* (B, ...), keeping every op's input and output."""
        params = params if params is not None else self.params
        state: State = (x.unsqueeze(0), None)
        inputs, outputs = [], []
        for op in self.ops:
            inputs.append(state)
            state = apply_op(op, state, params, {})
            outputs.append(state[0])
        return Cache(inputs, outputs, state[0])

    def expand(self, state: State, p: int) -> State:
        x, skip = state
        return (x.expand(p, *x.shape[1:]), None if skip is None else skip.expand(p, *skip.shape[1:]))

    def perturbed_copies(self, name: str, idx: torch.Tensor, mu: float) -> torch.Tensor:
        """(P, *shape): parameter *name* with μ added to coordinate idx[p] in copy p."""
        w = self.params[name].detach()
        stacked = w.reshape(1, -1).repeat(len(idx), 1)
        stacked[torch.arange(len(idx), device=w.device), idx] += mu
        return stacked.reshape(len(idx), *w.shape)

    def rank_one_output(self, name: str, idx: torch.Tensor, mu: float, cache: Cache,
                        force_reference: bool = False) -> torch.Tensor:
        """(P, B, ...): the output of *name*'s layer with coordinate idx[p] moved by μ, as cached
        output + structured delta (``kernels.structured_delta``), no GEMM."""
        from repro_deepzero.kernels import structured_delta

        i = self.param_op[name]
        op = self.ops[i]
        x_in = cache.inputs[i][0][0]  # (B, ...)
        base = cache.outputs[i][0]
        is_bias = len(op.params) > 1 and name == op.params[1]
        shape = self.params[name].shape
        if op.kind == "linear":
            base4, src4 = base[:, :, None, None], x_in[:, :, None, None]
            if is_bias:
                co, ci = idx, torch.zeros_like(idx)
            else:
                co, ci = idx // shape[1], idx % shape[1]
            kh = kw = torch.zeros_like(idx)
            stride, pad = 1, 0
        elif op.kind == "conv":
            base4, src4 = base, x_in
            stride, pad = op.cfg["stride"], op.cfg["padding"]
            if is_bias:
                co = idx
                ci = kh = kw = torch.zeros_like(idx)
            else:
                kk = shape[2] * shape[3]
                co, rest = idx // (shape[1] * kk), idx % (shape[1] * kk)
                ci, tap = rest // kk, rest % kk
                kh, kw = tap // shape[3], tap % shape[3]
        else:  # batch norm: gamma_c moves channel c by mu * xhat_c, beta_c by mu
            xhat = batch_norm_train(x_in.unsqueeze(0), op.cfg["eps"])[0]
            base4 = base if base.dim() == 4 else base[:, :, None, None]
            src4 = xhat if xhat.dim() == 4 else xhat[:, :, None, None]
            co, ci = idx, idx
            kh = kw = torch.zeros_like(idx)
            stride, pad = 1, 0
        out = structured_delta(base4, None if is_bias else src4, co, ci, kh, kw, stride, pad, mu,
                               force_reference=force_reference)
        return out.reshape(len(idx), *base.shape)

    @torch.no_grad()
    def coordinate_losses(self, name: str, idx: torch.Tensor, mu: float, x: torch.Tensor, y: torch.Tensor,
                          cache: Cache, mode: str = "reuse", force_reference: bool = False) -> torch.Tensor:
        """ℓ(θ + μ e_i) for every coordinate i in *idx* of parameter *name*: one batched evaluation."""
        if mode not in MODES:
            raise ReproError(f"zo engine: mode {mode!r} is not one of {MODES}")
        i = self.param_op[name]
        p = len(idx)
        if mode == "naive":
            # every query recomputes the unperturbed layers before layer i (P copies: the cost that
            # feature reuse removes); their P outputs are the same, so layer i's stacked weights
            # then see one copy, exactly as under reuse
            state: State = (x.unsqueeze(0).expand(p, *x.shape), None)
            for op in self.ops[:i]:
                state = apply_op(op, state, self.params, {})
            state = (state[0][:1], None if state[1] is None else state[1][:1])
            logits = self.run(state, i, {name: self.perturbed_copies(name, idx, mu)})
        elif mode == "reuse":
            logits = self.run(cache.inputs[i], i, {name: self.perturbed_copies(name, idx, mu)})
        else:
            fast = self._rank_one_through_next_linear(name, idx, mu, cache, y if self.ce else None)
            if fast is not None:
                out, start = fast
                if start < 0:  # the per-query losses themselves (final layer, cross-entropy)
                    return out
                logits = self.run((out, None), start)
            else:
                out = self.rank_one_output(name, idx, mu, cache, force_reference)
                skip = cache.inputs[i][1]
                state = (out, None if skip is None else skip.expand(p, *skip.shape[1:]))
                logits = self.run(state, i + 1)
        return self.loss(logits, y)

    def _rank_one_through_next_linear(self, name: str, idx: torch.Tensor, mu: float, cache: Cache,
                                      y: torch.Tensor | None = None) -> tuple[torch.Tensor, int] | None:
        """MLP fast path of ``rank_one``: a perturbed linear unit stays a single unit through the
        element-wise activations after it, so the next linear layer's output moves by a rank-one
        update, (a(z_j + δ) − a(z_j)) W_next[:, j]; that output (P, B, O') is returned with the op to
        continue from. If that layer gives the logits and *y* is given (cross-entropy), the per-query
        losses (P,) are returned instead, with op -1: samples whose δ is exactly 0 (a zero input
        pixel, a unit that stays off under the ReLU) keep their unperturbed loss, and only the others
        are evaluated. None where the pattern (linear, element-wise ops, linear) does not apply."""
        i = self.param_op[name]
        op = self.ops[i]
        if op.kind != "linear":
            return None
        k = i + 1
        while k < len(self.ops) and self.ops[k].kind in ("relu", "tanh", "sigmoid"):
            k += 1
        if k >= len(self.ops) or self.ops[k].kind != "linear" or k == i + 1:
            return None
        shape = self.params[name].shape
        is_bias = len(op.params) > 1 and name == op.params[1]
        unit = idx if is_bias else idx // shape[1]
        z = cache.outputs[i][0][:, unit].t()  # (P, B) pre-activation of each query's unit
        if is_bias:
            v = z + mu
        else:
            v = z + mu * cache.inputs[i][0][0][:, idx % shape[1]].t()
        for j in range(i + 1, k):
            v = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[self.ops[j].kind](v)
        delta = v - cache.inputs[k][0][0][:, unit].t()
        w_next = self.params[self.ops[k].params[0]]
        if y is not None and k + 1 == len(self.ops):
            base_logits = cache.outputs[k][0]  # (B, C)
            per_sample = torch.logsumexp(base_logits, 1) - base_logits.gather(1, y[:, None]).squeeze(1)
            losses = per_sample.unsqueeze(0).repeat(len(idx), 1)  # (P, B)
            p_i, b_i = torch.nonzero(delta, as_tuple=True)
            if len(p_i):
                logits = base_logits[b_i] + delta[p_i, b_i, None] * w_next[:, unit[p_i]].t()
                losses[p_i, b_i] = torch.logsumexp(logits, 1) - logits.gather(1, y[b_i, None]).squeeze(1)
            return losses.mean(1), -1
        out = cache.outputs[k][0].unsqueeze(0) + delta[:, :, None] * w_next[:, unit].t()[:, None, :]
        return out, k + 1


# ---- chunking -------------------------------------------------------------------------------------

def chunks(idx: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for s in range(0, len(idx), max(1, size)):
        yield idx[s:s + size]


def chunk_size(cache: Cache, budget_elements: int) -> int:
    """Queries per batched evaluation so that the largest activation stays under *budget_elements*."""
    largest = max(t[0].numel() for t in cache.outputs)
    return max(1, budget_elements // max(largest, 1))


# ---- estimators on a Program -------------------------------------------------------------------------

@torch.no_grad()
def cge(prog: Program, x: torch.Tensor, y: torch.Tensor, coords: Mapping[str, torch.Tensor], mu: float,
        mode: str = "reuse", budget_elements: int = 1 << 24, force_reference: bool = False,
        ) -> tuple[dict[str, torch.Tensor], int]:
    """Coordinate-wise gradient estimate ĝ_i = [ℓ(θ + μ e_i) − ℓ(θ)] / μ on the active coordinates.

    *coords*: parameter name -> flat indices of its active coordinates (absent parameters and
    inactive coordinates get 0). Returns (gradient per parameter, queries = 1 + #coordinates).
    """
    cache = prog.base(x)
    base = prog.loss(cache.logits, y)[0]
    size = chunk_size(cache, budget_elements)
    grads: dict[str, torch.Tensor] = {}
    queries = 1
    for name in prog.names:
        g = torch.zeros(prog.params[name].numel(), device=x.device, dtype=prog.params[name].dtype)
        idx = coords.get(name)
        if idx is not None and len(idx):
            for part in chunks(idx, size):
                losses = prog.coordinate_losses(name, part, mu, x, y, cache, mode, force_reference)
                g[part] = (losses - base) / mu
            queries += len(idx)
        grads[name] = g.reshape(prog.params[name].shape)
    return grads, queries


@torch.no_grad()
def directional_losses(prog: Program, x: torch.Tensor, y: torch.Tensor, points: Mapping[str, torch.Tensor],
                       budget_elements: int = 1 << 24, params: Mapping[str, torch.Tensor] | None = None,
                       ) -> torch.Tensor:
    """ℓ at q parameter vectors: *points* maps names to (q, *shape) values (others unchanged)."""
    q = next(iter(points.values())).shape[0]
    cache_shape = prog.base(x[:1], params)
    per_sample = max(t[0].numel() for t in cache_shape.outputs)
    size = max(1, budget_elements // max(per_sample * len(x), 1))
    out = []
    for s in range(0, q, size):
        part = {n: v[s:s + size] for n, v in points.items()}
        # the unperturbed layers before the first perturbed one run once (leading axis 1); the
        # first perturbed layer broadcasts its shared input against the q stacked weights
        logits = prog.run((x.unsqueeze(0), None), 0, part, params)
        out.append(prog.loss(logits, y))
    return torch.cat(out)


@torch.no_grad()
def rge(prog: Program, x: torch.Tensor, y: torch.Tensor, directions: Mapping[str, torch.Tensor], mu: float,
        budget_elements: int = 1 << 24, params: Mapping[str, torch.Tensor] | None = None,
        base: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """Randomized gradient estimate ĝ = (1/q) Σ_j [ℓ(θ + μ u_j) − ℓ(θ)] / μ · u_j.

    *directions*: parameter name -> (q, *shape) directions u_j (the parameters not named are not
    perturbed and get no estimate). Every query perturbs all named parameters at once, so each is
    a full forward pass (no feature reuse is possible). Returns (estimate per named parameter,
    queries = 1 + q).
    """
    params = params if params is not None else prog.params
    if base is None:
        base = prog.loss(prog.base(x, params).logits, y)[0]
    q = next(iter(directions.values())).shape[0]
    points = {n: params[n].detach().unsqueeze(0) + mu * u for n, u in directions.items()}
    dd = (directional_losses(prog, x, y, points, budget_elements, params) - base) / mu
    grads = {n: torch.einsum("q,q...->...", dd, u) / q for n, u in directions.items()}
    return grads, 1 + q
