"""Collect a paper's trial results and turn its claims into verdicts (``claims.json``)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from repro import paths
from repro.claims import VERDICTS, judge
from repro.errors import ReproError
from repro.files import write_json


def load_trials(paper: str, scale: str, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """Every trial JSON the paper's experiments at *scale* declare; a missing one is an error."""
    from repro.registry import get_paper

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


def measurements(trials: list[dict[str, Any]], experiment: str, metric: str,
                 methods: set[str]) -> dict[str, dict[int, float]]:
    """``out[method][seed]`` = the summary *metric* of each trial of *methods* in *experiment*."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for t in trials:
        if t["experiment"] == experiment and t["method"] in methods:
            value = t["summary"].get(metric)
            if value is None:
                raise ReproError(
                    f"trial {t['experiment']}/{t['method']}/seed{t['seed']} has no summary metric {metric!r}; "
                    f"available: {', '.join(sorted(t['summary']))}"
                )
            out[t["method"]][int(t["seed"])] = float(value)
    return out


def evaluate(paper: str, scale: str, seeds: list[int]) -> dict[str, Any]:
    from repro.registry import get_paper

    p = get_paper(paper)
    trials = load_trials(paper, scale, seeds)
    results = {}
    for claim in p.claims_at(scale):
        methods = {m for m in (claim.method, claim.baseline) if m}
        data = {} if claim.not_run else measurements(trials, claim.experiment, claim.metric, methods)
        results[claim.id] = judge(claim, data).as_dict()
    counts = Counter(r["verdict"] for r in results.values())
    return {
        "paper": paper,
        "scale": scale,
        "seeds": seeds,
        "summary": {v: counts.get(v, 0) for v in VERDICTS},
        "claims": results,
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

