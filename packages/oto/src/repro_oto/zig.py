"""Zero-invariant groups (ZIGs), found automatically from a model's ``torch.fx`` graph.

A ZIG (OTO, §3.1) is the set of parameters that produce one output channel (conv) or neuron
(linear): row k of every conv/linear *producer* writing channel k (its filter and bias), and
element k of every batch norm riding on that channel (gamma, beta). If the whole group is zero the
channel is exactly zero for every input — conv(x) + b is 0, BN maps 0 to beta + gamma (0 - mu) /
sigma = 0, ReLU/max-pool/average-pool/dropout keep 0, a sum of zeros is 0 — so the channel and the
matching input columns of every *consumer* (next conv/linear, through a flatten: factor H*W
columns per channel) can be removed without changing the output.

How the graph is read: every tensor value carries a *channel space* (its dim 1 for (N, C, H, W)
and (N, F) tensors) and a factor (features per channel after a flatten). A conv or linear starts
a new space (it is its producer) and consumes its input's; a batch norm joins its input's space;
element-wise ops with f(0) = 0 and pools pass it through; a residual ``a + b`` merges the two
spaces (union-find) — the ResNet case where every block of a stage writes the same channels, so
those convs share one group per channel. A space is *not* prunable (kept whole, its producers
trained as ordinary parameters) when it reaches the network input or output, passes an op that
maps 0 to something else (sigmoid, a BN without affine parameters, ``x + c``), a grouped conv,
a concatenation, a module called twice, or any op not listed here; the reason is recorded.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from repro.errors import ReproError


class ZigError(ReproError):
    """The model cannot be traced or partitioned."""


# Modules / functions that map a zero channel to a zero channel and keep the channel axis.
ZERO_PRESERVING_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Mish,
    nn.Softsign, nn.Tanhshrink, nn.PReLU,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)
ZERO_PRESERVING_FUNCTIONS = {
    torch.relu, torch.relu_, F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardtanh, F.hardswish,
    F.mish, torch.tanh, F.tanh, F.dropout, F.dropout2d, torch.dropout, F.max_pool1d, F.max_pool2d,
    F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
    torch.max_pool2d, torch.avg_pool1d, torch.adaptive_avg_pool1d,
}
ZERO_PRESERVING_METHODS = {"relu", "relu_", "tanh", "tanh_", "contiguous", "clone", "detach"}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
SCALE_FUNCTIONS = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}


@dataclass(frozen=True)
class Consumer:
    """A layer reading the channels as inputs: ``weight[:, k * factor:(k + 1) * factor]`` belongs to channel k."""

    module: str
    factor: int = 1


@dataclass
class ZigSet:
    """One channel space: ``size`` groups (channels / neurons), group k = row k of every member tensor."""

    index: int
    kind: str  # "conv" (a conv produces it) or "linear"
    size: int
    producers: list[str]
    norms: list[str]  # batch norms on these channels (their gamma/beta are group members)
    consumers: list[Consumer]
    reasons: list[str] = field(default_factory=list)  # why it is not prunable (empty: prunable)

    @property
    def prunable(self) -> bool:
        return not self.reasons

    def member_names(self) -> list[str]:
        """Qualified parameter names of the group members, producers first (weight, bias), then BNs."""
        return [f"{m}.{p}" for m in self.producers for p in ("weight", "bias")] + \
               [f"{m}.{p}" for m in self.norms for p in ("weight", "bias")]

    def members(self, model: nn.Module) -> list[torch.Tensor]:
        """The member parameters of *model* (dim 0 = the groups); absent biases are skipped."""
        out = []
        for name in self.member_names():
            module_name, attr = name.rsplit(".", 1)
            t = getattr(model.get_submodule(module_name), attr, None)
            if isinstance(t, torch.Tensor):
                out.append(t)
        return out


@dataclass
class ZigPartition:
    """All channel spaces of a model that have a producer; ``prunable_sets`` are the ZIG sets HSPG trains."""

    sets: list[ZigSet]

    @property
    def prunable_sets(self) -> list[ZigSet]:
        return [s for s in self.sets if s.prunable]

    @property
    def num_groups(self) -> int:
        return sum(s.size for s in self.prunable_sets)

    def grouped_parameters(self, model: nn.Module) -> list[list[torch.Tensor]]:
        """Per prunable set, its member tensors (the parameters the group regulariser acts on)."""
        return [s.members(model) for s in self.prunable_sets]

    def describe(self) -> str:
        lines = []
        for s in self.sets:
            state = "prunable" if s.prunable else "kept (" + "; ".join(sorted(set(s.reasons))) + ")"
            lines.append(f"set {s.index} [{s.kind}, {s.size} groups] producers={s.producers} norms={s.norms} "
                         f"consumers={[(c.module, c.factor) for c in s.consumers]}: {state}")
        return "\n".join(lines)


class _Spaces:
    """Union-find over channel spaces with what each space collects."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.producers: list[list[tuple[int, str, str]]] = []  # (graph order, module, kind)
        self.norms: list[list[str]] = []
        self.consumers: list[list[Consumer]] = []
        self.reasons: list[list[str]] = []

    def new(self, size: int, reason: str | None = None) -> int:
        i = len(self.parent)
        self.parent.append(i)
        self.size.append(size)
        self.producers.append([])
        self.norms.append([])
        self.consumers.append([])
        self.reasons.append([reason] if reason else [])
        return i

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] != self.size[rb]:
            self.freeze(ra, "residual sum of different widths")
            self.freeze(rb, "residual sum of different widths")
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        for attr in ("producers", "norms", "consumers", "reasons"):
            getattr(self, attr)[lo].extend(getattr(self, attr)[hi])
            getattr(self, attr)[hi] = []
        return lo

    def freeze(self, i: int, reason: str) -> None:
        self.reasons[self.find(i)].append(reason)


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


