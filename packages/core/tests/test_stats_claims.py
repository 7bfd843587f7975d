"""stats.mean_ci and claims: loading claims.yaml (templates included) and judging claims from
per-seed measurements, with the miss (infinite time-to-target) semantics."""

from __future__ import annotations

import math

import pytest
import yaml
from scipy import stats as st

from repro.claims import VERDICTS, Claim, combine, expand, judge, load_claims, seeds_to_decide
from repro.errors import ReproError
from repro.stats import Interval, format_ci, mean_ci

INF = math.inf

T975 = {2: 4.302652729911275, 4: 2.7764451051977987}  # t_{0.975, df}


# --------------------------------------------------------------------------- mean_ci


def test_mean_ci_known_values():
    ci = mean_ci([1, 2, 3])
    assert ci.mean == 2.0 and ci.n == 3 and ci.std == pytest.approx(1.0)
    half = T975[2] * 1.0 / math.sqrt(3)
    assert ci.low == pytest.approx(2 - half, rel=1e-9)
    assert ci.high == pytest.approx(2 + half, rel=1e-9)
    assert half == pytest.approx(2.484, abs=1e-3)


def test_mean_ci_five_values_and_confidence():
    xs = [2.0, 4.0, 4.0, 5.0, 5.0]
    ci = mean_ci(xs)
    std = math.sqrt(sum((x - 4) ** 2 for x in xs) / 4)
    assert ci.mean == 4.0 and ci.std == pytest.approx(std)
    assert ci.high - ci.mean == pytest.approx(T975[4] * std / math.sqrt(5))
    narrow = mean_ci(xs, confidence=0.5)
    assert ci.low < narrow.low < narrow.mean < narrow.high < ci.high


def test_mean_ci_degenerate():
    one = mean_ci([3.5])
    assert one.mean == 3.5 and one.n == 1
    assert one.low == -math.inf and one.high == math.inf
    empty = mean_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)
    same = mean_ci([2.0, 2.0, 2.0])
    assert same.low == same.high == 2.0


def test_format_ci():
    assert format_ci(mean_ci([1, 2, 3])) == "2 ± 2.5"
    assert format_ci(mean_ci([7.0])) == "7"
    assert format_ci(mean_ci([])) == "n/a"
    assert str(mean_ci([1, 2, 3])) == "2 ± 2.5"


# --------------------------------------------------------------------------- judge


def claim(**kw) -> Claim:
    base = dict(id="c", statement="s", source="abstract", paper_value="v", experiment="e",
                metric="test_rmse", method="m")
    return Claim(**{**base, **kw})


def judge1(c: Claim, by_method: dict, experiment: str = "e"):
    """judge() for one experiment: ``by_method[method][seed]``."""
    return judge(c, {experiment: by_method})


def seeds(*values, start=0):
    return {start + i: float(v) for i, v in enumerate(values)}


# Tight samples: CI half-width ~0.025 for [x-0.01, x, x+0.01].
def around(x):
    return seeds(x - 0.01, x, x + 0.01)


@pytest.mark.parametrize(
    ("expect", "threshold", "tolerance", "values", "verdict"),
    [
        (">", 1.0, 0.0, around(1.5), "reproduced"),
        (">", 1.0, 0.0, around(0.5), "not reproduced"),
        (">", 1.0, 0.0, around(1.0), "inconclusive"),
        (">", 1.0, 0.6, around(0.5), "reproduced"),  # bound = threshold - tolerance
        ("<", 1.0, 0.0, around(0.5), "reproduced"),
        ("<", 1.0, 0.0, around(1.5), "not reproduced"),
        ("<", 1.0, 0.0, around(1.01), "inconclusive"),
        ("<", 1.0, 0.6, around(1.5), "reproduced"),  # bound = threshold + tolerance
        ("within", 1.0, 0.1, around(1.0), "reproduced"),
        ("within", 1.0, 0.1, around(1.5), "not reproduced"),
        ("within", 1.0, 0.1, around(0.5), "not reproduced"),
        ("within", 1.0, 0.1, around(1.09), "inconclusive"),  # CI straddles the upper edge
        ("within", 1.0, 0.1, seeds(0.5, 1.0, 1.5), "inconclusive"),  # CI wider than the band
    ],
)
def test_value_claims(expect, threshold, tolerance, values, verdict):
    c = claim(expect=expect, threshold=threshold, tolerance=tolerance)
    v = judge1(c, {"m": values, "other": seeds(100, 100, 100)})
    assert v.verdict == verdict, v.reason
    assert v.interval.n == 3
    assert v.method_mean == pytest.approx(sum(values.values()) / 3)
    assert math.isnan(v.baseline_mean)
    assert "95% CI" in v.reason


