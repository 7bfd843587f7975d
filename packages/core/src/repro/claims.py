"""Claims as data, and their verdicts from per-seed measurements.

A paper writes its claims in ``claims.yaml`` (validated here). Each claim names a measured
*quantity* — a summary metric of one method, or the per-seed comparison of a method with its
baseline (difference, ratio, relative reduction) on the same seeds, optionally averaged over
several experiments when the paper states an average — and what the paper says about it
(``expect`` with ``threshold`` and ``tolerance``). The verdict comes only from the 95% CI over
seeds:

* ``>``: reproduced if the whole CI lies above ``threshold − tolerance``; not reproduced if it
  lies at or below it; otherwise inconclusive.
* ``<``: the mirror image (bound ``threshold + tolerance``).
* ``within``: reproduced if the CI lies inside ``threshold ± tolerance``; not reproduced if it
  lies entirely outside; otherwise inconclusive.

Two more verdict kinds keep the index honest: ``by construction`` (the quantity is fixed by the
configuration — e.g. the MACs a fixed keep ratio performs — so it is an accounting identity, not
a reproduction: shown apart and never counted as reproduced) and ``not run``.

**Misses.** A seed that never reaches the target has an infinite time (or instances, epochs) to
target, as in AlgoPerf. Per seed, for a method value m and a baseline value b:

==============  ===========  ===========  ===========
m, b            difference   ratio        reduction
==============  ===========  ===========  ===========
∞, finite       +∞           +∞           −∞
finite, ∞       −∞           0            1
∞, ∞            undefined    undefined    undefined
==============  ===========  ===========  ===========

The mean over seeds is infinite as soon as one seed is (a method that misses on one seed is
infinitely slow on average within the budget); its CI is that infinity, so the verdict is
decided by the miss. Undefined seeds (both missed) are left out and counted. Every verdict
reports how many seeds of the method and of the baseline missed.

**Claim templates.** An entry with a ``grid`` expands into one claim per combination of the
grid's axes: ``grid: {experiment: [a, b], variant: [{method: wus, baseline: baseline}, ...]}``
binds each axis value (a scalar binds the axis name; a mapping binds each of its keys); bound
names that are claim fields set them, and every string field is formatted with all bound names
(``id: "{method}_time_{experiment}"``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.errors import ReproError, unknown
from repro.scales import SCALES
from repro.stats import Interval, mean_ci, t_quantile

MIN_SEEDS = 3
COMPARES = ("value", "difference", "ratio", "reduction")
EXPECTS = (">", "<", "within")
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "by construction", "not run")
AGGREGATES = ("mean",)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str  # where the paper states it: "abstract", "Table 2", ...
    paper_value: str  # the paper's words or number, as stated
    metric: str  # key of a trial's summary (e.g. test_rmse, time_to_target_s)
    method: str
    expect: Literal[">", "<", "within"]
    experiment: str | None = None
    # Several experiments: the per-seed quantity is averaged over them (the paper states an average).
    experiments: tuple[str, ...] = ()
    threshold: float = 0.0
    tolerance: float = 0.0
    baseline: str | None = None
    compare: Literal["value", "difference", "ratio", "reduction"] = "value"
    scales: tuple[str, ...] = ("smoke", "paper")
    not_run: str | None = None  # why the claim is recorded but not run (out of scope)
    by_construction: str | None = None  # why the quantity is fixed by the configuration

    def __post_init__(self) -> None:
        if self.compare not in COMPARES:
            raise unknown(f"compare of claim {self.id!r}", self.compare, COMPARES)
        if self.expect not in EXPECTS:
            raise unknown(f"expect of claim {self.id!r}", self.expect, EXPECTS)
        if (self.compare == "value") != (self.baseline is None):
            raise ReproError(f"claim {self.id!r}: compare={self.compare!r} needs "
                             f"{'no baseline' if self.compare == 'value' else 'a baseline'}")
        if not (math.isfinite(self.threshold) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ReproError(f"claim {self.id!r}: threshold must be finite and tolerance >= 0 "
                             f"(got {self.threshold}, {self.tolerance})")
        if self.experiment is not None and self.experiments:
            raise ReproError(f"claim {self.id!r}: give 'experiment' or 'experiments', not both")
        if not self.not_run and not self.experiment_names:
            raise ReproError(f"claim {self.id!r}: needs 'experiment' (or 'experiments'), unless it is 'not_run'")
        if any(s not in SCALES for s in self.scales):
            raise ReproError(f"claim {self.id!r}: key 'scales' must be a list of {list(SCALES)}, got {self.scales!r}")

    @property
    def experiment_names(self) -> tuple[str, ...]:
        return self.experiments or ((self.experiment,) if self.experiment else ())

    def quantity(self) -> str:
        m, b = f"{self.metric}[{self.method}]", f"{self.metric}[{self.baseline}]"
        q = {
            "value": m,
            "difference": f"{m} − {b}",
            "ratio": f"{m} / {b}",
            "reduction": f"1 − {m} / {b}",
        }[self.compare]
        return f"mean over {len(self.experiments)} experiments of ({q})" if self.experiments else q

    def expectation(self) -> str:
        if self.expect == "within":
            return f"within {self.threshold:g} ± {self.tolerance:g}"
        return f"{self.expect} {self.bound():g}"

    def bound(self) -> float:
        return self.threshold - self.tolerance if self.expect == ">" else self.threshold + self.tolerance


CLAIM_KEYS = {f.name for f in fields(Claim)}
REQUIRED = {"id", "statement", "source", "paper_value", "metric", "method", "expect"}


def _bindings(grid: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    if not isinstance(grid, Mapping) or not grid:
        raise ReproError(f"{where}: 'grid' must be a non-empty mapping of axis name -> list of values")
    axes = []
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ReproError(f"{where}: grid axis {axis!r} must be a non-empty list")
        axes.append([dict(v) if isinstance(v, Mapping) else {axis: v} for v in values])
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def _format(value: Any, names: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        try:
            return value.format(**names)
        except (KeyError, IndexError, ValueError) as exc:
            raise ReproError(f"{where}: cannot fill {value!r} from the grid ({exc})") from None
    if isinstance(value, list):
        return [_format(v, names, where) for v in value]
    return value


def expand(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One entry of ``claims.yaml`` as the claim mappings it stands for (a template expands)."""
    if "grid" not in item:
        return [item]
    body = {k: v for k, v in item.items() if k != "grid"}
    out = []
    for names in _bindings(item["grid"], where):
        claim = {k: _format(v, names, where) for k, v in body.items()}
        claim.update({k: v for k, v in names.items() if k in CLAIM_KEYS and k not in body})
        out.append(claim)
    return out


