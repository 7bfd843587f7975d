"""The cross-paper leaderboard: every training method of every selected paper on shared workloads.

Each paper compares itself with a baseline and settings it chose. The board puts every method on
the same *board workloads* with one protocol (AlgoPerf's, adapted):

- **Same target, same budget.** A board workload is a core workload with a validation target and
  an epoch budget that hold for every entrant (``BoardWorkload``). Evaluation runs after every
  epoch, off the training clock unless the method decides on it (``Hook.decides_on_validation``).
- **One strong baseline** (``core/baseline``): the core's gradient descent with the board's
  optimizer settings for that workload. Every gradient method starts from the same settings and
  changes only what its ``Method.on_workload`` declares (its own hyper-parameters for that
  workload family); it may not change the budget (``repro.paper.PROTOCOL_KEYS``). A method that
  cannot run there says why (``repro.paper.NotApplicable``) and is listed as not applicable. A
  method that is the core's gradient descent itself (``Method.plain``) with the baseline's settings
  there is the same computation as the baseline: listed as such, not run a second time.
- **Paired, in one process.** All entrants and seeds of a workload run in one job, seed by seed,
  the entrant order rotated per seed, after an untimed warm-up, so they share machine state.
- **Final quality on the test split**, scored once per trial after its last evaluation (the
  board reports no test learning curves); the validation split is scored at every evaluation.
- **Misses are infinite** (AlgoPerf): a seed that does not reach the target within the budget
  has infinite time-to-target; one such seed makes the entrant's mean infinite.

Scoring (``score_workload`` / ``performance_profile``) is pure; ``train_workload`` writes
``results/leaderboard/<scale>/<workload>.json``; ``build_board`` writes
``reports/leaderboard.{md,html}`` with tables, the performance-profile figure and speed-up plots,
and logs the board to the MLflow experiment ``leaderboard``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from repro import catalog, environment, fast_cifar, paths, tracking
from repro.errors import ReproError, unknown
from repro.figures import plot_profiles, plot_speedups
from repro.files import write_json, write_text
from repro.paper import Method, NotApplicable
from repro.papers import get_paper, paper_slugs
from repro.registry import Registry
from repro.report import to_html
from repro.run import execute, make_context
from repro.scales import check_scale
from repro.stats import Interval, format_ci, mean_ci
from repro.trainer import gradient_method, split_gradient_hparams
from repro.workloads import Workload

EXPERIMENT = "leaderboard"  # the MLflow experiment of every board run
BASELINE = "core/baseline"
TAUS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)  # the profile's tabulated points; the score integrates 1..TAU_MAX
TAU_MAX = 4.0


@dataclass(frozen=True)
class BoardWorkload:
    """A shared workload: a core workload with the board's target, budget and baseline settings.

    Attributes:
        workload: the core workload's registry key (data, model, loss, metrics).
        target: validation-split quality every entrant must reach (``val_<quality>``).
        epochs: the budget, the same for every entrant.
        baseline: the ``GradientConfig`` settings (optimizer, lr, batch size, ...) every gradient
            entrant starts from; also the strong baseline's, unless *recipe* names another.
        why: where the baseline settings come from.
        recipe: "" (the strong baseline is the core's gradient descent with *baseline*) or a key of
            ``RECIPES``: a core training recipe that is the strong baseline on this workload (e.g.
            ``fast_cifar``, the airbench94-style recipe); the entrants still start from *baseline*.
    """

    name: str
    workload: str
    scale: str
    target: float
    epochs: int
    baseline: Mapping[str, Any]
    description: str
    why: str
    recipe: str = ""

    def build(self) -> Workload:
        """The workload every entrant trains on: the core one with the board's target and budget."""
        return dataclasses.replace(catalog.get_workload(self.workload), target=self.target, max_epochs=self.epochs)


BOARD: Registry[BoardWorkload] = Registry("leaderboard workload")
# Core recipes that can be a board workload's strong baseline (``BoardWorkload.recipe``)
RECIPES: dict[str, Method] = {"fast_cifar": fast_cifar.METHOD}


def register_board_workload(bw: BoardWorkload) -> BoardWorkload:
    check_scale(bw.scale)
    if bw.recipe and bw.recipe not in RECIPES:
        raise unknown(f"recipe of leaderboard workload {bw.name!r}", bw.recipe, RECIPES)
    return BOARD.register(bw.name, bw)


# Smoke: the two scikit-learn digits workloads (about a second per trial on a laptop CPU). The
# baseline settings were picked on the validation split when the board was declared (2 seeds
# each; Adam at lr 1e-3, 3e-3, 1e-2 and SGD lr 0.05 with momentum 0.9, batch 64): Adam 1e-2 reached
# val accuracy 0.95 on digits_mlp first (epoch 7 on both seeds; SGD: 9 and 7; Adam 3e-3: 15 and
# 11; Adam 1e-3: not within 30) and was the only one to reach 0.95 on digits_cnn within 20 epochs
# (epochs 19 and 14). The digits_cnn target (0.90) sits below that so the baseline reaches it
# within the 15-epoch budget on every seed (epochs 7-11 in the first board runs).
register_board_workload(BoardWorkload(
    name="digits_mlp", workload="digits_mlp", scale="smoke", target=0.95, epochs=20,
    baseline={"optimizer": "adam", "lr": 1e-2, "batch_size": 64},
    description="scikit-learn digits, 64-64-10 ReLU MLP",
    why="Adam lr 1e-2, batch 64: first to val accuracy 0.95 of Adam lr {1e-3, 3e-3, 1e-2} and SGD 0.05/0.9",
))
register_board_workload(BoardWorkload(
    name="digits_cnn", workload="digits_cnn", scale="smoke", target=0.90, epochs=15,
    baseline={"optimizer": "adam", "lr": 1e-2, "batch_size": 64},
    description="scikit-learn digits (8x8), small CNN (2 conv blocks, 32/64 channels)",
    why="Adam lr 1e-2, batch 64: of Adam lr {1e-3, 3e-3, 1e-2} and SGD 0.05/0.9 the only one to reach val "
        "accuracy 0.95 within 20 epochs; the board's target is 0.90 so it is reached within 15 epochs",
))
# Paper scale: CIFAR-10 ResNet-18 with the standard recipe (SGD 0.1, momentum 0.9, wd 5e-4,
# cosine, batch 128, crop+flip), which reaches ~95% in 200 epochs; the board budget is 50 epochs.
register_board_workload(BoardWorkload(
    name="cifar10_resnet18", workload="cifar10_resnet18", scale="paper", target=0.92, epochs=50,
    baseline={"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "cosine",
              "batch_size": 128},
    description="CIFAR-10, ResNet-18 (CIFAR variant), crop + flip",
    why="the common ResNet-18 CIFAR-10 recipe (SGD 0.1/0.9, wd 5e-4, cosine, batch 128), shortened to 50 epochs",
))
# Paper scale: the fast CIFAR-10 baseline (repro.fast_cifar, airbench94's recipe: 94% in 9.9 epochs)
# is the strong baseline. The other entrants train the same net, data and augmentation with the
# recipe's optimizer in GradientConfig form: SGD with momentum 0.85 at airbench's peak learning
# rate for a mean loss (11.5 / (1 + 1/0.15) = 1.5), its per-step decay (0.0153 / 7.67 per 1024
# examples = weight decay 0.00133 at lr 1.5), batch 1024, a 2-epoch warm-up and cosine decay; what
# they cannot have (Nesterov, the batch-norm bias lr, label smoothing, the EMA, the per-step
# schedule) is the recipe's edge, and visible as such.
register_board_workload(BoardWorkload(
    name="cifar10_fast", workload="cifar10_fast", scale="paper", target=0.94, epochs=10,
    baseline={"optimizer": "sgd", "lr": 1.5, "momentum": 0.85, "weight_decay": 0.00133, "lr_schedule": "cosine",
              "warmup_epochs": 2, "batch_size": 1024},
    description="CIFAR-10, the airbench94 net (whitening + 3 conv groups), flip + translate 2, TTA",
    why="strong baseline: the core's airbench94-style recipe (repro.fast_cifar); entrants start from its "
        "optimizer in GradientConfig form (SGD 1.5/0.85, wd 0.00133, batch 1024, warm-up 2 + cosine)",
    recipe="fast_cifar",
))


def board_workload(name: str, scale: str | None = None) -> BoardWorkload:
    bw = BOARD.get(name)
    if scale is not None and bw.scale != scale:
        raise unknown(f"leaderboard workload at scale {scale!r}", name, board_workloads(scale))
    return bw


def board_workloads(scale: str) -> list[str]:
    return [n for n in BOARD.names() if BOARD.get(n).scale == check_scale(scale)]


def selected_workloads(config: Mapping[str, Any]) -> list[str]:
    """The configured board workloads of the config's scale, each checked (empty: no board)."""
    scale = config["scale"]
    names = list(config["leaderboard"]["workloads"].get(scale, []))
    for n in names:
        if n not in BOARD or BOARD.get(n).scale != scale:
            raise unknown(f"board workload at scale {scale!r} (config key 'leaderboard.workloads.{scale}')", n,
                          board_workloads(scale))
    return names


def board_seeds(config: Mapping[str, Any]) -> list[int]:
    return list(range(config["leaderboard"]["seeds"][config["scale"]]))


# ---------------------------------------------------------------------------------------------
# Entrants
# ---------------------------------------------------------------------------------------------

BOARD_BASELINE = gradient_method("baseline", "the board's strong baseline: the core's gradient descent "
                                 "with the board's optimizer settings for the workload", is_baseline=True)


def baseline_method(bw: BoardWorkload) -> Method:
    """The strong baseline of *bw*: its recipe, or the core's gradient descent with its settings."""
    return RECIPES[bw.recipe] if bw.recipe else BOARD_BASELINE


def baseline_hparams(bw: BoardWorkload) -> dict[str, Any]:
    if bw.recipe:  # the recipe's own settings; the board's budget caps its epochs
        return {"eval_every": 1, "checkpoint_every": 0}
    return {**bw.baseline, **_protocol(bw)}


@dataclass(frozen=True)
class Entrant:
    """One method on one board workload: its hyper-parameters there, or why it cannot run."""

    paper: str
    method: str
    description: str
    hparams: Mapping[str, Any] | None  # None: not applicable
    reason: str = ""
    paper_baseline: bool = False  # the method is its own paper's baseline
    same_as: str = ""  # the id of the entrant whose computation this one is (then it is not run)

    @property
    def id(self) -> str:
        return f"{self.paper}/{self.method}"

    @property
    def applicable(self) -> bool:
        return self.hparams is not None

    @property
    def runs(self) -> bool:
        """Trained on the board: applicable and not the same computation as another entrant."""
        return self.applicable and not self.same_as

    def spec(self, bw: BoardWorkload) -> Method:
        return baseline_method(bw) if self.id == BASELINE else get_paper(self.paper).method(self.method)


def _protocol(bw: BoardWorkload) -> dict[str, Any]:
    return {"epochs": bw.epochs, "eval_every": 1, "checkpoint_every": 0}


def entrant_for(bw: BoardWorkload, paper: str, method: Method) -> Entrant:
    """Set *method* up on *bw*: the board's settings, then the method's own, then its fixed switches."""
    workload = bw.build()
    try:
        setup = method.setup_for(workload)
    except NotApplicable as exc:
        return Entrant(paper, method.name, method.description, None, str(exc), method.is_baseline)
    base = {**bw.baseline, **_protocol(bw)} if method.gradient else {"epochs": bw.epochs}
    # the method's fixed switches define it (e.g. WUS's step schedule): they win over the board's settings
    base = {k: v for k, v in base.items() if k not in method.fixed}
    hparams = method.hparams({**base, **setup}, f"leaderboard setup of {paper}/{method.name} on {bw.name!r}")
    method.validate(hparams)
    same = BASELINE if method.gradient and method.plain and not bw.recipe and _same_gradient(hparams, bw) else ""
    return Entrant(paper, method.name, method.description, hparams, "", method.is_baseline, same)


def _same_gradient(hparams: Mapping[str, Any], bw: BoardWorkload) -> bool:
    """*hparams* resolve to the board baseline's gradient-descent settings on *bw*."""
    mine, _ = split_gradient_hparams(dict(hparams), None, "entrant")
    base, _ = split_gradient_hparams(baseline_hparams(bw), None, BASELINE)
    return mine == base


def entrants(bw: BoardWorkload, papers: Sequence[str], methods: str | Sequence[str] = "all") -> list[Entrant]:
    """The board baseline, then every method of *papers* (``methods``: "all" or ``paper/method``
    ids; an id of an installed paper that is not selected is skipped, so one list serves any
    ``papers`` selection)."""
    wanted = None if methods == "all" else set(methods)
    out = [Entrant("core", "baseline", baseline_method(bw).description, baseline_hparams(bw), paper_baseline=True)]
    known = {BASELINE}
    for slug in papers:
        paper = get_paper(slug)
        for name, method in paper.methods.items():
            known.add(f"{slug}/{name}")
            if wanted is None or f"{slug}/{name}" in wanted:
                out.append(entrant_for(bw, slug, method))
    installed = set(paper_slugs()) - set(papers)
    for m in sorted((wanted or set()) - known):
        if m.split("/", 1)[0] not in installed:
            raise unknown("leaderboard method (config key 'leaderboard.methods')", m, sorted(known))
    return out


# ---------------------------------------------------------------------------------------------
# Running one board workload
# ---------------------------------------------------------------------------------------------

def trial_order(ids: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Seed by seed; within a seed the entrants rotated by the seed's position, so no entrant
    always runs first (or right after a given other one) in the process."""
    order: list[tuple[str, int]] = []
    for k, seed in enumerate(seeds):
        shift = k % max(len(ids), 1)
        order += [(i, seed) for i in list(ids[shift:]) + list(ids[:shift])]
    return order


def _warm_up(bw: BoardWorkload) -> None:
    """One untimed epoch of the baseline: the first trial in a process would otherwise pay for
    lazy initialisation (allocator, kernels, imports) and look slower than the rest."""
    ctx = make_context("core", f"leaderboard:{bw.name}", "warmup", 0, bw.scale, bw.build(),
                       paths.checkpoint_dir() / "leaderboard" / "warmup.pt")
    ctx.progress = False
    BOARD_BASELINE.fit(ctx, {**bw.baseline, "epochs": 1, "eval_every": 1, "checkpoint_every": 0})


def result_path(scale: str, workload: str) -> Path:
    return paths.project_root() / "results" / "leaderboard" / check_scale(scale) / f"{workload}.json"


def train_workload(name: str, scale: str, seeds: Sequence[int], papers: Sequence[str],
                   methods: str | Sequence[str], config: dict[str, Any], progress: bool = True) -> Path:
    """Run every applicable entrant x seed on board workload *name*; write its results JSON last."""
    bw = board_workload(name, scale)
    out = result_path(scale, name)
    out.unlink(missing_ok=True)
    board = entrants(bw, papers, methods)
    runnable = [e for e in board if e.runs]
    by_id = {e.id: e for e in runnable}
    workload = bw.build()
    _warm_up(bw)
    trials: list[dict[str, Any]] = []
    order = trial_order([e.id for e in runnable], seeds)
    for entrant_id, seed in tqdm(order, desc=f"leaderboard {name}", disable=not progress):
        e = by_id[entrant_id]
        ctx = make_context(e.paper, f"leaderboard:{name}", e.method, seed, scale, workload,
                           paths.checkpoint_dir() / "leaderboard" / scale / name / e.paper / e.method / f"seed{seed}.pt")
        ctx.progress = False
        ctx.test_every_eval = False  # the board reports final test quality only
        t0 = time.perf_counter()
        result = execute(ctx, e.spec(bw), dict(e.hparams or {}), config, mlflow_experiment=EXPERIMENT,
                         run_name=f"{name}/{e.id}/seed{seed}", artifacts=False,
                         tags={"leaderboard.workload": name, "leaderboard.entrant": e.id})
        ctx.checkpoint.clear()
        trials.append({"entrant": e.id, "seed": seed, "summary": result["summary"],
                       "mlflow_run_id": result["mlflow_run_id"], "wall_s": time.perf_counter() - t0,
                       **({"mlflow": result["mlflow"]} if "mlflow" in result else {}),
                       "history": [{k: v for k, v in row.items()
                                    if k in ("epoch", "step", "train_time_s", workload.target_metric,
                                             workload.quality_metric)} for row in result["history"]]})
    device = environment.select_device()
    record = {
        "workload": dataclasses.asdict(bw), "scale": scale, "seeds": list(seeds),
        "quality_metric": workload.quality_metric, "target_metric": workload.target_metric,
        "higher_is_better": workload.higher_is_better,
        "entrants": [{"id": e.id, "paper": e.paper, "method": e.method, "description": e.description,
                      "applicable": e.applicable, "reason": e.reason, "hparams": e.hparams,
                      "paper_baseline": e.paper_baseline, "same_as": e.same_as} for e in board],
        "order": [f"{i}/seed{s}" for i, s in order],
        "trials": trials,
        "device": environment.device_name(device), "torch_threads": torch.get_num_threads(),
        "environment": {**environment.git_state(), **environment.hardware(),
                        "versions": environment.package_versions()},
    }
    write_json(record, out)
    return out


# ---------------------------------------------------------------------------------------------
# Scoring (pure)
# ---------------------------------------------------------------------------------------------

def _value(summary: Mapping[str, Any], key: str) -> float:
    """A to-target quantity of one trial; a miss (null/NaN or reached_target 0) is infinite."""
    v = summary.get(key)
    if not summary.get("reached_target") or v is None or (isinstance(v, float) and math.isnan(v)):
        return math.inf
    return float(v)


def _mean(values: Sequence[float]) -> Interval:
    """Mean with a 95% CI; any infinite value makes the mean infinite (AlgoPerf's miss rule)."""
    if any(math.isinf(v) for v in values):
        return Interval(math.inf, math.inf, math.inf, len(values), math.nan)
    return mean_ci(values)


def paired_speedup(baseline: Mapping[int, float], method: Mapping[int, float]) -> tuple[Interval, int]:
    """Per-seed ratio baseline/method of time-to-target, mean and 95% CI over seeds.

    A method miss is speed-up 0; a baseline miss with a method hit is infinite; both missing is
    undefined (left out, counted in the second return value)."""
    ratios, undefined = [], 0
    for seed in sorted(set(baseline) & set(method)):
        b, m = baseline[seed], method[seed]
        if math.isinf(b) and math.isinf(m):
            undefined += 1
        elif math.isinf(m):
            ratios.append(0.0)
        elif math.isinf(b):
            ratios.append(math.inf)
        else:
            ratios.append(b / m if m > 0 else math.inf)
    if not ratios:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan), undefined
    return _mean(ratios), undefined


def score_workload(record: Mapping[str, Any], clock: str = "time_to_target_s") -> list[dict[str, Any]]:
    """One row per entrant of a board workload's results: means and CIs over seeds."""
    per: dict[str, list[dict[str, Any]]] = {}
    for t in record["trials"]:
        per.setdefault(t["entrant"], []).append(t)
    base = {t["seed"]: _value(t["summary"], clock) for t in per.get(BASELINE, [])}
    rows = []
    for e in record["entrants"]:
        row: dict[str, Any] = {"id": e["id"], "paper": e["paper"], "method": e["method"],
                               "applicable": e["applicable"], "reason": e["reason"],
                               "paper_baseline": e.get("paper_baseline", False), "same_as": e.get("same_as", "")}
        trials = per.get(e["id"], [])
        if not e["applicable"] or row["same_as"] or not trials:
            rows.append(row)
            continue
        tt = {t["seed"]: _value(t["summary"], clock) for t in trials}
        speed, undefined = paired_speedup(base, tt)
        row.update(
            seeds=len(trials),
            misses=sum(math.isinf(v) for v in tt.values()),
            time_to_target=_mean(list(tt.values())),
            steps_to_target=_mean([_value(t["summary"], "steps_to_target") for t in trials]),
            instances_to_target=_mean([_value(t["summary"], "instances_to_target") for t in trials]),
            quality=mean_ci([float(t["summary"][record["quality_metric"]]) for t in trials]),
            train_time=mean_ci([float(t["summary"]["train_time_s"]) for t in trials]),
            speedup=speed, speedup_undefined=undefined,
        )
        rows.append(row)
    return rows


def performance_profile(times: Mapping[str, Mapping[str, float]], taus: Iterable[float] = TAUS,
                        tau_max: float = TAU_MAX, points: int = 301) -> dict[str, dict[str, Any]]:
    """AlgoPerf-style performance profiles.

    *times*: ``{workload: {entrant: time}}`` with ``inf`` for a miss or a workload the entrant
    cannot run. Per workload, an entrant's ratio is its time over the best time there; its profile
    ``rho(tau)`` is the fraction of workloads (with at least one finite time) where the ratio is
    <= tau; its score is the mean of ``rho`` over tau in [1, tau_max] (1: best everywhere, 0: never
    within tau_max of the best). Workloads nobody finished are left out (``workloads`` says how many count).
    """
    ids = sorted({i for w in times.values() for i in w})
    counted = {w: ts for w, ts in times.items() if any(math.isfinite(v) for v in ts.values())}
    n = len(counted)
    grid = [1.0 + (tau_max - 1.0) * k / (points - 1) for k in range(points)]
    out: dict[str, dict[str, Any]] = {}
    for i in ids:
        ratios = []
        for ts in counted.values():
            best = min(v for v in ts.values() if math.isfinite(v))
            t = ts.get(i, math.inf)
            ratios.append(t / best if math.isfinite(t) and best > 0 else (1.0 if t == best else math.inf))

        def rho(tau: float) -> float:
            return sum(r <= tau + 1e-12 for r in ratios) / n if n else 0.0

        curve = [rho(t) for t in grid]
        # trapezoid over the uniform grid, normalised by the interval length
        score = (sum(curve) - (curve[0] + curve[-1]) / 2) / (points - 1) if n else 0.0
        out[i] = {"ratios": dict(zip(counted, ratios)), "rho": {str(t): rho(t) for t in taus},
                  "score": score, "curve": curve, "grid": grid}
    return out


# ---------------------------------------------------------------------------------------------
# The board report
# ---------------------------------------------------------------------------------------------

def _fmt_ci(ci: Interval | None, digits: int = 3) -> str:
    if ci is None:
        return "—"
    if math.isinf(ci.mean):
        return "∞ (miss)" if ci.mean > 0 else "-∞"
    return format_ci(ci, digits)


def _fmt_speed(row: Mapping[str, Any]) -> str:
    ci: Interval = row["speedup"]
    if ci.n == 0:
        return "undefined (both missed)"
    if math.isinf(ci.mean):
        return "∞ (baseline missed)"
    text = f"{ci.mean:.2f}×"
    if math.isfinite(ci.low):
        text += f" [{ci.low:.2f}, {ci.high:.2f}]"
    return text + (f" ({row['speedup_undefined']} undefined)" if row["speedup_undefined"] else "")


def _plot_profile(profiles: Mapping[str, Mapping[str, Any]], out: Path, title: str) -> Path:
    return plot_profiles({i: (p["grid"], p["curve"], p["score"]) for i, p in profiles.items()}, out, title,
                         highlight=BASELINE)


def _plot_speedups(workload: str, rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    bars = [(r["id"], r["speedup"].mean, r["speedup"].low, r["speedup"].high, r["misses"])
            for r in rows if r["applicable"] and "speedup" in r and r["speedup"].n]
    return plot_speedups(bars, out, f"{workload}: time-to-target speed-up vs {BASELINE} (95% CI)")


def load_records(scale: str, workloads: Sequence[str]) -> dict[str, dict[str, Any]]:
    records = {}
    for w in workloads:
        f = result_path(scale, w)
        if not f.is_file():
            raise ReproError(f"{paths.rel(f)} is missing; run `repro leaderboard train {w} --scale {scale}` first")
        rec = json.loads(f.read_text())
        if rec.get("scale") != scale:
            raise ReproError(f"{paths.rel(f)} holds a {rec.get('scale')!r} board, not {scale!r}")
        records[w] = rec
    return records


def report_dir() -> Path:
    return paths.reports_dir() / "leaderboard"


def build_board(scale: str, workloads: Sequence[str], config: dict[str, Any]) -> Path:
    """``reports/leaderboard.{md,html}`` (+ figures in ``reports/leaderboard/``) from the board
    results of *workloads*; one MLflow run ``board/<scale>`` in the ``leaderboard`` experiment
    with every score and the files, and every trial run filed under it."""
    if not workloads:
        raise ReproError(f"no leaderboard workloads configured at scale {scale!r} (config key 'leaderboard.workloads')")
    records = load_records(scale, workloads)
    figs = report_dir()
    figs.mkdir(parents=True, exist_ok=True)
    first = next(iter(records.values()))
    env = first["environment"]
    hw = f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores)" + (f"; {env['gpu']}" if env.get("gpu") else "")
    scored = {w: score_workload(r) for w, r in records.items()}
    # an entrant that is the same computation as another is that entrant on the profile, not a second line
    times = {w: {row["id"]: (row["time_to_target"].mean if row.get("time_to_target") else math.inf)
                 for row in rows if not row["same_as"]} for w, rows in scored.items()}
    profiles = performance_profile(times)
    _plot_profile(profiles, figs / "performance_profile.png", f"Performance profiles ({scale}, {len(records)} workloads)")
    lines = [
        f"# Leaderboard: every training method on shared workloads ({scale} scale)", "",
        f"**Hardware:** {hw} · device `{first['device']}` · torch threads {first['torch_threads']} · "
        f"commit `{env.get('git_commit', '?')[:12]}`{' (dirty)' if env.get('git_dirty') == 'true' else ''} · "
        f"seeds {', '.join(map(str, first['seeds']))}", "",
        "**Protocol.** Per workload every entrant has the same validation target and epoch budget; the "
        f"strong baseline `{BASELINE}` is the core's gradient descent with the board's settings, and every "
        "gradient method starts from them and changes only its own hyper-parameters "
        "(`Method.on_workload`). Time-to-target is training wall time until the first evaluation whose "
        "validation quality reaches the target (evaluation off the clock unless the method decides on it); "
        "a seed that misses within the budget counts as infinite time (AlgoPerf), so one miss makes the "
        "mean infinite. Speed-up is the per-seed ratio baseline / method (paired by seed, same process, "
        "entrant order rotated per seed), mean and 95% CI over seeds. Final quality is on the test split, "
        "which steers nothing.", "",
    ]
    if scale == "smoke":
        lines += ["**Smoke scale:** tiny workloads on a CPU, where fixed per-step overheads dominate and "
                  "seconds are short; rankings here need not hold at paper scale or on a GPU. Methods whose "
                  "benefit grows with model size (sparse or approximate kernels) can only lose time here.", ""]
    lines += ["## Performance profiles", "",
              "ρ(τ): fraction of workloads where the entrant's mean time-to-target is within τ× of the best "
              "entrant's; score: mean of ρ over τ ∈ [1, 4] (1 = fastest everywhere). A workload an entrant "
              "cannot run, or misses, counts as never within τ.", "",
              "![performance profile](leaderboard/performance_profile.png)", ""]
    header = ["rank", "entrant", "score"] + [f"ρ({t:g})" for t in TAUS]
    ranked = sorted(profiles.items(), key=lambda kv: (-kv[1]["score"], kv[0]))
    table = [[str(k + 1), f"`{i}`" + (" (board baseline)" if i == BASELINE else ""), f"{p['score']:.3f}"]
             + [f"{p['rho'][str(t)]:.2f}" for t in TAUS] for k, (i, p) in enumerate(ranked)]
    lines += [_md_table(header, table), ""]
    for w, rows in scored.items():
        rec = records[w]
        bw = rec["workload"]
        _plot_speedups(w, rows, figs / f"speedup_{w}.png")
        lines += [f"## `{w}` — {bw['description']}", "",
                  f"Target: {rec['target_metric']} ≥ {bw['target']} within {bw['epochs']} epochs. Baseline "
                  f"settings: `{json.dumps(bw['baseline'])}` ({bw['why']}).", "",
                  f"![speed-ups on {w}](leaderboard/speedup_{w}.png)", ""]
        body = []
        for r in sorted((r for r in rows if r["applicable"] and "time_to_target" in r),
                        key=lambda r: (r["time_to_target"].mean, r["id"])):
            body.append([f"`{r['id']}`" + (" ·" if r["paper_baseline"] else ""),
                         f"{r['seeds'] - r['misses']}/{r['seeds']}", _fmt_ci(r["time_to_target"]), _fmt_speed(r),
                         _fmt_ci(r["steps_to_target"], 4), _fmt_ci(r["instances_to_target"], 4),
                         _fmt_ci(r["quality"]), _fmt_ci(r["train_time"])])
        lines += [_md_table(["entrant", "reached", "time to target (s)", "speed-up vs baseline",
                             "steps to target", "instances to target", f"final {rec['quality_metric']}",
                             "train time (s)"], body), "",
                  "`·` marks a paper's own baseline (a second run of plain training, set up like the board's; "
                  "its spread around 1× shows the noise floor).", ""]
        same = [[f"`{r['id']}`", f"`{r['same_as']}`"] for r in rows if r["same_as"]]
        if same:
            lines += ["The same computation as another entrant (the core's gradient descent with no hooks and the "
                      "same settings), so not run a second time; read that entrant's row:", "",
                      _md_table(["method", "same computation as"], same), ""]
        na = [[f"`{r['id']}`", r["reason"]] for r in rows if not r["applicable"]]
        if na:
            lines += ["Not applicable here:", "", _md_table(["method", "why"], na), ""]
    text = "\n".join(lines)
    md = paths.reports_dir() / "leaderboard.md"
    html_file = paths.reports_dir() / "leaderboard.html"
    summary = {"scale": scale, "workloads": list(records),
               "scores": {i: p["score"] for i, p in profiles.items()},
               "speedups": {w: {r["id"]: r["speedup"].mean for r in rows if r.get("speedup") is not None
                                and r["speedup"].n} for w, rows in scored.items()}}
    write_json(summary, figs / "summary.json")
    run_ids = [t["mlflow_run_id"] for r in records.values() for t in r["trials"]]
    run_id, exp_id = tracking.log_board(scale, summary, run_ids, config, [figs / "summary.json",
                                                                           figs / "performance_profile.png"])
    text += f"\n\nMLflow: experiment `{EXPERIMENT}`, run `board/{scale}` (`{tracking.ui_path(exp_id, run_id)}`).\n"
    write_text(to_html(text, f"Leaderboard ({scale})", paths.reports_dir()), html_file)
    write_text(text, md)  # last: the file the pipeline waits for
    return md


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def describe(scale: str, papers: Sequence[str], methods: str | Sequence[str] = "all",
             workloads: Sequence[str] | None = None) -> str:
    """What the board would run: per workload, each entrant's hyper-parameters or why not."""
    out = []
    for w in workloads or board_workloads(scale):
        bw = board_workload(w, scale)
        out.append(f"{w}: {bw.description}; target val >= {bw.target}, {bw.epochs} epochs")
        for e in entrants(bw, papers, methods):
            out.append(f"  {e.id:32s} " + (f"same computation as {e.same_as} (not run again)" if e.same_as
                                           else json.dumps(dict(e.hparams), sort_keys=True) if e.applicable
                                           else f"not applicable: {e.reason}"))
    return "\n".join(out)


__all__ = ["BASELINE", "BOARD", "BoardWorkload", "Entrant", "board_workload", "board_workloads", "build_board",
           "describe", "entrants", "paired_speedup", "performance_profile", "register_board_workload",
           "score_workload", "train_workload", "trial_order"]