@pytest.mark.parametrize(
    ("compare", "expect", "threshold", "method", "baseline", "verdict", "mean"),
    [
        # difference m - b
        ("difference", "<", 0.0, [1.0, 2.0, 3.0, 4.0], [1.5, 2.4, 3.6, 4.5], "reproduced", -0.5),
        ("difference", "<", 0.0, [1.5, 2.4, 3.6, 4.5], [1.0, 2.0, 3.0, 4.0], "not reproduced", 0.5),
        ("difference", "<", 0.0, [1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5], "inconclusive", 0.0),
        # ratio m / b
        ("ratio", ">", 2.0, [3.0, 6.0, 9.0], [1.0, 2.0, 3.0], "reproduced", 3.0),
        ("ratio", ">", 2.0, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "not reproduced", 1.0),
        ("ratio", "within", 1.0, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "reproduced", 1.0),
        # reduction 1 - m / b
        ("reduction", ">", 0.4, [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], "reproduced", 0.5),
        ("reduction", "<", 0.4, [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], "not reproduced", 0.5),
        ("reduction", "within", 0.5, [1.0, 2.0, 3.0], [2.0, 4.1, 5.9], "inconclusive", None),
    ],
)
def test_paired_claims(compare, expect, threshold, method, baseline, verdict, mean):
    c = claim(expect=expect, threshold=threshold, tolerance=0.01 if expect == "within" else 0.0,
              baseline="b", compare=compare)
    v = judge1(c, {"m": seeds(*method), "b": seeds(*baseline)})
    assert v.verdict == verdict, v.reason
    if mean is not None:
        assert v.interval.mean == pytest.approx(mean)
    assert v.method_mean == pytest.approx(sum(method) / len(method))
    assert v.baseline_mean == pytest.approx(sum(baseline) / len(baseline))
    assert len(v.per_seed) == len(method)


def test_pairing_by_seed_ignores_unpaired_seeds():
    c = claim(expect="<", threshold=0.0, baseline="b", compare="difference")
    method = {0: 1.0, 1: 2.0, 2: 3.0, 7: 100.0}  # seed 7 has no baseline
    base = {1: 2.5, 2: 3.5, 0: 1.5, 9: -100.0}  # seed 9 has no method run; dict order differs
    v = judge1(c, {"m": method, "b": base})
    assert sorted(v.per_seed) == [0, 1, 2]
    assert v.per_seed == {0: -0.5, 1: -0.5, 2: -0.5}
    assert v.verdict == "reproduced"
    assert v.method_mean == pytest.approx(2.0) and v.baseline_mean == pytest.approx(2.5)


def test_pairing_leaves_too_few_seeds():
    c = claim(expect="<", threshold=0.0, baseline="b", compare="difference")
    v = judge1(c, {"m": seeds(1, 2, 3), "b": seeds(5, 6, 7, start=2)})  # only seed 2 in both
    assert v.verdict == "inconclusive"
    assert "only 1 seed(s)" in v.reason


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_seeds_is_inconclusive(n):
    # Even a hugely significant effect cannot be judged on fewer than 3 seeds.
    c = claim(expect=">", threshold=0.0)
    v = judge1(c, {"m": {s: 1000.0 + s for s in range(n)}})
    assert v.verdict == "inconclusive"
    assert f"only {n} seed(s)" in v.reason and "need 3" in v.reason
    if n == 0:
        assert v.interval is None
    else:
        assert v.interval.n == n


