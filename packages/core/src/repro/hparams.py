"""Typed, documented hyper-parameters, validated once for every method.

A method's hyper-parameters are a frozen dataclass whose fields are declared with :func:`hp`
(default, one-line doc with units, and the valid range or choices). :func:`parse` turns a
hyper-parameter mapping into that dataclass, rejecting an unknown key (naming the valid ones),
a value of the wrong type, or one out of range — with the key and the bad value in the message.
No package writes its own validation loop.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from repro.errors import ReproError, unknown

C = TypeVar("C")


def hp(default: Any, doc: str, *, low: float | None = None, high: float | None = None,
       low_open: bool = False, high_open: bool = False, choices: tuple[Any, ...] | None = None) -> Any:
    """A documented hyper-parameter field: ``low``/``high`` bound numbers (closed unless *_open*),
    ``choices`` lists the valid values."""
    meta = {"doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("hp(): use a tuple or None as default, not a mutable container")
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    type: Any
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None

    def range_text(self) -> str:
        """"one of a, b", "in (0, 1]" or "" (no constraint beyond the type)."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is None and self.high is None:
            return ""
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return (f"in {lo}{self.low if self.low is not None else '-inf'}, "
                f"{self.high if self.high is not None else 'inf'}{hi}")

    def describe(self) -> str:
        rng = self.range_text()
        return f"`{self.name}` ({_type_name(self.type)}, default {self.default!r}{'; ' + rng if rng else ''}): {self.doc}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def specs(cls: type) -> dict[str, Spec]:
    """The :class:`Spec` of every field of the hyper-parameter dataclass *cls*."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        m = f.metadata
        out[f.name] = Spec(f.name, hints[f.name], f.default, m.get("doc", ""), m.get("low"), m.get("high"),
                           m.get("low_open", False), m.get("high_open", False), m.get("choices"))
    return out


def keys(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def _coerce(spec: Spec, value: Any, owner: str) -> Any:
    """Check *value* against the field's declared type; return it in that type."""
    tp = spec.type
    origin = typing.get_origin(tp)
    bad = ReproError(f"{owner} hyper-parameter {spec.name!r} must be {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(dataclasses.replace(spec, type=inner[0]), value, owner)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ReproError(f"{owner} hyper-parameter {spec.name!r} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ReproError(f"{owner} hyper-parameter {spec.name!r} must be a list, got {value!r}")
        (item_type, *_rest) = typing.get_args(tp) or (Any,)
        item = dataclasses.replace(spec, type=item_type, choices=None, low=None, high=None)
        return tuple(_coerce(item, v, owner) if item_type is not Any else v for v in value)
    return value


def _check_range(spec: Spec, value: Any, owner: str) -> None:
    if value is None:
        return
    if spec.choices is not None and value not in spec.choices:
        raise unknown(f"{owner} hyper-parameter {spec.name!r} value", value, spec.choices)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo_ok = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
        hi_ok = spec.high is None or (value < spec.high if spec.high_open else value <= spec.high)
        if not (lo_ok and hi_ok):
            raise ReproError(f"{owner} hyper-parameter {spec.name!r} must be {spec.range_text()}, got {value!r}")


def parse(cls: type[C], hparams: Mapping[str, Any], owner: str, *, ignore: frozenset[str] = frozenset()) -> C:
    """Validate *hparams* against the fields of *cls* and build it. Keys in *ignore* belong to
    someone else (e.g. the core's gradient-descent keys) and are skipped."""
    fields = specs(cls)
    kwargs = {}
    for key, value in hparams.items():
        if key in ignore:
            continue
        if key not in fields:
            raise unknown(f"{owner} hyper-parameter", key, sorted({*fields, *ignore}))
        value = _coerce(fields[key], value, owner)
        _check_range(fields[key], value, owner)
        kwargs[key] = value
    return cls(**kwargs)


def as_dict(obj: Any) -> dict[str, Any]:
    """A parsed hyper-parameter dataclass back as a plain dict (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


def document(cls: type) -> str:
    """One line per field, for READMEs and ``repro experiments``."""
    return "\n".join(f"- {s.describe()}" for s in specs(cls).values())
