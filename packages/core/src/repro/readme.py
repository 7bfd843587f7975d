"""README result tables generated from committed reference results — never typed by hand.

``repro results save`` copies a finished run's verdicts (``results/<paper>/<scale>/claims.json``)
and a per-method summary of its trials into ``packages/<paper>/results/<scale>.json``, with the
commit and hardware they came from. ``repro readme`` rewrites every block between markers

    <!-- repro:claims paper=<slug> scale=<scale> -->  ...  <!-- /repro:claims -->
    <!-- repro:methods paper=<slug> scale=<scale> --> ...  <!-- /repro:methods -->
    <!-- repro:summary scale=<scale> -->              ...  <!-- /repro:summary -->

in the root README and the package READMEs from those files; ``repro readme --check`` (run by
the tests) fails when a table differs from what the committed results generate.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from repro import config as cfg
from repro import paths
from repro.errors import ReproError
from repro.evaluate import load_trials, trial_value
from repro.files import read_json_number, write_json
from repro.papers import get_paper, paper_slugs
from repro.stats import mean_ci

MARKER = re.compile(r"(<!-- repro:(claims|methods|summary)((?: [a-z_]+=[A-Za-z0-9_]+)*) -->\n)(.*?)"
                    r"(<!-- /repro:\2 -->)", re.S)
MARKS = {"reproduced": "✔ reproduced", "not reproduced": "✘ not reproduced", "inconclusive": "? inconclusive",
         "by construction": "≡ by construction", "not run": "– not run"}
SUMMARY_ORDER = ("reproduced", "not reproduced", "inconclusive", "by construction", "not run")


def package_dir(paper: str) -> Path:
    """The paper package's folder: the project's own ``packages/<name>`` in a checkout (where
    the READMEs live), else wherever the package is installed."""
    return paths.checkout_dir(get_paper(paper).package_dir)


def reference_path(paper: str, scale: str) -> Path:
    return package_dir(paper) / "results" / f"{scale}.json"


def _method_summary(trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per experiment and method: mean and 95% CI of the numbers the README tables show."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        groups[(t["experiment"], t["method"])].append(t)
    for (exp, method), ts in sorted(groups.items()):
        quality = ts[0]["quality_metric"]
        row: dict[str, Any] = {"n_seeds": len(ts), "quality_metric": quality,
                               "target_metric": ts[0].get("target_metric", quality), "target": ts[0]["target"],
                               "reached": int(sum(t["summary"].get("reached_target", 0) for t in ts))}
        for col in (quality, "train_time_s", "train_cpu_time_s", "time_to_target_cpu_s", "time_to_target_s"):
            vals = [trial_value(t, col) for t in ts]
            finite = [v for v in vals if math.isfinite(v)]
            ci = mean_ci(finite)
            row[col] = {"mean": ci.mean if finite else None, "ci_low": ci.low if len(finite) > 1 else None,
                        "ci_high": ci.high if len(finite) > 1 else None, "n": len(finite)}
        out[exp][method] = row
    return dict(out)


def save_reference(config: dict[str, Any]) -> list[Path]:
    """Write ``packages/<paper>/results/<scale>.json`` for every configured paper from the last run."""
    scale, seeds = config["scale"], cfg.seeds(config)
    written = []
    for paper in config["papers"]:
        claims_file = paths.claims_path(paper, scale)
        if not claims_file.is_file():
            raise ReproError(f"{paths.rel(claims_file)} is missing; run the pipeline first")
        claims = json.loads(claims_file.read_text())
        if claims["seeds"] != seeds:
            raise ReproError(f"{paths.rel(claims_file)} has seeds {claims['seeds']}, the config {seeds}")
        trials = load_trials(paper, scale, seeds)
        doc = {
            "paper": paper, "scale": scale, "seeds": seeds, "provenance": claims.get("provenance", {}),
            "summary": claims["summary"],
            "claims": {cid: {k: c[k] for k in ("statement", "paper_value", "quantity", "expectation", "verdict",
                                               "mean", "ci_low", "ci_high", "n_seeds", "misses",
                                               "seeds_to_decide", "holds")}
                       for cid, c in claims["claims"].items()},
            "methods": _method_summary(trials),
        }
        written.append(write_json(doc, reference_path(paper, scale)))
    return written


def _load(paper: str, scale: str) -> dict[str, Any]:
    path = reference_path(paper, scale)
    if not path.is_file():
        raise ReproError(f"{path} is missing: run the pipeline and `repro results save` to create it")
    return json.loads(path.read_text())


def _num(v: Any) -> str:
    x = read_json_number(v)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "n/a" if math.isnan(x) else f"{x:.3g}"


def _ci(c: dict[str, Any]) -> str:
    if c.get("mean") is None:
        return "—"
    if c.get("ci_low") is None:
        return _num(c["mean"])
    return f"{_num(c['mean'])} [{_num(c['ci_low'])}, {_num(c['ci_high'])}]"


def _provenance(doc: dict[str, Any]) -> str:
    p = doc.get("provenance", {})
    commit = str(p.get("git_commit", "unknown"))[:10] + (" + local changes" if p.get("git_dirty") == "true" else "")
    return (f"Generated by `repro readme` from `packages/{doc['paper']}/results/{doc['scale']}.json`: "
            f"{doc['scale']} scale, {len(doc['seeds'])} seeds, commit `{commit}`, {p.get('device', '?')} "
            f"({p.get('cpu_count', '?')} cores, {p.get('torch_threads', '?')} torch thread(s) per trial).")


def claims_table(paper: str, scale: str) -> str:
    doc = _load(paper, scale)
    lines = ["| claim | paper | ours: mean [95% CI] | expected | verdict |", "|---|---|---|---|---|"]
    for cid, c in doc["claims"].items():
        verdict = MARKS[c["verdict"]]
        if c["verdict"] == "by construction" and c.get("holds") is not None:
            verdict += " (holds)" if c["holds"] else " (fails)"
        misses = ", ".join(f"{m} missed {n}" for m, n in (c.get("misses") or {}).items() if n)
        if misses:
            verdict += f"; {misses}"
        if c.get("seeds_to_decide"):
            verdict += f"; ~{c['seeds_to_decide']} seeds would decide"
        ours = "—" if c["verdict"] == "not run" else f"`{c['quantity']}` = {_ci(c)}"
        lines.append(f"| `{cid}` | {c['paper_value']} | {ours} | {c['expectation']} | {verdict} |")
    return "\n".join(lines) + "\n\n" + _provenance(doc) + "\n"


def methods_table(paper: str, scale: str) -> str:
    doc = _load(paper, scale)
    lines = ["| experiment | method | test quality | train time s (wall) | train CPU s | CPU s to target (reached) |",
             "|---|---|---|---|---|---|"]
    for exp, methods in doc["methods"].items():
        for method, row in methods.items():
            q = row["quality_metric"]
            lines.append(f"| {exp} | {method} | {q} {_ci(row[q])} | {_ci(row['train_time_s'])} | "
                         f"{_ci(row['train_cpu_time_s'])} | {_ci(row['time_to_target_cpu_s'])} "
                         f"({row['reached']}/{row['n_seeds']}) |")
    return "\n".join(lines) + "\n\nMeans with 95% CIs over seeds; time to target on the validation split.\n"


def _cite(authors: str) -> str:
    """"Zhang et al." / "Safayenikoo & Akturk" from a comma-separated author list."""
    surnames = [a.split()[-1] for a in authors.split(",") if a.strip()]
    return " & ".join(surnames) if len(surnames) <= 2 else f"{surnames[0]} et al."


def summary_table(scale: str) -> str:
    lines = ["| paper | package | verdicts (" + scale + " scale, committed reference run) |", "|---|---|---|"]
    for slug in paper_slugs():
        if not reference_path(slug, scale).is_file():
            continue
        doc, paper = _load(slug, scale), get_paper(slug)
        counts = " · ".join(f"{MARKS[v]}: {doc['summary'][v]}" for v in SUMMARY_ORDER if doc["summary"].get(v))
        lines.append(f"| {_cite(paper.authors)}, *{paper.title}* ({paper.reference}) | "
                     f"[`packages/{slug}`](packages/{slug}/README.md) | {counts} |")
    return "\n".join(lines) + "\n"


def render(kind: str, attrs: dict[str, str]) -> str:
    scale = attrs.get("scale", "smoke")
    if kind == "summary":
        return summary_table(scale)
    if "paper" not in attrs:
        raise ReproError(f"README marker repro:{kind} needs paper=<slug>")
    return claims_table(attrs["paper"], scale) if kind == "claims" else methods_table(attrs["paper"], scale)


def update_text(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        attrs = dict(a.split("=", 1) for a in m.group(3).split())
        return m.group(1) + render(m.group(2), attrs) + m.group(5)

    return MARKER.sub(sub, text)


def readme_files() -> list[Path]:
    root = paths.project_root()
    return [root / "README.md", *sorted((root / "packages").glob("*/README.md"))]


def update_readmes(check: bool = False) -> list[str]:
    """Regenerate the marked tables; return the READMEs that changed (with *check*: that would change)."""
    changed = []
    for path in readme_files():
        if not path.is_file():
            continue
        text = path.read_text()
        new = update_text(text)
        if new != text:
            changed.append(paths.rel(path))
            if not check:
                path.write_text(new)
    return changed