def test_missing_method_is_inconclusive():
    v = judge1(claim(expect=">", threshold=0.0), {})
    assert v.verdict == "inconclusive" and v.interval is None


def test_nan_seeds_are_excluded_with_a_reason():
    c = claim(metric="test_rmse", expect="<", threshold=10.0)
    nan = math.nan
    v = judge1(c, {"m": {0: 1.0, 1: nan, 2: 2.0, 3: nan, 4: nan}})
    assert v.verdict == "inconclusive"
    assert "only 2 seed(s)" in v.reason
    assert "3 seed(s) undefined" in v.reason and v.undefined == 3
    assert v.interval.n == 2
    assert v.method_mean == pytest.approx(1.5)  # over the defined seeds
    assert v.misses == {"m": 0}  # NaN is undefined, not a miss


def test_nan_seeds_excluded_but_enough_left():
    c = claim(metric="test_rmse", expect="<", threshold=10.0)
    v = judge1(c, {"m": {0: 1.0, 1: math.nan, 2: 1.1, 3: 0.9}})
    assert v.verdict == "reproduced"
    assert v.interval.n == 3 and v.interval.mean == pytest.approx(1.0)
    assert math.isnan(v.per_seed[1])


def test_nan_in_paired_comparison():
    c = claim(metric="time_to_target_s", expect="<", threshold=1.0, baseline="b", compare="ratio")
    v = judge1(c, {"m": {0: 1.0, 1: math.nan, 2: 1.0, 3: 1.0}, "b": {0: 2.0, 1: 2.0, 2: 2.0, 3: 0.0}})
    # seed 1: method NaN; seed 3: baseline 0 -> ratio undefined
    assert v.verdict == "inconclusive"
    assert "2 seed(s) undefined" in v.reason and v.undefined == 2


def test_method_and_baseline_means_use_the_same_seeds():
    c = claim(metric="time_to_target_s", expect="<", threshold=0.0, baseline="b", compare="difference")
    v = judge1(c, {"m": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}, "b": {0: 2.0, 1: 3.0, 2: 4.0, 3: math.nan}})
    assert v.verdict == "reproduced" and v.interval.n == 3
    assert v.method_mean == pytest.approx(2.0)
    assert v.baseline_mean == pytest.approx(3.0)  # actual: nan
    assert v.method_mean - v.baseline_mean == pytest.approx(v.interval.mean)


def test_not_run():
    c = claim(expect=">", threshold=0.0, not_run="needs 8 GPUs")
    v = judge1(c, {"m": seeds(1, 2, 3)})
    assert v.verdict == "not run" and v.reason == "needs 8 GPUs" and v.interval is None
    d = v.as_dict()
    assert d["verdict"] == "not run" and d["mean"] is None and d["n_seeds"] == 0


def test_not_run_needs_no_experiment():
    c = claim(experiment=None, expect=">", threshold=0.0, not_run="out of scope")
    assert c.experiment_names == ()
    v = judge(c, {})
    assert v.verdict == "not run" and v.as_dict()["experiment"] == ""
    with pytest.raises(ReproError, match=r"claim 'c': needs 'experiment' \(or 'experiments'\), unless it is 'not_run'"):
        claim(experiment=None, expect=">")


