"""The leaderboard protocol: entrants and their setups, misses, not-applicable methods, the paired
speed-up, the performance-profile score on constructed cases, and a real board run end to end
(train -> report -> MLflow -> index) on a tiny board workload with the FAKE paper."""

from __future__ import annotations

import json
import math

import pytest

from repro import leaderboard as L
from repro.errors import ReproError
from repro.paper import NotApplicable
from repro.trainer import gradient_method

INF = math.inf


# --- performance profiles and scores on constructed cases ------------------------------------

def test_profile_score_of_constructed_case():
    """A best everywhere: score 1. B 2x slower on w1 and missing w2: rho = 0 below tau 2, 1/2 from
    2 on, so its score is (1/2)(4 - 2)/(4 - 1) = 1/3. C not applicable anywhere: 0."""
    times = {"w1": {"A": 1.0, "B": 2.0, "C": INF}, "w2": {"A": 3.0, "B": INF, "C": INF}}
    prof = L.performance_profile(times)
    assert prof["A"]["score"] == pytest.approx(1.0)
    assert prof["B"]["score"] == pytest.approx(1 / 3, abs=0.01)
    assert prof["C"]["score"] == 0.0
    assert prof["B"]["rho"]["1.5"] == 0.0 and prof["B"]["rho"]["2.0"] == 0.5 and prof["B"]["rho"]["4.0"] == 0.5
    assert prof["B"]["ratios"] == {"w1": 2.0, "w2": INF}


def test_profile_ignores_workloads_nobody_finished_and_ranks_ties_equal():
    times = {"w1": {"A": 2.0, "B": 2.0}, "dead": {"A": INF, "B": INF}}
    prof = L.performance_profile(times)
    assert prof["A"]["score"] == prof["B"]["score"] == pytest.approx(1.0)
    assert set(prof["A"]["ratios"]) == {"w1"}


def test_profile_score_is_the_area_under_rho():
    """Ratio 3 on the only workload: rho is 0 on [1, 3) and 1 on [3, 4] -> score 1/3."""
    prof = L.performance_profile({"w": {"best": 1.0, "x": 3.0}})
    assert prof["x"]["score"] == pytest.approx(1 / 3, abs=0.01)


def test_paired_speedup_miss_rules():
    ci, undefined = L.paired_speedup({0: 2.0, 1: 2.0, 2: 4.0}, {0: 1.0, 1: 1.0, 2: 2.0})
    assert ci.mean == pytest.approx(2.0) and undefined == 0 and ci.low == pytest.approx(2.0)
    ci, _ = L.paired_speedup({0: 2.0, 1: 2.0}, {0: INF, 1: 1.0})  # a method miss: speed-up 0 on that seed
    assert ci.mean == pytest.approx(1.0)
    ci, _ = L.paired_speedup({0: INF, 1: 2.0}, {0: 1.0, 1: 1.0})  # baseline missed, method hit: infinite
    assert math.isinf(ci.mean)
    ci, undefined = L.paired_speedup({0: INF, 1: 2.0}, {0: INF, 1: 1.0})  # both missed: left out
    assert undefined == 1 and ci.n == 1 and ci.mean == pytest.approx(2.0)


def _record(trials: list[tuple[str, int, float | None]], entrants: list[dict]) -> dict:
    return {"quality_metric": "test_accuracy", "entrants": entrants,
            "trials": [{"entrant": e, "seed": s, "summary": {
                "reached_target": 0.0 if t is None else 1.0, "time_to_target_s": math.nan if t is None else t,
                "steps_to_target": math.nan if t is None else 10 * t, "instances_to_target": None if t is None else 100 * t,
                "test_accuracy": 0.9, "train_time_s": 5.0}} for e, s, t in trials]}


