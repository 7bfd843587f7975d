"""repro.evaluate: trial JSONs -> claims.json / metrics.json for the FAKE paper, including trials
that missed their target (null to-target values, reached_target 0)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from repro import paths
from repro.claims import VERDICTS, Claim
from repro.errors import ReproError
from repro.evaluate import evaluate, load_trials, measurements, trial_value, write_claims
from repro.files import write_json

SEEDS = [0, 1, 2]


def trial(experiment, method, seed, **summary):
    base = {"test_rmse": 0.1, "val_rmse": 0.1, "train_time_s": 2.0, "time_to_target_s": 1.0,
            "instances_to_target": 100.0, "reached_target": 1.0, "epochs": 3.0 if experiment == "sine" else 2.0}
    return {"paper": "fake", "experiment": experiment, "method": method, "seed": seed, "scale": "smoke",
            "summary": {**base, **summary}, "history": [], "device": "CPU: test", "torch_threads": 1,
            "environment": {"git_commit": "abc123", "git_dirty": "false", "cpu": "test cpu", "cpu_count": "2"}}


def write_trials(trials):
    for t in trials:
        write_json(t, paths.trial_path("fake", "smoke", t["experiment"], t["method"], t["seed"]))


def all_trials(overrides=None):
    """Every trial the fake paper declares at smoke; *overrides* (exp, method, seed) -> summary changes.
    gd takes 2 s to target, boosted 1 s."""
    out = []
    for exp in ("sine", "hat"):
        for method in ("gd", "boosted"):
            for seed in SEEDS:
                changes = (overrides or {}).get((exp, method, seed), {})
                ttt = {"time_to_target_s": 2.0 if method == "gd" else 1.0}
                out.append(trial(exp, method, seed, **{**ttt, **changes}))
    return out


MISS = {"time_to_target_s": None, "instances_to_target": None, "reached_target": 0.0}


def test_trial_value_reads_misses_as_infinite():
    assert trial_value({"summary": {"time_to_target_s": None, "reached_target": 0}}, "time_to_target_s") == math.inf
    assert trial_value({"summary": {"instances_to_target": None, "reached_target": 0.0}},
                       "instances_to_target") == math.inf
    assert trial_value({"summary": {"time_to_target_cpu_s": None, "reached_target": 0}},
                       "time_to_target_cpu_s") == math.inf
    # not a miss: a null that is not a to-target quantity, or a run that did reach the target
    assert math.isnan(trial_value({"summary": {"test_rmse": None, "reached_target": 0}}, "test_rmse"))
    assert math.isnan(trial_value({"summary": {"time_to_target_s": None, "reached_target": 1}}, "time_to_target_s"))
    assert math.isnan(trial_value({"summary": {}}, "time_to_target_s"))
    assert trial_value({"summary": {"time_to_target_s": 3}}, "time_to_target_s") == 3.0


def test_evaluate_with_a_missed_target_gives_a_verdict(project):
    write_trials(all_trials({("hat", "boosted", 2): MISS}))
    report = evaluate("fake", "smoke", SEEDS)
    claims = report["claims"]
    assert set(claims) == {"boosted_rmse_vs_gd_sine", "boosted_rmse_vs_gd_hat", "boosted_time_to_target_avg",
                           "boosted_gpu_speedup", "gd_epochs_fixed"}
    avg = claims["boosted_time_to_target_avg"]
    assert avg["verdict"] == "not reproduced"  # the miss makes boosted infinitely slow on seed 2
    assert avg["misses"] == {"boosted": 1, "gd": 0} and avg["undefined_seeds"] == 0
    assert avg["per_seed"] == {"0": 0.5, "1": 0.5, "2": math.inf}
    assert "boosted missed the target on 1 seed(s)" in avg["reason"]
    assert avg["experiment"] == "sine, hat"
    assert claims["boosted_gpu_speedup"]["verdict"] == "not run"
    fixed = claims["gd_epochs_fixed"]
    assert fixed["verdict"] == "by construction" and fixed["holds"] is True
    assert claims["boosted_rmse_vs_gd_sine"]["verdict"] == "reproduced"
    assert report["summary"] == {"reproduced": 2, "not reproduced": 1, "inconclusive": 0, "by construction": 1,
                                 "not run": 1}
    assert list(report["summary"]) == list(VERDICTS)
    assert report["provenance"]["git_commit"] == "abc123" and report["provenance"]["device"] == "CPU: test"
    assert report["provenance"]["torch_threads"] == 1


def test_write_claims_writes_json_without_infinities(project):
    write_trials(all_trials({("hat", "boosted", 2): MISS}))
    out = write_claims("fake", "smoke", SEEDS)
    assert out == paths.claims_path("fake", "smoke")
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text  # plain JSON: null where not finite
    claims = json.loads(text)
    avg = claims["claims"]["boosted_time_to_target_avg"]
    assert avg["mean"] is None and avg["per_seed"]["2"] is None and avg["verdict"] == "not reproduced"
    metrics = json.loads(paths.metrics_path("fake", "smoke").read_text())
    assert metrics["summary"] == claims["summary"]
    assert set(metrics["claims"]["boosted_rmse_vs_gd_hat"]) == {"mean", "ci_low", "ci_high", "n_seeds",
                                                                "method_mean", "baseline_mean", "verdict"}


def test_evaluate_misses_on_both_sides(project):
    write_trials(all_trials({("sine", "boosted", 1): MISS, ("sine", "gd", 1): MISS}))
    avg = evaluate("fake", "smoke", SEEDS)["claims"]["boosted_time_to_target_avg"]
    assert avg["undefined_seeds"] == 1 and avg["misses"] == {"boosted": 1, "gd": 1}
    assert avg["verdict"] == "inconclusive" and "only 2 seed(s)" in avg["reason"]


def test_instances_to_target_null_is_a_miss(project, fake_paper, monkeypatch):
    """A paper's claim on instances_to_target (AutoAssist's quantity) with a missed seed."""
    from repro import papers

    c = Claim(id="fewer_instances", statement="s", source="abstract", paper_value="40% fewer",
              metric="instances_to_target", method="boosted", baseline="gd", compare="reduction",
              expect=">", threshold=0.2, experiment="sine")
    monkeypatch.setitem(papers._EXTRA, "fake", dataclasses.replace(fake_paper, claims=(c,)))
    trials = all_trials({("sine", "gd", s): {"instances_to_target": 200.0} for s in SEEDS})
    trials = [t if (t["experiment"], t["method"], t["seed"]) != ("sine", "gd", 0)
              else trial("sine", "gd", 0, **MISS) for t in trials]
    write_trials(trials)
    v = evaluate("fake", "smoke", SEEDS)["claims"]["fewer_instances"]
    # the baseline's miss is a full reduction: 1, 0.5, 0.5 -- a verdict, not a crash
    assert v["per_seed"] == {"0": 1.0, "1": 0.5, "2": 0.5} and v["misses"] == {"boosted": 0, "gd": 1}
    assert v["verdict"] == "inconclusive" and v["mean"] == pytest.approx(2 / 3)
    assert isinstance(v["seeds_to_decide"], int) and v["seeds_to_decide"] > 3


def test_measurements_shape_and_a_misnamed_metric(project):
    trials = all_trials()
    c = Claim(id="x", statement="s", source="a", paper_value="v", metric="time_to_target_s", method="boosted",
              baseline="gd", compare="ratio", expect="<", experiment="hat")
    data = measurements(trials, c)
    assert set(data) == {"hat"} and set(data["hat"]) == {"boosted", "gd"}
    assert data["hat"]["gd"] == {0: 2.0, 1: 2.0, 2: 2.0}
    bad = dataclasses.replace(c, metric="time_to_target")
    with pytest.raises(ReproError, match=r"claim 'x': no trial records the summary metric 'time_to_target'; "
                                         r"available: .*time_to_target_s"):
        measurements(trials, bad)


def test_load_trials_names_a_missing_trial(project):
    trials = all_trials()
    write_trials(trials[1:])
    with pytest.raises(ReproError, match=r"1 trial result\(s\) missing, e.g. results/fake/smoke/sine/gd/seed0.json"):
        load_trials("fake", "smoke", SEEDS)
    assert len(load_trials("fake", "smoke", [1, 2])) == 8