def _channels(shape: tuple[int, ...] | None) -> int:
    return int(shape[1]) if shape is not None and len(shape) >= 2 else 1


def trace(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """Symbolic trace of *model* with the tensor shapes of *example_input* attached (``tensor_meta``).

    Shapes are propagated in eval mode without gradients, so batch-norm running statistics are
    not touched; the model's training flag is restored.
    """
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: no automatic partition
        raise ZigError(f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: {exc}") from None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as exc:  # noqa: BLE001
        raise ZigError(f"shape propagation of {type(model).__name__} on an input of shape "
                       f"{tuple(example_input.shape)} failed: {type(exc).__name__}: {exc}") from None
    finally:
        model.train(was_training)
    return gm


def _flatten_factor(in_shape: tuple[int, ...] | None, out_shape: tuple[int, ...] | None) -> int | None:
    """Features per channel if (N, C, *S) -> (N, C * prod(S)) is a flatten from dim 1, else None."""
    if in_shape is None or out_shape is None or len(in_shape) < 2 or len(out_shape) != 2:
        return None
    if in_shape[0] != out_shape[0] or math.prod(in_shape[1:]) != out_shape[1]:
        return None
    return int(math.prod(in_shape[2:]))


def build_zigs(model: nn.Module, example_input: torch.Tensor) -> ZigPartition:
    """The ZIG partition of *model* (see the module docstring); *example_input*: one batch (any N >= 1)."""
    gm = trace(model, example_input)
    sp = _Spaces()
    val: dict[fx.Node, tuple[int, int]] = {}  # node -> (space, factor)
    calls: dict[str, int] = {}
    order = 0

    def space_args(args: Sequence) -> list[fx.Node]:
        out = []
        for a in args:
            if isinstance(a, fx.Node) and a in val:
                out.append(a)
            elif isinstance(a, (list, tuple)):
                out.extend(space_args(a))
        return out

    def opaque(node: fx.Node, why: str) -> None:
        """An op this partition does not model: its inputs' channels are kept, its output is a new kept space."""
        for a in space_args(list(node.args) + list(node.kwargs.values())):
            sp.freeze(val[a][0], why)
        shape = _shape(node)
        if shape is not None:
            val[node] = (sp.new(_channels(shape), why), 1)

    def passthrough(node: fx.Node, src) -> None:
        if isinstance(src, fx.Node) and src in val:
            val[node] = val[src]
        else:
            opaque(node, f"{node.op} {node.target} on a value without channels")

    def flatten(node: fx.Node, src) -> None:
        if not (isinstance(src, fx.Node) and src in val):
            return opaque(node, "flatten of a value without channels")
        factor = _flatten_factor(_shape(src), _shape(node))
        if factor is None:
            return opaque(node, f"reshape {_shape(src)} -> {_shape(node)} that is not a flatten from dim 1")
        s, f = val[src]
        val[node] = (s, f * factor)

    for node in gm.graph.nodes:
        order += 1
        if node.op == "placeholder":
            shape = _shape(node)
            if shape is not None:
                val[node] = (sp.new(_channels(shape), "network input"), 1)
        elif node.op == "output":
            for a in space_args(node.args):
                sp.freeze(val[a][0], "network output")
        elif node.op == "get_attr":
            if _shape(node) is not None:
                val[node] = (sp.new(_channels(_shape(node)), f"tensor attribute {node.target} used directly"), 1)
        elif node.op == "call_module":
            mod = gm.get_submodule(node.target)
            src = node.args[0] if node.args else None
            has_params = any(True for _ in mod.parameters(recurse=False))
            if has_params:
                calls[node.target] = calls.get(node.target, 0) + 1
            if isinstance(mod, nn.Conv2d) or isinstance(mod, nn.Linear):
                if not (isinstance(src, fx.Node) and src in val):
                    opaque(node, f"{node.target} on a value without channels")
                    continue
                s, f = val[src]
                in_shape = _shape(src)
                out_size = mod.out_channels if isinstance(mod, nn.Conv2d) else mod.out_features
                if isinstance(mod, nn.Conv2d) and mod.groups != 1:
                    opaque(node, f"grouped convolution {node.target}")
                    continue
                if isinstance(mod, nn.Linear) and (in_shape is None or len(in_shape) != 2):
                    opaque(node, f"linear {node.target} on a tensor of shape {in_shape} (only (N, F) is modelled)")
                    continue
                if isinstance(mod, nn.Conv2d) and f != 1:
                    opaque(node, f"convolution {node.target} on flattened features")
                    continue
                sp.consumers[sp.find(s)].append(Consumer(node.target, f))
                out = sp.new(out_size)
                sp.producers[out].append((order, node.target, "conv" if isinstance(mod, nn.Conv2d) else "linear"))
                val[node] = (out, 1)
            elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if not (isinstance(src, fx.Node) and src in val):
                    opaque(node, f"{node.target} on a value without channels")
                    continue
                s, f = val[src]
                if f != 1:
                    opaque(node, f"batch norm {node.target} on flattened features")
                    continue
                if not mod.affine:
                    sp.freeze(s, f"batch norm {node.target} without affine parameters maps 0 to -mean/std")
                else:
                    sp.norms[sp.find(s)].append(node.target)
                val[node] = (s, f)
            elif isinstance(mod, ZERO_PRESERVING_MODULES):
                passthrough(node, src)
                if isinstance(mod, nn.PReLU) and mod.num_parameters != 1:
                    sp.freeze(val[node][0], f"per-channel PReLU {node.target}")
            elif isinstance(mod, nn.Flatten):
                if mod.start_dim == 1 and mod.end_dim == -1:
                    flatten(node, src)
                else:
                    opaque(node, f"flatten {node.target} from dim {mod.start_dim}")
            else:
                opaque(node, f"module {node.target} ({type(mod).__name__}) is not modelled")
        elif node.op == "call_function":
            fn = node.target
            args = node.args
            if fn in ADD_FUNCTIONS and len(args) == 2 and "alpha" not in node.kwargs:
                a, b = args
                if isinstance(a, fx.Node) and isinstance(b, fx.Node) and a in val and b in val \
                        and _shape(a) == _shape(b) and val[a][1] == val[b][1]:
                    val[node] = (sp.union(val[a][0], val[b][0]), val[a][1])
                else:
                    opaque(node, "sum with a constant or a broadcast (maps 0 to something else)")
            elif fn in SCALE_FUNCTIONS and len(args) == 2 and isinstance(args[1], (int, float)) \
                    and isinstance(args[0], fx.Node):
                passthrough(node, args[0])
            elif fn in ZERO_PRESERVING_FUNCTIONS:
                passthrough(node, args[0] if args else None)
            elif fn is torch.flatten:
                start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)
                end = args[2] if len(args) > 2 else node.kwargs.get("end_dim", -1)
                if start == 1 and end == -1:
                    flatten(node, args[0])
                else:
                    opaque(node, f"torch.flatten from dim {start}")
            elif fn in (operator.getitem, getattr) or _shape(node) is None:
                # shape / size look-ups produce no tensor; an indexed tensor is not modelled
                if _shape(node) is not None:
                    opaque(node, f"{getattr(fn, '__name__', fn)} on a tensor")
            else:
                opaque(node, f"function {getattr(fn, '__name__', fn)} is not modelled")
        elif node.op == "call_method":
            name = node.target
            src = node.args[0] if node.args else None
            if name in ZERO_PRESERVING_METHODS:
                passthrough(node, src)
            elif name in ("view", "reshape", "flatten"):
                if isinstance(src, fx.Node) and _shape(src) == _shape(node):
                    passthrough(node, src)
                else:
                    flatten(node, src)
            elif name in ("add", "add_", "sub", "sub_") and len(node.args) == 2 and not node.kwargs:
                a, b = node.args
                if isinstance(b, fx.Node) and a in val and b in val and _shape(a) == _shape(b) \
                        and val[a][1] == val[b][1]:
                    val[node] = (sp.union(val[a][0], val[b][0]), val[a][1])
                else:
                    opaque(node, "sum with a constant or a broadcast (maps 0 to something else)")
            elif name in ("mul", "mul_", "div", "div_") and len(node.args) == 2 and isinstance(node.args[1], (int, float)):
                passthrough(node, src)
            elif name in ("size", "dim") or _shape(node) is None:
                continue
            else:
                opaque(node, f"tensor method {name} is not modelled")

    for target, n in calls.items():
        if n > 1:  # a layer used twice: its channels would have to be removed consistently at every call
            for node in gm.graph.nodes:
                if node.op == "call_module" and node.target == target:
                    if node in val:
                        sp.freeze(val[node][0], f"module {target} is called {n} times")
                    for a in space_args(node.args):
                        sp.freeze(val[a][0], f"module {target} is called {n} times")

    sets: list[ZigSet] = []
    for root in sorted({sp.find(i) for i in range(len(sp.parent))}):
        producers = sorted(sp.producers[root])
        if not producers:
            continue
        sets.append(ZigSet(
            index=len(sets),
            kind="conv" if any(kind == "conv" for _, _, kind in producers) else "linear",
            size=sp.size[root],
            producers=[name for _, name, _ in producers],
            norms=list(dict.fromkeys(sp.norms[root])),
            consumers=list(dict.fromkeys(sp.consumers[root])),
            reasons=list(dict.fromkeys(sp.reasons[root])),
        ))
    return ZigPartition(sets)


def group_sq_norms(members: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared l2 norm of every group of one set: sum over members of the squared row norms."""
    out = None
    for t in members:
        sq = t.detach().reshape(t.shape[0], -1).float().pow(2).sum(1)
        out = sq if out is None else out + sq
    if out is None:
        raise ZigError("a ZIG set without member tensors")
    return out


def zero_groups(members: Sequence[torch.Tensor], idx: torch.Tensor) -> None:
    """Set groups *idx* of one set to exactly zero (every member row)."""
    with torch.no_grad():
        for t in members:
            t[idx] = 0


def group_sparsity(model: nn.Module, partition: ZigPartition) -> tuple[int, int]:
    """(zero groups, all groups) over the prunable sets of *partition* on *model*."""
    zero = total = 0
    for members in partition.grouped_parameters(model):
        sq = group_sq_norms(members)
        zero += int((sq == 0).sum())
        total += sq.numel()
    return zero, total