def test_score_workload_a_method_that_misses_and_one_not_applicable():
    entrants = [{"id": L.BASELINE, "paper": "core", "method": "baseline", "applicable": True, "reason": ""},
                {"id": "p/miss", "paper": "p", "method": "miss", "applicable": True, "reason": ""},
                {"id": "p/na", "paper": "p", "method": "na", "applicable": False, "reason": "needs gradients"}]
    trials = [(L.BASELINE, s, 2.0) for s in range(3)] + [("p/miss", 0, 1.0), ("p/miss", 1, None), ("p/miss", 2, 1.0)]
    rows = {r["id"]: r for r in L.score_workload(_record(trials, entrants))}
    miss = rows["p/miss"]
    assert miss["misses"] == 1 and math.isinf(miss["time_to_target"].mean)
    assert math.isinf(miss["steps_to_target"].mean) and math.isinf(miss["instances_to_target"].mean)
    assert miss["speedup"].mean == pytest.approx((2 + 0 + 2) / 3)  # the missed seed counts as speed-up 0
    assert rows[L.BASELINE]["speedup"].mean == pytest.approx(1.0)
    assert rows["p/na"]["applicable"] is False and rows["p/na"]["reason"] == "needs gradients"
    assert "time_to_target" not in rows["p/na"]


# --- entrants and their setups ------------------------------------------------------------

@pytest.fixture
def board(monkeypatch):
    """A tiny smoke board workload on the 1-D sine task (seconds for every entrant)."""
    bw = L.BoardWorkload(name="sine_board", workload="sine", scale="smoke", target=0.45, epochs=3,
                         baseline={"optimizer": "adam", "lr": 0.05, "batch_size": 50},
                         description="1-D sine, 3 epochs", why="test")
    monkeypatch.setitem(L.BOARD._items, bw.name, bw)
    return bw


def _not_here(workload):
    raise NotApplicable(f"needs a classification workload, {workload.name!r} is regression")


@pytest.fixture
def board_paper(monkeypatch, fake_paper):
    """The FAKE paper plus a method that cannot reach the target, one not applicable, and one
    that declares no shared-workload setup."""
    import dataclasses

    from repro import papers
    from repro.paper import Method

    methods = {
        **fake_paper.methods,
        "frozen": gradient_method("frozen", "learns nothing (lr 1e-12): misses every target",
                                  on_workload=lambda w: {"lr": 1e-12}),
        "classifier": gradient_method("classifier", "classification only", on_workload=_not_here),
        "opaque": Method("opaque", lambda ctx, hp: None, "no setup declared"),
    }
    paper = dataclasses.replace(fake_paper, methods=methods)
    papers.remove_paper(fake_paper.slug)
    papers.add_paper(paper)
    yield paper
    papers.remove_paper(paper.slug)
    papers.add_paper(fake_paper)


def test_entrants_baseline_first_setups_and_reasons(project, board, board_paper):
    es = {e.id: e for e in L.entrants(board, ["fake"])}
    assert list(es)[0] == L.BASELINE
    assert es[L.BASELINE].hparams == {"optimizer": "adam", "lr": 0.05, "batch_size": 50, "epochs": 3,
                                      "eval_every": 1, "checkpoint_every": 0}
    # the method's fixed switch over the board's settings; the budget the board's
    assert es["fake/boosted"].hparams["variant"] == "boosted" and es["fake/boosted"].hparams["epochs"] == 3
    assert es["fake/frozen"].hparams["lr"] == 1e-12
    assert not es["fake/classifier"].applicable and "classification" in es["fake/classifier"].reason
    assert not es["fake/opaque"].applicable and "declares no setup" in es["fake/opaque"].reason
    only = L.entrants(board, ["fake"], ["fake/gd"])
    assert [e.id for e in only] == [L.BASELINE, "fake/gd"]
    with pytest.raises(ReproError, match=r"leaderboard\.methods.*'fake/nope'.*valid choices: core/baseline"):
        L.entrants(board, ["fake"], ["fake/nope"])