def _claim(item: Any, where: str) -> Claim:
    if not isinstance(item, dict):
        raise ReproError(f"{where}: expected a mapping")
    extra, missing = set(item) - CLAIM_KEYS, REQUIRED - set(item)
    if extra:
        raise unknown(f"key in {where}", sorted(extra)[0], CLAIM_KEYS)
    if missing:
        raise ReproError(f"{where}: missing keys {sorted(missing)}")
    item = dict(item)
    for key in ("scales", "experiments"):
        if key in item:
            if not isinstance(item[key], list):
                raise ReproError(f"{where}: key {key!r} must be a list, got {item[key]!r}")
            item[key] = tuple(item[key])
    for key in ("threshold", "tolerance"):
        if key in item:
            try:
                item[key] = float(item[key])
            except (TypeError, ValueError):
                raise ReproError(f"{where}: key {key!r} must be a number, got {item[key]!r}") from None
    try:
        return Claim(**item)
    except ReproError as exc:
        raise ReproError(f"{where}: {exc}") from None


def load_claims(path: Path) -> tuple[Claim, ...]:
    """Read a paper's ``claims.yaml``: a list of claims and claim templates (``grid``)."""
    try:
        items = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ReproError(f"cannot read claims file {path}: {exc}") from None
    if not isinstance(items, list):
        raise ReproError(f"claims file {path}: expected a list of claims")
    claims, seen = [], set()
    for i, entry in enumerate(items):
        where = f"claims file {path}, entry {i}"
        if not isinstance(entry, dict):
            raise ReproError(f"{where}: expected a mapping")
        for item in expand(entry, where):
            claim = _claim(item, where + (f" ({item.get('id')})" if "grid" in entry else ""))
            if claim.id in seen:
                raise ReproError(f"{where}: duplicate claim id {claim.id!r}")
            seen.add(claim.id)
            claims.append(claim)
    return tuple(claims)


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    reason: str
    interval: Interval | None = None
    per_seed: dict[int, float] = field(default_factory=dict)
    method_mean: float = math.nan
    baseline_mean: float = math.nan
    misses: dict[str, int] = field(default_factory=dict)  # seeds that never reached the target
    undefined: int = 0  # seeds whose quantity is undefined (both missed, or a metric missing)
    seeds_to_decide: int | None = None  # estimated seeds a decisive CI would need (inconclusive only)
    holds: bool | None = None  # by construction: does the fixed quantity meet the claim

    def as_dict(self) -> dict[str, Any]:
        ci = self.interval
        return {
            "statement": self.claim.statement,
            "source": self.claim.source,
            "paper_value": self.claim.paper_value,
            "experiment": ", ".join(self.claim.experiment_names),
            "quantity": self.claim.quantity(),
            "expectation": self.claim.expectation(),
            "verdict": self.verdict,
            "reason": self.reason,
            "mean": ci.mean if ci else None,
            "ci_low": ci.low if ci else None,
            "ci_high": ci.high if ci else None,
            "n_seeds": ci.n if ci else 0,
            "method_mean": self.method_mean,
            "baseline_mean": self.baseline_mean,
            "misses": self.misses,
            "undefined_seeds": self.undefined,
            "seeds_to_decide": self.seeds_to_decide,
            "holds": self.holds,
            "per_seed": {str(k): v for k, v in sorted(self.per_seed.items())},
            "claim": {k: v for k, v in asdict(self.claim).items() if k != "statement"},
        }