def test_verdict_as_dict():
    c = claim(expect="<", threshold=0.0, baseline="b", compare="reduction", tolerance=0.1)
    v = judge1(c, {"m": seeds(1, 2, 3), "b": seeds(2, 4, 6)})
    d = v.as_dict()
    assert d["quantity"] == "1 − test_rmse[m] / test_rmse[b]"
    assert d["expectation"] == "< 0.1"
    assert d["n_seeds"] == 3 and d["mean"] == pytest.approx(0.5)
    assert d["per_seed"] == {"0": 0.5, "1": 0.5, "2": 0.5}
    assert d["claim"]["baseline"] == "b" and "statement" not in d["claim"]
    assert d["misses"] == {"m": 0, "b": 0} and d["undefined_seeds"] == 0 and d["holds"] is None
    assert d["experiment"] == "e" and d["verdict"] in VERDICTS
    assert claim(expect="within", threshold=2, tolerance=0.5).expectation() == "within 2 ± 0.5"
    assert claim(expect=">", threshold=2, tolerance=0.5).expectation() == "> 1.5"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"compare": "sum", "baseline": "b"}, r"unknown compare of claim 'c' 'sum'; valid choices: difference, ratio"),
        ({"expect": ">="}, r"unknown expect of claim 'c' '>='; valid choices: <, >, within"),
        ({"compare": "difference"}, "needs a baseline"),
        ({"baseline": "b"}, "needs no baseline"),
        ({"tolerance": -1.0}, "tolerance >= 0"),
        ({"threshold": math.inf}, "threshold must be finite"),
    ],
)
def test_claim_validation(kw, match):
    with pytest.raises(ReproError, match=match):
        claim(**{"expect": ">", **kw})


# --------------------------------------------------------------------------- load_claims

GOOD = {"id": "a", "statement": "s", "source": "abstract", "paper_value": "v", "experiment": "e",
        "metric": "test_rmse", "method": "m", "expect": "<"}


def write(tmp_path, items) -> object:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(items))
    return path


def test_load_claims(tmp_path):
    path = write(tmp_path, [GOOD, {**GOOD, "id": "b", "baseline": "g", "compare": "ratio", "threshold": 1,
                                   "tolerance": 0, "scales": ["paper"], "not_run": "later"}])
    a, b = load_claims(path)
    assert a.id == "a" and a.scales == ("smoke", "paper") and a.compare == "value" and a.threshold == 0.0
    assert b.scales == ("paper",) and b.threshold == 1.0 and isinstance(b.threshold, float)
    assert b.not_run == "later" and b.baseline == "g"


def test_load_the_fake_papers_claims(fake_paper):
    """The FAKE paper's claims.yaml: a template, an average, a not-run and a by-construction claim."""
    by_id = {c.id: c for c in fake_paper.claims}
    assert list(by_id) == ["boosted_rmse_vs_gd_sine", "boosted_rmse_vs_gd_hat", "boosted_time_to_target_avg",
                           "boosted_gpu_speedup", "gd_epochs_fixed"]
    hat = by_id["boosted_rmse_vs_gd_hat"]
    assert (hat.experiment, hat.method, hat.baseline, hat.compare) == ("hat", "boosted", "gd", "difference")
    assert hat.statement == "Boosted reaches about the test RMSE of gd on hat"
    assert hat.paper_value == "same RMSE (hat)"
    assert by_id["boosted_time_to_target_avg"].experiments == ("sine", "hat")
    assert by_id["boosted_gpu_speedup"].experiment is None and by_id["boosted_gpu_speedup"].not_run
    assert by_id["gd_epochs_fixed"].by_construction and by_id["gd_epochs_fixed"].scales == ("smoke",)


def test_unknown_key(tmp_path):
    with pytest.raises(ReproError) as info:
        load_claims(write(tmp_path, [GOOD, {**GOOD, "id": "b", "treshold": 1}]))
    msg = str(info.value)
    assert "'treshold'" in msg and "entry 1" in msg and "threshold" in msg  # lists the valid keys


@pytest.mark.parametrize("key", ["id", "metric", "expect"])
def test_missing_key(tmp_path, key):
    item = {k: v for k, v in GOOD.items() if k != key}
    with pytest.raises(ReproError, match=rf"entry 0: missing keys \['{key}'\]"):
        load_claims(write(tmp_path, [item]))