def test_a_setup_may_not_change_the_budget_or_a_fixed_switch(project, board, fake_paper):
    greedy = gradient_method("greedy", "wants more epochs", on_workload=lambda w: {"epochs": 100})
    with pytest.raises(ReproError, match=r"'epochs'.*leaderboard protocol fixes"):
        L.entrant_for(board, "fake", greedy)
    sneaky = dataclasses_replace(fake_paper.methods["boosted"], on_workload=lambda w: {"variant": "plain"})
    with pytest.raises(ReproError, match=r"'variant' is a fixed switch"):
        L.entrant_for(board, "fake", sneaky)


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_trial_order_rotates_entrants_per_seed():
    assert L.trial_order(["a", "b", "c"], [0, 1, 2]) == [
        ("a", 0), ("b", 0), ("c", 0), ("b", 1), ("c", 1), ("a", 1), ("c", 2), ("a", 2), ("b", 2)]


def test_config_names_an_unknown_board_workload(config):
    bad = {**config, "leaderboard": {**config["leaderboard"], "workloads": {"smoke": ["nope"], "paper": []}}}
    with pytest.raises(ReproError, match=r"leaderboard\.workloads\.smoke.*'nope'.*valid choices: digits_cnn, digits_mlp"):
        L.selected_workloads(bad)


# --- a real board, end to end --------------------------------------------------------------

def test_board_end_to_end(project, config, sine_data, mlflow_store, board, board_paper):
    """Train every entrant x 3 seeds on the tiny board, score it, write the report, log to MLflow,
    link it from the index: the missing method is infinite, the inapplicable ones listed with
    their reasons, the profile figure written, and every number in MLflow."""
    from mlflow.tracking import MlflowClient

    from repro import paths
    from repro.report import build_index

    out = L.train_workload("sine_board", "smoke", [0, 1, 2], ["fake"], "all", config, progress=False)
    rec = json.loads(out.read_text())
    ran = {t["entrant"] for t in rec["trials"]}
    # fake/gd is the core's gradient descent with the board's settings: the baseline's computation, not run again
    assert ran == {L.BASELINE, "fake/boosted", "fake/frozen"}
    assert {e["id"]: e["same_as"] for e in rec["entrants"]}["fake/gd"] == L.BASELINE
    assert len(rec["trials"]) == 9 and rec["order"][4] == "fake/frozen/seed1"  # rotated per seed
    # the test split scored once per trial, for its final row; the validation split every epoch
    for t in rec["trials"]:
        assert [("test_rmse" in row) for row in t["history"]] == [False] * (len(t["history"]) - 1) + [True]
        assert all("val_rmse" in row for row in t["history"]) and "test_rmse" in t["summary"]
    frozen = [t for t in rec["trials"] if t["entrant"] == "fake/frozen"]
    assert all(t["summary"]["reached_target"] == 0.0 for t in frozen)
    base = [t for t in rec["trials"] if t["entrant"] == L.BASELINE]
    assert all(t["summary"]["reached_target"] == 1.0 for t in base)

    md = L.build_board("smoke", ["sine_board"], config)
    text = md.read_text()
    assert "∞ (miss)" in text and "0/3" in text  # frozen: reached on 0 of 3 seeds
    assert "needs a classification workload" in text and "declares no setup" in text
    assert "| `fake/gd` | `core/baseline` |" in text  # listed as the baseline's computation
    assert "fake/gd" not in summary_scores(text)
    assert "rankings here need not hold at paper scale" in text
    assert "Hardware:" in text
    figs = paths.reports_dir() / "leaderboard"
    assert (figs / "performance_profile.png").stat().st_size > 1000
    assert (figs / "speedup_sine_board.png").is_file()
    assert (paths.reports_dir() / "leaderboard.html").read_text().count("data:image/png;base64") >= 2
    summary = json.loads((figs / "summary.json").read_text())
    assert summary["scores"]["fake/frozen"] == 0.0
    assert max(summary["scores"].values()) == pytest.approx(1.0, abs=0.01)

    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name("leaderboard")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.info.run_name == "board/smoke")
    assert parent.data.metrics["score.fake/frozen"] == 0.0
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 9 and all(r.data.tags["leaderboard.workload"] == "sine_board" for r in children)

    index = build_index([], "smoke", leaderboard=True)  # the papers' reports are tested elsewhere
    assert "(leaderboard.md)" in (index.parent / "index.md").read_text()
    assert "leaderboard.html" in index.read_text()