def combine(compare: str, m: float, b: float) -> float:
    """The per-seed quantity, with the miss semantics of the module docstring."""
    if compare == "value":
        return m
    if math.isnan(m) or math.isnan(b):
        return math.nan
    if math.isinf(m) and math.isinf(b):
        return math.nan
    if compare == "difference":
        return m - b
    if math.isinf(m):
        return math.inf if compare == "ratio" else -math.inf
    if math.isinf(b):
        return 0.0 if compare == "ratio" else 1.0
    if b == 0:
        return math.nan
    return m / b if compare == "ratio" else 1.0 - m / b


def _mean_with_infinities(values: list[float]) -> Interval:
    """Mean and 95% t-CI; one infinite value makes the mean (and the CI) that infinity."""
    infinite = {math.copysign(1, v) for v in values if math.isinf(v)}
    if not infinite:
        return mean_ci(values)
    if len(infinite) == 2:
        return Interval(math.nan, math.nan, math.nan, len(values), math.nan)
    inf = math.inf * infinite.pop()
    return Interval(inf, inf, inf, len(values), math.nan)


def _decide(claim: Claim, ci: Interval) -> str:
    t, tol = claim.threshold, claim.tolerance
    if math.isnan(ci.mean):
        return "inconclusive"
    if claim.expect == ">":
        bound = t - tol
        return "reproduced" if ci.low > bound else "not reproduced" if ci.high <= bound else "inconclusive"
    if claim.expect == "<":
        bound = t + tol
        return "reproduced" if ci.high < bound else "not reproduced" if ci.low >= bound else "inconclusive"
    lo, hi = t - tol, t + tol
    return ("reproduced" if lo <= ci.low and ci.high <= hi
            else "not reproduced" if ci.high < lo or ci.low > hi else "inconclusive")


def seeds_to_decide(claim: Claim, ci: Interval, limit: int = 10_000) -> int | None:
    """Seeds a CI of the same mean and spread would need to decide *claim* (None: more seeds
    cannot decide it, e.g. the mean sits on the bound)."""
    if ci.n < 2 or not math.isfinite(ci.std) or not math.isfinite(ci.mean):
        return None
    if claim.expect == "within":
        lo, hi = claim.threshold - claim.tolerance, claim.threshold + claim.tolerance
        margin = min(ci.mean - lo, hi - ci.mean) if lo <= ci.mean <= hi else min(abs(ci.mean - lo), abs(ci.mean - hi))
    else:
        margin = abs(ci.mean - claim.bound())
    if margin <= 0:
        return None
    if ci.std == 0:
        return ci.n
    for n in range(max(ci.n, 2), limit + 1):
        if t_quantile(0.975, n - 1) * ci.std / math.sqrt(n) < margin:
            return n
    return None


