"""Per-paper reports (Markdown + self-contained HTML) and the index page across papers.

Every number in a report is read from the trial results and ``claims.json`` of the run that
produced them; nothing here is typed in by hand.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import markdown

from repro import environment, paths, performance, tracking
from repro.errors import ReproError
from repro.evaluate import load_trials
from repro.papers import get_paper
from repro.figures import plot_comparison
from repro.files import read_json_number, write_json, write_text
from repro.stats import format_ci, mean_ci

# Glyphs every common font has (emoji fonts are often missing on servers and in CI browsers).
VERDICT_MARK = {"reproduced": "✔ reproduced", "not reproduced": "✘ not reproduced",
                "inconclusive": "? inconclusive", "by construction": "≡ by construction", "not run": "– not run"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
vertical-align:top}th{background:#f3f3f3}img{max-width:100%}code{background:#f5f5f5;padding:0 .2em}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _ci_cell(c: dict[str, Any]) -> str:
    if c["mean"] is None:
        return "n/a"
    lo, hi = read_json_number(c["ci_low"]), read_json_number(c["ci_high"])
    return f"{_fmt(c['mean'])} [{_fmt(lo)}, {_fmt(hi)}] (n={c['n_seeds']})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _method_table(trials: list[dict[str, Any]], quality: str, extra: tuple[str, ...]) -> str:
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        by_method[t["method"]].append(t["summary"])
    cols = [quality, *(k for k in sorted({k for s in trials for k in s["summary"]})
                       if k.startswith("test_") and k != quality),
            "train_time_s", "train_cpu_time_s", "time_to_target_s", "forward_evals", *extra]
    rows = []
    for method, sums in sorted(by_method.items()):
        row = [method]
        for col in cols:
            vals = [read_json_number(s.get(col)) for s in sums if col in s]
            finite = [v for v in vals if math.isfinite(v)]
            cell = format_ci(mean_ci(finite)) if finite else "n/a"
            if col == "time_to_target_s":
                cell += f" ({len(finite)}/{len(sums)} reached)"
            row.append(cell)
        rows.append(row)
    return _table(["method", *cols], rows)


def build_report(paper_slug: str, scale: str, seeds: list[int], config: dict[str, Any]) -> Path:
    """Write ``reports/<paper>/{index.md,index.html,summary.json,figures/*.png}``."""
    paper = get_paper(paper_slug)
    claims_file = paths.claims_path(paper_slug, scale)
    if not claims_file.is_file():
        raise ReproError(f"{paths.rel(claims_file)} is missing; run `repro evaluate {paper_slug}` first")
    claims = json.loads(claims_file.read_text())
    if claims.get("scale") != scale or claims.get("seeds") != list(seeds):
        raise ReproError(f"{paths.rel(claims_file)} was evaluated for scale {claims.get('scale')!r} with seeds "
                         f"{claims.get('seeds')}, not {scale!r} with {list(seeds)}; run `repro evaluate` again")
    trials = load_trials(paper_slug, scale, seeds)
    unlogged = [paths.rel(paths.trial_path(paper_slug, scale, t["experiment"], t["method"], t["seed"]))
                for t in trials if tracking.is_unlogged(t)]
    if unlogged:  # a report links every trial's MLflow run: they must all be there
        raise ReproError(f"{len(unlogged)} trial result(s) did not reach MLflow (the tracking store failed when "
                         f"they ended): {', '.join(unlogged)}; run `repro tracking relog` once the store is back")
    out_dir = paths.reports_dir(paper_slug)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()

    md: list[str] = [
        f"# {paper.title}",
        f"{paper.authors} — {paper.reference} — <{paper.url}>",
        "",
        paper.summary,
        "",
        f"**Scale:** `{scale}` · **seeds:** {len(seeds)} · **generated:** "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · **device:** {trials[0]['device']}",
        *_performance_lines(trials),
        "",
        "## Verdicts",
        "",
        " · ".join(f"{VERDICT_MARK[v]}: {n}" for v, n in claims["summary"].items() if n),
        "",
        "Our value is the mean of the claim's quantity over seeds with its 95% confidence interval "
        "(Student t); comparisons are paired by seed (method and baseline ran with the same seeds "
        "on the same machine in this run). A seed that never reached the target counts as infinite "
        "time to target (AlgoPerf); the verdict says how many missed. \"By construction\" marks a "
        "quantity the configuration fixes (an accounting identity): it is shown, never counted as reproduced.",
        "",
    ]
    rows = []
    for cid, c in claims["claims"].items():
        rows.append([f"**{cid}**: {c['statement']}", c["source"], c["paper_value"],
                     f"`{c['quantity']}` = {_ci_cell(c)}", c["expectation"], VERDICT_MARK[c["verdict"]],
                     ", ".join(c["claim"]["scales"])])
    md += [_table(["claim", "source", "paper", "ours (mean [95% CI])", "expected", "verdict", "scales"], rows), ""]
    md += ["<details><summary>Why each verdict</summary>", ""]
    md += [f"- **{cid}** — {c['reason']}" for cid, c in claims["claims"].items()]
    md += ["", "</details>", ""]

    for exp in paper.experiments_at(scale).values():
        exp_trials = [t for t in trials if t["experiment"] == exp.name]
        quality = exp_trials[0]["quality_metric"]
        target_metric = exp_trials[0].get("target_metric", quality)
        md += [f"## Experiment `{exp.name}`", "", exp.description, "",
               f"Workload `{exp_trials[0]['workload']}` (dataset `{exp_trials[0]['dataset']}`, "
               f"target {target_metric} {'≥' if quality.endswith(('accuracy', 'r2')) else '≤'} "
               f"{exp_trials[0]['target']} on the validation split; test numbers are reported, never used "
               f"to steer). Mean ± 95% CI half-width over seeds:", "",
               _method_table(exp_trials, quality, ()), ""]
        for column in (target_metric, quality, *paper.report_curves):
            if not any(column in r for t in exp_trials for r in t["history"]):
                continue
            fig = plot_comparison(exp_trials, column, fig_dir / f"{exp.name}_{column}.png",
                                  title=f"{exp.name}: {column}",
                                  target=exp_trials[0]["target"] if column == target_metric else None)
            if fig is not None:
                md += [f"![{exp.name} {column}](figures/{fig.name})", ""]
        md += ["<details><summary>Hyper-parameters</summary>", ""]
        md += [f"- `{m}`: `{json.dumps(paper.trial_hparams(scale, exp.name, m), sort_keys=True)}`"
               for m in exp.methods]
        md += ["", "</details>", ""]

    if paper.notes:
        md += ["## What has not been checked against the paper", "", paper.notes, ""]

    env = trials[0]["environment"]
    checksums = sorted({(t["dataset"], t["dataset_sha256"]) for t in trials})
    md += ["## Environment", "",
           _table(["", ""], [
               ["commit", f"`{env['git_commit']}`" + (" (uncommitted changes)" if env["git_dirty"] == "true" else "")],
               ["hardware", f"{env['cpu']} ({env['cpu_count']} cores)" + (f"; {env['gpu']}" if "gpu" in env else "")],
               ["platform", env["platform"]],
               ["python", env["python"]],
               *[[k, v] for k, v in sorted(env["versions"].items())],
               *[[f"data `{name}` sha256", f"`{sha}`"] for name, sha in checksums],
           ]), ""]
    store = tracking.public_uri(tracking.tracking_uri(config))
    browse = (f"open {store}" if store.startswith(("http://", "https://"))
              else f"`uv run mlflow ui --backend-store-uri {store if '…' not in store else '...'}` (binds 127.0.0.1)")
    md += ["## MLflow runs", "",
           f"Tracking store: `{store}` · experiment `{paper_slug}` · browse: {browse}.", "",
           _table(["experiment", "method", "seed", "run id"],
                  [[t["experiment"], t["method"], str(t["seed"]), f"`{t['mlflow_run_id']}`"]
                   for t in sorted(trials, key=lambda t: (t["experiment"], t["method"], t["seed"]))]), ""]

    parent, exp_id = tracking.log_reproduction(
        paper_slug, scale, claims, [t["mlflow_run_id"] for t in trials],
        {**environment.git_state(), **tracking.source_tags(environment.git_state()["git_commit"],
                                                            f"repro report {paper_slug}")},
        config, artifact=claims_file)
    md.insert(md.index("## MLflow runs") + 2,
              f"Reproduction (parent) run: `{parent}` — every trial run below is filed under it. In the UI "
              f"(`uv run mlflow ui --backend-store-uri ...`, http://127.0.0.1:5000): "
              f"`{tracking.ui_path(exp_id, parent)}`.\n")
    text = "\n".join(md)
    write_text(text, out_dir / "index.md")
    write_text(to_html(text, paper.title, out_dir), out_dir / "index.html")
    write_json({"paper": paper_slug, "title": paper.title, "scale": scale, "summary": claims["summary"],
                "n_claims": len(claims["claims"])}, out_dir / "summary.json")
    return out_dir


def to_html(md_text: str, title: str, base_dir: Path) -> str:
    """Render Markdown to one HTML file with every figure embedded (renders offline)."""
    body = markdown.markdown(md_text, extensions=["tables", "md_in_html"])

    def embed(match: re.Match[str]) -> str:
        src = match.group(1)
        data = base64.b64encode((base_dir / src).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


INDEX_ORDER = ("reproduced", "not reproduced", "inconclusive", "not run")


def build_index(papers: list[str], scale: str, leaderboard: bool = False) -> Path:
    """``reports/index.{md,html}``: exactly *papers*, each from its report of this *scale*;
    *leaderboard*: with a link to the cross-paper board (``reports/leaderboard.md``) and its top entrants.

    Claims that hold "by construction" are listed in their own column and never counted as
    reproduced.
    """
    rows = []
    for slug in papers:
        summary_file = paths.reports_dir(slug) / "summary.json"
        if not summary_file.is_file():
            raise ReproError(f"{paths.rel(summary_file)} is missing; run `repro report {slug}` first")
        s = json.loads(summary_file.read_text())
        if s.get("scale") != scale:
            raise ReproError(f"{paths.rel(summary_file)} is a {s.get('scale')!r} report, not {scale!r}; "
                             f"run `repro report {slug} --scale {scale}` first")
        counts = " · ".join(f"{VERDICT_MARK[v]}: {s['summary'].get(v, 0)}" for v in INDEX_ORDER
                            if s["summary"].get(v))
        rows.append([f"[{get_paper(slug).title}]({slug}/index.html)", f"`{slug}`", s["scale"], counts or "—",
                     str(s["summary"].get("by construction", 0))])
    board: list[str] = []
    if leaderboard:
        summary_file = paths.reports_dir() / "leaderboard" / "summary.json"
        if not summary_file.is_file():
            raise ReproError(f"{paths.rel(summary_file)} is missing; run `repro leaderboard report` first")
        b = json.loads(summary_file.read_text())
        if b.get("scale") != scale:
            raise ReproError(f"{paths.rel(summary_file)} is a {b.get('scale')!r} board, not {scale!r}")
        top = sorted(b["scores"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        board = ["## Which method to use: the leaderboard", "",
                 f"[Every method on shared workloads]({'leaderboard.html'}) ({', '.join(b['workloads'])}; "
                 f"{scale} scale): time-to-target against one strong baseline, performance profiles. "
                 "Top performance-profile scores: " + ", ".join(f"`{i}` {v:.2f}" for i, v in top) + ".", ""]
    hw = environment.hardware()
    text = "\n".join([
        "# Reproduction reports", "",
        "Does each paper's headline claim hold, measured fairly against a strong baseline on this hardware?", "",
        _table(["paper", "slug", "scale", "verdicts", "by construction (not counted)"], rows), "",
        *board,
        f"Hardware: {hw['cpu']} ({hw['cpu_count']} cores)" + (f"; {hw['gpu']}" if "gpu" in hw else "")
        + f" · commit `{environment.git_state()['git_commit'][:12]}`", "",
    ])
    out = paths.reports_dir()
    write_text(text.replace("/index.html)", "/index.md)").replace("(leaderboard.html)", "(leaderboard.md)"),
               out / "index.md")
    write_text(to_html(text, "Reproduction reports", out), out / "index.html")
    return out / "index.html"


def _performance_lines(trials: list[dict[str, Any]]) -> list[str]:
    """The Trainer's GPU switches of the trials (``repro.performance``), where any trial ran with
    other than the CPU's (deterministic fp32, no warm-up): the deterministic/fast mode a timing ran in."""
    modes = sorted({json.dumps(t["performance"], sort_keys=True) for t in trials if t.get("performance")})
    if not modes or modes == [json.dumps(performance.Performance().record(), sort_keys=True)]:
        return []
    text = []
    for mode in map(json.loads, modes):
        switches = [mode["precision"], "deterministic" if mode["deterministic"] else "fast (non-deterministic, "
                    "cudnn.benchmark)"] + [k for k in ("tf32", "channels_last", "compile") if mode[k]]
        text.append(", ".join(switches) + f", {mode['warmup_steps']} warm-up steps off the clock")
    return ["", "**Training mode:** " + " · ".join(text) + " (`repro.performance`)"]