def test_duplicate_id(tmp_path):
    with pytest.raises(ReproError, match=r"entry 2: duplicate claim id 'a'"):
        load_claims(write(tmp_path, [GOOD, {**GOOD, "id": "b"}, GOOD]))


@pytest.mark.parametrize(("key", "value"), [("compare", "product"), ("expect", "=")])
def test_bad_compare_or_expect(tmp_path, key, value):
    item = {**GOOD, key: value, **({"baseline": "g"} if key == "compare" else {})}
    with pytest.raises(ReproError) as info:
        load_claims(write(tmp_path, [item]))
    assert key in str(info.value) and repr(value) in str(info.value)
    assert "valid choices" in str(info.value)


@pytest.mark.parametrize(("text", "match"), [
    ("id: a\n", "expected a list"),
    ("- just a string\n", "expected a mapping"),
    ("- [unclosed\n", "cannot read claims file"),
])
def test_malformed_claims_file(tmp_path, text, match):
    path = tmp_path / "claims.yaml"
    path.write_text(text)
    with pytest.raises(ReproError, match=match):
        load_claims(path)


def test_missing_claims_file(tmp_path):
    with pytest.raises(ReproError, match="cannot read claims file"):
        load_claims(tmp_path / "none.yaml")


def test_non_numeric_threshold_is_a_repro_error(tmp_path):
    with pytest.raises(ReproError, match="threshold"):
        load_claims(write(tmp_path, [{**GOOD, "threshold": "zero"}]))


@pytest.mark.parametrize(("key", "value"), [("scales", "smoke"), ("experiments", "e")])
def test_list_keys_must_be_lists(tmp_path, key, value):
    """A bare string is refused (it would read as a tuple of characters)."""
    item = {**GOOD, key: value}
    if key == "experiments":
        del item["experiment"]
    with pytest.raises(ReproError, match=rf"entry 0: key '{key}' must be a list, got '{value}'"):
        load_claims(write(tmp_path, [item]))


def test_unknown_scale_is_refused(tmp_path):
    with pytest.raises(ReproError, match=r"key 'scales' must be a list of \['smoke', 'paper'\]"):
        load_claims(write(tmp_path, [{**GOOD, "scales": ["tiny"]}]))


def test_experiment_and_experiments_are_exclusive():
    with pytest.raises(ReproError, match="give 'experiment' or 'experiments', not both"):
        claim(expect=">", experiments=("a", "b"))


# --------------------------------------------------------------------------- templates


def test_template_expands_a_scalar_and_a_mapping_axis():
    entry = {
        "id": "{method}_time_{experiment}",
        "grid": {"experiment": ["a", "b"],
                 "variant": [{"method": "wus", "baseline": "base", "threshold": 0.5, "pct": "50%"},
                             {"method": "wus_lr", "baseline": "base_lr", "threshold": 0.4, "pct": "40%"}]},
        "statement": "{method} saves {pct} vs {baseline} on {experiment}",
        "source": "abstract", "paper_value": "{pct}", "metric": "train_time_s", "compare": "reduction",
        "expect": ">", "tolerance": 0.1, "scales": ["smoke"],
    }
    out = expand(entry, "here")
    assert [c["id"] for c in out] == ["wus_time_a", "wus_lr_time_a", "wus_time_b", "wus_lr_time_b"]
    first = out[1]
    assert first["statement"] == "wus_lr saves 40% vs base_lr on a" and first["paper_value"] == "40%"
    # bound names that are claim fields set them; the others (pct) only fill strings
    assert (first["experiment"], first["method"], first["baseline"], first["threshold"]) == ("a", "wus_lr", "base_lr", 0.4)
    assert "pct" not in first and "grid" not in first and "variant" not in first
    assert first["scales"] == ["smoke"] and first["tolerance"] == 0.1  # non-strings pass unchanged
    assert expand({**GOOD}, "here") == [GOOD]  # not a template