def judge(claim: Claim, measurements: Mapping[str, Mapping[str, Mapping[int, float]]]) -> Verdict:
    """Verdict of *claim* from ``measurements[experiment][method][seed]`` = the metric's value
    (``inf`` for a seed that missed the target, ``nan`` for a value that is undefined)."""
    if claim.not_run:
        return Verdict(claim, "not run", claim.not_run)
    per_exp: list[dict[int, float]] = []
    method_vals: dict[int, list[float]] = {}
    base_vals: dict[int, list[float]] = {}
    misses = {claim.method: 0, **({claim.baseline: 0} if claim.baseline else {})}
    for exp in claim.experiment_names:
        data = measurements.get(exp, {})
        mv = data.get(claim.method, {})
        bv = data.get(claim.baseline, {}) if claim.baseline else mv
        seeds = sorted(set(mv) & set(bv))  # paired: same seeds only
        per_exp.append({s: combine(claim.compare, mv[s], bv[s]) for s in seeds})
        for s in seeds:
            method_vals.setdefault(s, []).append(mv[s])
            misses[claim.method] += math.isinf(mv[s])
            if claim.baseline:
                base_vals.setdefault(s, []).append(bv[s])
                misses[claim.baseline] += math.isinf(bv[s])
    common = sorted(set.intersection(*(set(d) for d in per_exp))) if per_exp else []
    per_seed = {s: _mean_with_infinities([d[s] for d in per_exp]).mean for s in common}
    defined = {s: v for s, v in per_seed.items() if not math.isnan(v)}
    undefined = len(per_seed) - len(defined)

    def avg(vals: dict[int, list[float]]) -> float:
        xs = [_mean_with_infinities(vals[s]).mean for s in defined if s in vals]
        return _mean_with_infinities(xs).mean if xs else math.nan

    method_mean, base_mean = avg(method_vals), avg(base_vals) if claim.baseline else math.nan
    missed = "; ".join(f"{m} missed the target on {n} seed(s)" for m, n in misses.items() if n)
    extra = "".join(f"; {x}" for x in (missed, f"{undefined} seed(s) undefined" if undefined else "") if x)
    if len(defined) < MIN_SEEDS:
        why = f"only {len(defined)} seed(s) with a defined {claim.quantity()} (need {MIN_SEEDS}){extra}"
        ci = _mean_with_infinities(list(defined.values())) if defined else None
        out = Verdict(claim, "inconclusive", why, ci, per_seed, method_mean, base_mean, misses, undefined)
        return _by_construction(out, why) if claim.by_construction else out
    ci = _mean_with_infinities(list(defined.values()))
    verdict = _decide(claim, ci)
    reason = (f"95% CI [{ci.low:.4g}, {ci.high:.4g}] over {ci.n} seeds vs expected {claim.expectation()}"
              if math.isfinite(ci.low) or math.isfinite(ci.high) else
              f"mean {ci.mean:.4g} over {ci.n} seeds (a seed missed the target) vs expected {claim.expectation()}")
    reason += extra
    needed = None
    if verdict == "inconclusive" and math.isnan(ci.mean):
        reason += "; the mean is undefined (the method and the baseline missed the target on different seeds)"
    elif verdict == "inconclusive":
        needed = seeds_to_decide(claim, ci)
        reason += (f"; the CI is too wide to decide: about {needed} seeds would decide it at this mean and spread"
                   if needed else "; more seeds would not decide it (the mean sits on the bound)")
    out = Verdict(claim, verdict, reason, ci, per_seed, method_mean, base_mean, misses, undefined, needed)
    return _by_construction(out, reason) if claim.by_construction else out


def _by_construction(out: Verdict, reason: str) -> Verdict:
    """Relabel a verdict whose quantity the configuration fixes; ``holds`` keeps what was measured."""
    out.holds = out.verdict == "reproduced" if out.verdict != "inconclusive" else None
    out.verdict = "by construction"
    out.seeds_to_decide = None
    out.reason = (f"fixed by the configuration ({out.claim.by_construction}); the measured value "
                  f"{'meets' if out.holds else 'does not meet' if out.holds is False else 'may or may not meet'} "
                  f"the claim, an accounting identity rather than a reproduction. {reason}")
    return out