def summary_scores(text: str) -> str:
    """The board's ranking table (between the profile figure and the first workload section)."""
    return text.split("performance_profile.png", 1)[1].split("\n## ", 1)[0]


def test_report_refuses_missing_results(project, config, board):
    with pytest.raises(ReproError, match=r"results/leaderboard/smoke/sine_board\.json is missing"):
        L.build_board("smoke", ["sine_board"], config)


def test_board_stages_in_the_dag(project, config):
    """With the board configured: one timed train job per board workload (its data prepared), the
    board report reading exactly those results, and the index waiting for the board and linking it."""
    from repro import pipeline

    cfg = {**config, "leaderboard": {**config["leaderboard"], "workloads": {"smoke": ["digits_mlp", "digits_cnn"],
                                                                              "paper": []}}}
    stages = {s.name: s for s in pipeline.stages(cfg)}
    train = stages["leaderboard_train_smoke_digits_mlp"]
    assert train.cmd.startswith("repro leaderboard train digits_mlp --scale smoke --papers fake --methods all --seeds 3")
    assert "data/prepared/digits.pt" in train.deps and "prepare_digits" in stages
    assert train.outs == ["results/leaderboard/smoke/digits_mlp.json"]
    board = stages["leaderboard_smoke"]
    assert board.deps == ["results/leaderboard/smoke/digits_mlp.json", "results/leaderboard/smoke/digits_cnn.json"]
    assert board.outs == ["reports/leaderboard.md", "reports/leaderboard.html", "reports/leaderboard"]
    assert "reports/leaderboard.md" in stages["index"].deps and stages["index"].cmd.endswith("--leaderboard")
    assert pipeline.leaderboard_cores(cfg, 8) == 8  # timed: runs alone at the smoke scale
    off = {**config, "leaderboard": {**config["leaderboard"], "workloads": {"smoke": [], "paper": []}}}
    assert not any(n.startswith("leaderboard") for n in (s.name for s in pipeline.stages(off)))


def test_a_methods_fixed_switch_wins_over_the_board_settings(project, board, monkeypatch):
    """WUS's `_lr` methods fix a step schedule; a board whose baseline uses cosine must not clash."""
    cosine = L.BoardWorkload(**{**board.__dict__, "name": "sine_cosine",
                                "baseline": {**board.baseline, "lr_schedule": "cosine"}})
    monkeypatch.setitem(L.BOARD._items, cosine.name, cosine)
    stepped = gradient_method("stepped", "fixes a step schedule", fixed={"lr_schedule": "step"})
    e = L.entrant_for(cosine, "fake", stepped)
    assert e.hparams["lr_schedule"] == "step" and e.hparams["epochs"] == cosine.epochs


def test_a_recipe_baseline(project):
    """On ``cifar10_fast`` the strong baseline is the core's fast CIFAR recipe; a plain gradient
    entrant starts from the board's settings and is not taken for the baseline's computation."""
    from repro import fast_cifar

    bw = L.board_workload("cifar10_fast", "paper")
    es = {e.id: e for e in L.entrants(bw, ["fake"])}
    assert es[L.BASELINE].spec(bw) is fast_cifar.METHOD and es[L.BASELINE].hparams == {"eval_every": 1,
                                                                                         "checkpoint_every": 0}
    assert es["fake/gd"].runs and not es["fake/gd"].same_as and es["fake/gd"].hparams["lr"] == 1.5
    bad = L.BoardWorkload(name="x", workload="sine", scale="smoke", target=0.5, epochs=1, baseline={},
                          description="", why="", recipe="nope")
    with pytest.raises(ReproError, match=r"recipe of leaderboard workload 'x'.*'nope'.*valid choices: fast_cifar"):
        L.register_board_workload(bad)