def test_template_fields_in_the_body_win_over_bound_names_and_lists_are_formatted():
    entry = {**GOOD, "id": "x_{experiment}", "grid": {"experiment": ["a"], "t": [{"threshold": 9.0}]},
             "experiment": "fixed", "threshold": 1.0, "scales": ["{s}"]}
    entry["grid"]["s"] = ["paper"]
    (c,) = expand(entry, "here")
    assert c["id"] == "x_a" and c["experiment"] == "fixed" and c["threshold"] == 1.0
    assert c["scales"] == ["paper"]


def test_templates_through_load_claims(tmp_path):
    entry = {**GOOD, "id": "t_{experiment}", "grid": {"experiment": ["x", "y"]}}
    del entry["experiment"]
    x, y = load_claims(write(tmp_path, [entry]))
    assert (x.id, x.experiment, y.id, y.experiment) == ("t_x", "x", "t_y", "y")


@pytest.mark.parametrize(("grid", "match"), [
    ([1, 2], "'grid' must be a non-empty mapping"),
    ({}, "'grid' must be a non-empty mapping"),
    ({"experiment": []}, "grid axis 'experiment' must be a non-empty list"),
    ({"experiment": "a"}, "grid axis 'experiment' must be a non-empty list"),
])
def test_bad_grid(tmp_path, grid, match):
    with pytest.raises(ReproError, match=match):
        load_claims(write(tmp_path, [{**GOOD, "grid": grid}]))


def test_template_with_an_unbound_name(tmp_path):
    with pytest.raises(ReproError, match=r"entry 0: cannot fill '\{methd\}_x' from the grid"):
        load_claims(write(tmp_path, [{**GOOD, "id": "{methd}_x", "grid": {"experiment": ["a"]}}]))


def test_template_producing_duplicate_ids(tmp_path):
    with pytest.raises(ReproError, match=r"duplicate claim id 'same'"):
        load_claims(write(tmp_path, [{**GOOD, "id": "same", "grid": {"experiment": ["a", "b"]}}]))


def test_template_producing_an_invalid_claim_names_it(tmp_path):
    entry = {**GOOD, "id": "c_{method}", "grid": {"v": [{"method": "m", "compare": "ratio"}]}}
    with pytest.raises(ReproError, match=r"entry 0 \(c_m\): claim 'c_m': compare='ratio' needs a baseline"):
        load_claims(write(tmp_path, [entry]))


# --------------------------------------------------------------------------- averages over experiments


def test_experiments_average_per_seed_then_over_seeds():
    c = claim(experiment=None, experiments=("a", "b"), expect=">", threshold=0.3, baseline="b",
              compare="reduction")
    data = {"a": {"m": seeds(1, 1, 1), "b": seeds(2, 2, 2)},       # reduction 0.5 on every seed
            "b": {"m": seeds(3, 3, 3), "b": seeds(4, 4, 4)}}       # reduction 0.25
    v = judge(c, data)
    assert v.per_seed == pytest.approx({0: 0.375, 1: 0.375, 2: 0.375})
    assert v.verdict == "reproduced" and v.interval.mean == pytest.approx(0.375)
    assert v.method_mean == pytest.approx(2.0) and v.baseline_mean == pytest.approx(3.0)
    assert c.quantity() == "mean over 2 experiments of (1 − test_rmse[m] / test_rmse[b])"
    assert v.as_dict()["experiment"] == "a, b"


def test_experiments_average_uses_seeds_present_in_every_experiment():
    c = claim(experiment=None, experiments=("a", "b"), expect="<", threshold=10.0)
    v = judge(c, {"a": {"m": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}}, "b": {"m": {1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}}})
    assert sorted(v.per_seed) == [1, 2, 3]
    assert v.verdict == "reproduced"
    missing = judge(c, {"a": {"m": seeds(1, 2, 3)}})  # one experiment not measured at all
    assert missing.verdict == "inconclusive" and missing.per_seed == {}


