"""Collect a paper's trial results and turn its claims into verdicts (``claims.json``)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from repro import environment, paths
from repro.claims import VERDICTS, Claim, judge
from repro.errors import ReproError
from repro.files import write_json
from repro.papers import get_paper


def load_trials(paper: str, scale: str, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """Every trial JSON the paper's experiments at *scale* declare; a missing one is an error."""
    p = get_paper(paper)
    trials, missing = [], []
    for exp in p.experiments_at(scale).values():
        for method in exp.methods:
            for seed in seeds if seeds is not None else []:
                path = paths.trial_path(paper, scale, exp.name, method, seed)
                if not path.is_file():
                    missing.append(paths.rel(path))
                    continue
                trials.append(json.loads(path.read_text()))
    if missing:
        raise ReproError(f"{len(missing)} trial result(s) missing, e.g. {missing[0]}; run the pipeline first")
    return trials


def trial_value(trial: dict[str, Any], metric: str) -> float:
    """A trial's summary *metric*: ``inf`` for a to-target quantity of a run that missed the
    target (AlgoPerf: infinite time within the budget), ``nan`` where it is not recorded."""
    summary = trial["summary"]
    value = summary.get(metric)
    if value is None:
        if "_to_target" in metric and summary.get("reached_target") == 0:
            return math.inf
        return math.nan
    return float(value)


def measurements(trials: list[dict[str, Any]], claim: Claim) -> dict[str, dict[str, dict[int, float]]]:
    """``out[experiment][method][seed]`` = the claim's metric for each trial the claim reads."""
    methods = {m for m in (claim.method, claim.baseline) if m}
    exps = set(claim.experiment_names)
    read = [t for t in trials if t["experiment"] in exps and t["method"] in methods]
    if read and not any(claim.metric in t["summary"] for t in read):  # a misnamed metric, not a miss
        raise ReproError(f"claim {claim.id!r}: no trial records the summary metric {claim.metric!r}; "
                         f"available: {', '.join(sorted(read[0]['summary']))}")
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for t in read:
        out[t["experiment"]][t["method"]][int(t["seed"])] = trial_value(t, claim.metric)
    return out


def evaluate(paper: str, scale: str, seeds: list[int]) -> dict[str, Any]:
    p = get_paper(paper)
    trials = load_trials(paper, scale, seeds)
    results = {}
    for claim in p.claims_at(scale):
        data = {} if claim.not_run else measurements(trials, claim)
        results[claim.id] = judge(claim, data).as_dict()
    counts = Counter(r["verdict"] for r in results.values())
    env = trials[0]["environment"] if trials else {}
    return {
        "paper": paper,
        "scale": scale,
        "seeds": seeds,
        "summary": {v: counts.get(v, 0) for v in VERDICTS},
        "claims": results,
        # Where these verdicts come from: the commit and the machine of the trials.
        "provenance": {
            "git_commit": env.get("git_commit", environment.git_state()["git_commit"]),
            "git_dirty": env.get("git_dirty", "unknown"),
            "device": trials[0]["device"] if trials else environment.device_name(environment.select_device()),
            "cpu": env.get("cpu", ""),
            "cpu_count": env.get("cpu_count", ""),
            "torch_threads": trials[0].get("torch_threads") if trials else None,
        },
    }


NUMBERS = ("mean", "ci_low", "ci_high", "n_seeds", "method_mean", "baseline_mean", "verdict")


def write_claims(paper: str, scale: str, seeds: list[int]) -> Path:
    """Write ``claims.json`` (everything the report needs) and ``metrics.json`` (the numbers,
    for ``dvc metrics show`` / ``dvc metrics diff``)."""
    report = evaluate(paper, scale, seeds)
    metrics = {
        "summary": report["summary"],
        "claims": {cid: {k: c[k] for k in NUMBERS} for cid, c in report["claims"].items()},
    }
    write_json(metrics, paths.metrics_path(paper, scale))
    return write_json(report, paths.claims_path(paper, scale))
