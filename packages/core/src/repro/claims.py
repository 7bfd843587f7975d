"""Claims as data, and their verdicts from per-seed measurements.

A paper writes its claims in ``claims.yaml`` (validated here). Each claim names a measured
*quantity* — a summary metric of one method, or the per-seed comparison of a method with its
baseline (difference, ratio, relative reduction) on the same seeds — and what the paper says
about it (``expect`` with ``threshold`` and ``tolerance``). The verdict comes only from the
95% CI over seeds:

* ``>``: reproduced if the whole CI lies above ``threshold − tolerance``; not reproduced if it
  lies at or below it; otherwise inconclusive.
* ``<``: the mirror image (bound ``threshold + tolerance``).
* ``within``: reproduced if the CI lies inside ``threshold ± tolerance``; not reproduced if it
  lies entirely outside; otherwise inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.config import SCALES
from repro.errors import ReproError, unknown
from repro.stats import Interval, mean_ci

MIN_SEEDS = 3
COMPARES = ("value", "difference", "ratio", "reduction")
EXPECTS = (">", "<", "within")
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not run")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str  # where the paper states it: "abstract", "Table 2", ...
    paper_value: str  # the paper's words or number, as stated
    experiment: str
    metric: str  # key of a trial's summary (e.g. test_rmse, time_to_target_s)
    method: str
    expect: Literal[">", "<", "within"]
    threshold: float = 0.0
    tolerance: float = 0.0
    baseline: str | None = None
    compare: Literal["value", "difference", "ratio", "reduction"] = "value"
    scales: tuple[str, ...] = ("smoke", "paper")
    not_run: str | None = None  # why the claim is recorded but not run (out of scope)

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

    def quantity(self) -> str:
        m, b = f"{self.metric}[{self.method}]", f"{self.metric}[{self.baseline}]"
        return {
            "value": m,
            "difference": f"{m} − {b}",
            "ratio": f"{m} / {b}",
            "reduction": f"1 − {m} / {b}",
        }[self.compare]

    def expectation(self) -> str:
        if self.expect == "within":
            return f"within {self.threshold:g} ± {self.tolerance:g}"
        bound = self.threshold - self.tolerance if self.expect == ">" else self.threshold + self.tolerance
        return f"{self.expect} {bound:g}"


CLAIM_KEYS = {f for f in Claim.__dataclass_fields__}
REQUIRED = {"id", "statement", "source", "paper_value", "experiment", "metric", "method", "expect"}


def load_claims(path: Path) -> tuple[Claim, ...]:
    """Read a paper's ``claims.yaml``: a list of mappings with the fields of ``Claim``."""
    try:
        items = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ReproError(f"cannot read claims file {path}: {exc}") from None
    if not isinstance(items, list):
        raise ReproError(f"claims file {path}: expected a list of claims")
    claims, seen = [], set()
    for i, item in enumerate(items):
        where = f"claims file {path}, entry {i}"
        if not isinstance(item, dict):
            raise ReproError(f"{where}: expected a mapping")
        extra, missing = set(item) - CLAIM_KEYS, REQUIRED - set(item)
        if extra:
            raise unknown(f"key in {where}", sorted(extra)[0], CLAIM_KEYS)
        if missing:
            raise ReproError(f"{where}: missing keys {sorted(missing)}")
        item = dict(item)
        scales = item.get("scales", ["smoke", "paper"])
        if not isinstance(scales, list) or any(s not in SCALES for s in scales):
            raise ReproError(f"{where}: key 'scales' must be a list of {list(SCALES)}, got {scales!r}")
        item["scales"] = tuple(scales)
        for key in ("threshold", "tolerance"):
            if key in item:
                try:
                    item[key] = float(item[key])
                except (TypeError, ValueError):
                    raise ReproError(f"{where}: key {key!r} must be a number, got {item[key]!r}") from None
        claim = Claim(**item)
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

    def as_dict(self) -> dict[str, Any]:
        ci = self.interval
        return {
            "statement": self.claim.statement,
            "source": self.claim.source,
            "paper_value": self.claim.paper_value,
            "experiment": self.claim.experiment,
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
            "per_seed": {str(k): v for k, v in sorted(self.per_seed.items())},
            "claim": {k: v for k, v in asdict(self.claim).items() if k != "statement"},
        }


def _combine(compare: str, m: float, b: float) -> float:
    if compare == "difference":
        return m - b
    if b == 0:
        return math.nan
    return m / b if compare == "ratio" else 1.0 - m / b


def judge(claim: Claim, measurements: dict[str, dict[int, float]]) -> Verdict:
    """Verdict of *claim* from ``measurements[method][seed] = metric value`` of one experiment."""
    if claim.not_run:
        return Verdict(claim, "not run", claim.not_run)
    method_vals = measurements.get(claim.method, {})
    if claim.baseline is None:
        per_seed = dict(method_vals)
        base_mean = math.nan
    else:
        base_vals = measurements.get(claim.baseline, {})
        seeds = sorted(set(method_vals) & set(base_vals))  # paired: same seeds only
        per_seed = {s: _combine(claim.compare, method_vals[s], base_vals[s]) for s in seeds}
    finite = {s: v for s, v in per_seed.items() if math.isfinite(v)}
    # Means over the same seeds the CI uses, so mean(method) - mean(baseline) matches it.
    method_mean = mean_ci([method_vals[s] for s in finite]).mean if finite else math.nan
    if claim.baseline is not None:
        base_mean = mean_ci([base_vals[s] for s in finite]).mean if finite else math.nan
    if len(finite) < MIN_SEEDS:
        missing = len(per_seed) - len(finite)
        why = f"only {len(finite)} seed(s) with a finite {claim.quantity()} (need {MIN_SEEDS})"
        if missing:
            why += f"; {missing} seed(s) gave NaN (e.g. target never reached)"
        return Verdict(claim, "inconclusive", why, mean_ci(list(finite.values())) if finite else None,
                       per_seed, method_mean, base_mean)
    ci = mean_ci(list(finite.values()))
    t, tol = claim.threshold, claim.tolerance
    if claim.expect == ">":
        bound = t - tol
        verdict = "reproduced" if ci.low > bound else "not reproduced" if ci.high <= bound else "inconclusive"
    elif claim.expect == "<":
        bound = t + tol
        verdict = "reproduced" if ci.high < bound else "not reproduced" if ci.low >= bound else "inconclusive"
    else:
        lo, hi = t - tol, t + tol
        verdict = ("reproduced" if lo <= ci.low and ci.high <= hi
                   else "not reproduced" if ci.high < lo or ci.low > hi else "inconclusive")
    reason = f"95% CI [{ci.low:.4g}, {ci.high:.4g}] over {ci.n} seeds vs expected {claim.expectation()}"
    return Verdict(claim, verdict, reason, ci, per_seed, method_mean, base_mean)
