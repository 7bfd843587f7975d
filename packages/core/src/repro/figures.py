"""Figures: learning curves of one run (MLflow artifact) and method-vs-baseline curves (report)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: pipeline jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from repro.metrics import higher_is_better  # noqa: E402


def _use_log(values: list[float]) -> bool:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return arr.size > 0 and bool((arr > 0).all()) and arr.max() / max(arr.min(), 1e-300) > 20


def _wide_count_axis(values: list[float]) -> bool:
    """Epoch counts from 0 to thousands: a symlog axis keeps short runs (10s of steps) visible."""
    arr = np.asarray(values, dtype=float)
    return arr.size > 0 and arr.min() >= 0 and arr.max() > 200


def plot_single_run(history: list[dict[str, float]], quality: str, out: Path, title: str = "") -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    times = [r["train_time_s"] for r in history]
    values = [r[quality] for r in history]
    for ax, x, label in ((axes[0], epochs, "epoch"), (axes[1], times, "training time [s]")):
        ax.plot(x, values, marker="." if len(x) < 50 else None)
        ax.set_xlabel(label)
        ax.set_ylabel(quality)
        if _use_log(values):
            ax.set_yscale("log")
    fig.suptitle(title)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def mean_curves(trials: list[dict[str, Any]], column: str) -> dict[str, dict[str, np.ndarray]]:
    """Per method: epochs present in every seed, with mean/std of *column* and mean training time."""
    by_method: dict[str, list[list[dict[str, float]]]] = defaultdict(list)
    for t in trials:
        by_method[t["method"]].append([r for r in t["history"] if column in r])
    curves = {}
    for method, histories in by_method.items():
        common = set.intersection(*(set(r["epoch"] for r in h) for h in histories)) if histories else set()
        epochs = np.array(sorted(common))
        if epochs.size == 0:
            continue
        vals = np.array([[next(r[column] for r in h if r["epoch"] == e) for e in epochs] for h in histories])
        times = np.array([[next(r["train_time_s"] for r in h if r["epoch"] == e) for e in epochs] for h in histories])
        curves[method] = {"epoch": epochs, "mean": vals.mean(0), "std": vals.std(0), "time": times.mean(0)}
    return curves


def plot_comparison(trials: list[dict[str, Any]], column: str, out: Path, title: str,
                    target: float | None = None) -> Path | None:
    """*column* vs epochs and vs training time, mean over seeds (band: ±1 std), every method."""
    curves = mean_curves(trials, column)
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    all_vals = [v for c in curves.values() for v in c["mean"]]
    for method, c in sorted(curves.items()):
        for ax, x in ((axes[0], c["epoch"]), (axes[1], c["time"])):
            (line,) = ax.plot(x, c["mean"], label=method, marker="o" if len(x) < 30 else None, ms=3)
            ax.fill_between(x, c["mean"] - c["std"], c["mean"] + c["std"], color=line.get_color(), alpha=0.2)
    for ax, label in ((axes[0], "epochs / assimilation steps"), (axes[1], "training time [s] (evaluation excluded)")):
        ax.set_xlabel(label)
        ax.set_ylabel(column)
        if ax is axes[0] and _wide_count_axis([x for c in curves.values() for x in c["epoch"]]):
            ax.set_xscale("symlog", linthresh=10)
        elif ax is axes[1] and _use_log([x for c in curves.values() for x in c["time"]]):
            ax.set_xscale("log")
        if _use_log(all_vals):
            ax.set_yscale("log")
        if target is not None:
            ax.axhline(target, color="grey", ls="--", lw=0.8, label="target")
        ax.grid(alpha=0.3)
    try:
        better = "higher is better" if higher_is_better(column) else "lower is better"
    except Exception:  # an extra curve (e.g. ensemble spread) is not a quality metric
        better = ""
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}" + (f" ({better})" if better else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_profiles(curves: dict[str, tuple[list[float], list[float], float]], out: Path, title: str,
                  highlight: str = "") -> Path:
    """Performance profiles rho(tau), one step curve per entrant (label: entrant and score),
    best score first; *highlight* (the baseline) drawn thick and black."""
    fig, ax = plt.subplots(figsize=(10, 5.2), constrained_layout=True)
    ranked = sorted(curves.items(), key=lambda kv: (-kv[1][2], kv[0]))
    cmap = plt.get_cmap("tab20")
    for k, (name, (grid, rho, score)) in enumerate(ranked):
        style = {"color": "black", "lw": 2.6, "zorder": 5} if name == highlight else \
            {"color": cmap(k % 20), "lw": 1.4, "ls": ("-", "--", ":", "-.")[(k // 20) % 4]}
        # small vertical offsets keep entrants with identical profiles distinguishable
        ax.step(grid, [r + 0.004 * (k % 7) for r in rho], where="post", label=f"{name} ({score:.2f})", **style)
    ax.set_xlabel("τ (time-to-target within τ× of the best entrant)")
    ax.set_ylabel("ρ(τ): fraction of workloads")
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlim(grid[0] if curves else 1, grid[-1] if curves else 4)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 if len(curves) <= 24 else 2,
              title="entrant (score)", title_fontsize=8)
    ax.set_title(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_speedups(bars: list[tuple[str, float, float, float, int]], out: Path, title: str) -> Path:
    """Horizontal bars: speed-up (mean, CI low, CI high) per entrant; 1x marked; misses annotated."""
    finite = [b for b in bars if np.isfinite(b[1])]
    fig, ax = plt.subplots(figsize=(8, 0.32 * max(len(bars), 4) + 1.2), constrained_layout=True)
    order = sorted(bars, key=lambda b: (b[1] if np.isfinite(b[1]) else 1e9, b[0]))
    top = max([b[1] for b in finite] + [b[3] for b in finite if np.isfinite(b[3])] + [1.5])
    for y, (name, mean, low, high, misses) in enumerate(order):
        shown = mean if np.isfinite(mean) else top * 1.05
        ax.barh(y, shown, color="#4477aa" if np.isfinite(mean) else "#bbbbbb")
        if np.isfinite(low) and np.isfinite(high) and np.isfinite(mean):
            ax.errorbar(shown, y, xerr=[[max(mean - low, 0)], [max(high - mean, 0)]], color="black", capsize=3, lw=1)
        note = "∞ (baseline missed)" if not np.isfinite(mean) else (f"{misses} missed" if misses else "")
        if note:
            ax.text(shown, y, " " + note, va="center", fontsize=7)
    ax.axvline(1.0, color="crimson", ls="--", lw=1, label="baseline (1×)")
    ax.set_yticks(range(len(order)), [b[0] for b in order], fontsize=7)
    ax.set_xlabel("speed-up in time-to-target vs the board baseline (higher is faster)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