# --------------------------------------------------------------------------- misses (infinite to-target)


@pytest.mark.parametrize(("compare", "m", "b", "expected"), [
    # the method missed
    ("difference", INF, 2.0, INF), ("ratio", INF, 2.0, INF), ("reduction", INF, 2.0, -INF),
    # the baseline missed
    ("difference", 2.0, INF, -INF), ("ratio", 2.0, INF, 0.0), ("reduction", 2.0, INF, 1.0),
    # finite values
    ("difference", 3.0, 2.0, 1.0), ("ratio", 3.0, 2.0, 1.5), ("reduction", 1.0, 4.0, 0.75),
    ("value", INF, 2.0, INF), ("value", 3.0, INF, 3.0),
])
def test_combine_table(compare, m, b, expected):
    assert combine(compare, m, b) == expected


@pytest.mark.parametrize("compare", ["difference", "ratio", "reduction"])
def test_combine_both_missed_or_undefined(compare):
    assert math.isnan(combine(compare, INF, INF))  # both missed: undefined
    assert math.isnan(combine(compare, math.nan, 1.0)) and math.isnan(combine(compare, 1.0, math.nan))


def test_combine_zero_baseline():
    assert math.isnan(combine("ratio", 1.0, 0.0)) and math.isnan(combine("reduction", 1.0, 0.0))
    assert combine("difference", 1.0, 0.0) == 1.0
    assert combine("ratio", INF, 0.0) == INF  # the miss decides before the division


TTT = dict(metric="time_to_target_s", baseline="b")


def test_judge_with_one_missed_seed_of_the_method():
    c = claim(expect="<", threshold=1.0, compare="ratio", **TTT)
    v = judge1(c, {"m": {0: 1.0, 1: 1.0, 2: 1.0, 3: INF}, "b": seeds(2, 2, 2, 2)})
    assert v.verdict == "not reproduced"  # infinitely slow on one seed: slower on average
    assert v.per_seed == {0: 0.5, 1: 0.5, 2: 0.5, 3: INF}
    assert v.interval.mean == INF and v.interval.low == INF and v.interval.n == 4
    assert v.misses == {"m": 1, "b": 0} and v.undefined == 0
    assert "m missed the target on 1 seed(s)" in v.reason and "a seed missed the target" in v.reason
    assert v.method_mean == INF and v.baseline_mean == 2.0
    d = v.as_dict()
    assert d["misses"] == {"m": 1, "b": 0} and d["mean"] == INF


def test_judge_with_one_missed_seed_of_the_baseline():
    c = claim(expect=">", threshold=0.3, compare="reduction", **TTT)
    v = judge1(c, {"m": seeds(1, 1, 1), "b": {0: 2.0, 1: 2.0, 2: INF}})
    assert v.per_seed == {0: 0.5, 1: 0.5, 2: 1.0}  # the baseline's miss is a full reduction
    assert v.verdict == "inconclusive" and v.interval.n == 3 and math.isfinite(v.interval.high)
    assert v.misses == {"m": 0, "b": 1} and "b missed the target on 1 seed(s)" in v.reason
    faster = judge1(claim(expect="<", threshold=1.0, compare="difference", **TTT),
                    {"m": seeds(1, 1, 1), "b": {0: 2.0, 1: 2.0, 2: INF}})
    assert faster.verdict == "reproduced" and faster.interval.mean == -INF


def test_judge_with_seeds_where_both_missed():
    c = claim(expect="<", threshold=1.0, compare="ratio", **TTT)
    v = judge1(c, {"m": {0: 1.0, 1: 1.0, 2: 1.0, 3: INF}, "b": {0: 2.0, 1: 2.0, 2: 2.0, 3: INF}})
    assert v.undefined == 1 and math.isnan(v.per_seed[3])
    assert v.interval.n == 3 and v.verdict == "reproduced"  # decided on the three defined seeds
    assert v.misses == {"m": 1, "b": 1}
    assert "1 seed(s) undefined" in v.reason
    few = judge1(c, {"m": {0: INF, 1: INF, 2: 1.0}, "b": {0: INF, 1: INF, 2: 2.0}})
    assert few.verdict == "inconclusive" and "only 1 seed(s)" in few.reason and few.misses == {"m": 2, "b": 2}


def test_judge_with_misses_on_both_sides_is_undecided():
    c = claim(expect="<", threshold=0.0, compare="difference", **TTT)
    v = judge1(c, {"m": {0: INF, 1: 1.0, 2: 1.0}, "b": {0: 1.0, 1: INF, 2: 2.0}})  # +inf and -inf
    assert v.verdict == "inconclusive" and math.isnan(v.interval.mean)
    assert v.misses == {"m": 1, "b": 1}


def test_value_claim_on_a_missed_target():
    c = claim(metric="epochs_to_target", expect="<", threshold=10.0)
    v = judge1(c, {"m": {0: 3.0, 1: 4.0, 2: INF}})
    assert v.verdict == "not reproduced" and v.misses == {"m": 1}


# --------------------------------------------------------------------------- by construction


def test_by_construction_never_counts_as_reproduced():
    c = claim(metric="macs_ratio", expect="within", threshold=0.3, tolerance=0.05, by_construction="r = 0.3 fixed")
    v = judge1(c, {"m": seeds(0.3, 0.3, 0.3)})
    assert v.verdict == "by construction" and v.holds is True
    assert "r = 0.3 fixed" in v.reason and "meets the claim" in v.reason and "accounting identity" in v.reason
    off = judge1(c, {"m": seeds(0.7, 0.7, 0.7)})
    assert off.verdict == "by construction" and off.holds is False and "does not meet" in off.reason
    unsure = judge1(c, {"m": seeds(0.2, 0.3, 0.4)})
    assert unsure.verdict == "by construction" and unsure.holds is None and "may or may not meet" in unsure.reason
    assert v.as_dict()["holds"] is True and v.as_dict()["verdict"] == "by construction"


# --------------------------------------------------------------------------- seeds to decide


def test_seeds_to_decide_on_an_inconclusive_claim():
    c = claim(expect=">", threshold=0.0)
    v = judge1(c, {"m": seeds(1.0, -0.5, 2.0)})  # mean 0.83, a wide CI around it
    assert v.verdict == "inconclusive"
    n = v.seeds_to_decide
    assert n is not None and n > 3 and v.as_dict()["seeds_to_decide"] == n
    assert f"about {n} seeds would decide it" in v.reason
    ci = v.interval

    def half(k):
        return float(st.t.ppf(0.975, k - 1)) * ci.std / math.sqrt(k)

    assert half(n) < ci.mean <= half(n - 1)  # the smallest n whose CI at this spread clears the bound
    assert seeds_to_decide(c, ci) == n


def test_seeds_to_decide_cannot_decide_a_mean_on_the_bound():
    c = claim(expect=">", threshold=1.0)
    v = judge1(c, {"m": seeds(0.5, 1.0, 1.5)})
    assert v.verdict == "inconclusive" and v.seeds_to_decide is None
    assert "more seeds would not decide it" in v.reason
    assert seeds_to_decide(c, Interval(1.0, 0.0, 2.0, 1, math.nan)) is None  # one seed: no spread
    assert seeds_to_decide(c, Interval(2.0, 2.0, 2.0, 3, 0.0)) == 3
    within = claim(expect="within", threshold=0.0, tolerance=1.0)
    # margin 0.5 to the upper edge: t(0.975, 6) * 0.5 / sqrt(7) = 0.462 < 0.5 <= t(0.975, 5) * 0.5 / sqrt(6) = 0.525
    assert seeds_to_decide(within, Interval(0.5, -1.0, 2.0, 3, 0.5)) == 7
    assert judge1(c, {"m": seeds(5, 6, 7)}).seeds_to_decide is None  # decided: nothing to estimate
