"""stats.mean_ci and claims: loading claims.yaml and judging claims from per-seed measurements."""

from __future__ import annotations

import math

import pytest
import yaml

from repro.claims import Claim, judge, load_claims
from repro.errors import ReproError
from repro.stats import format_ci, mean_ci

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
    v = judge(c, {"m": values, "other": seeds(100, 100, 100)})
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
    v = judge(c, {"m": seeds(*method), "b": seeds(*baseline)})
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
    v = judge(c, {"m": method, "b": base})
    assert sorted(v.per_seed) == [0, 1, 2]
    assert v.per_seed == {0: -0.5, 1: -0.5, 2: -0.5}
    assert v.verdict == "reproduced"
    assert v.method_mean == pytest.approx(2.0) and v.baseline_mean == pytest.approx(2.5)


def test_pairing_leaves_too_few_seeds():
    c = claim(expect="<", threshold=0.0, baseline="b", compare="difference")
    v = judge(c, {"m": seeds(1, 2, 3), "b": seeds(5, 6, 7, start=2)})  # only seed 2 in both
    assert v.verdict == "inconclusive"
    assert "only 1 seed(s)" in v.reason


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_seeds_is_inconclusive(n):
    # Even a hugely significant effect cannot be judged on fewer than 3 seeds.
    c = claim(expect=">", threshold=0.0)
    v = judge(c, {"m": {s: 1000.0 + s for s in range(n)}})
    assert v.verdict == "inconclusive"
    assert f"only {n} seed(s)" in v.reason and "need 3" in v.reason
    if n == 0:
        assert v.interval is None
    else:
        assert v.interval.n == n


def test_missing_method_is_inconclusive():
    v = judge(claim(expect=">", threshold=0.0), {})
    assert v.verdict == "inconclusive" and v.interval is None


def test_nan_seeds_are_excluded_with_a_reason():
    c = claim(metric="time_to_target_s", expect="<", threshold=10.0)
    nan = math.nan
    v = judge(c, {"m": {0: 1.0, 1: nan, 2: 2.0, 3: nan, 4: nan}})
    assert v.verdict == "inconclusive"
    assert "only 2 seed(s)" in v.reason
    assert "3 seed(s) gave NaN" in v.reason and "target never reached" in v.reason
    assert v.interval.n == 2
    assert v.method_mean == pytest.approx(1.5)  # over the finite seeds


def test_nan_seeds_excluded_but_enough_left():
    c = claim(metric="time_to_target_s", expect="<", threshold=10.0)
    v = judge(c, {"m": {0: 1.0, 1: math.nan, 2: 1.1, 3: 0.9}})
    assert v.verdict == "reproduced"
    assert v.interval.n == 3 and v.interval.mean == pytest.approx(1.0)
    assert math.isnan(v.per_seed[1])


def test_nan_in_paired_comparison():
    c = claim(metric="time_to_target_s", expect="<", threshold=1.0, baseline="b", compare="ratio")
    v = judge(c, {"m": {0: 1.0, 1: math.nan, 2: 1.0, 3: 1.0}, "b": {0: 2.0, 1: 2.0, 2: 2.0, 3: 0.0}})
    # seed 1: method NaN; seed 3: baseline 0 -> ratio undefined
    assert v.verdict == "inconclusive"
    assert "2 seed(s) gave NaN" in v.reason


def test_method_and_baseline_means_use_the_same_seeds():
    c = claim(metric="time_to_target_s", expect="<", threshold=0.0, baseline="b", compare="difference")
    v = judge(c, {"m": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}, "b": {0: 2.0, 1: 3.0, 2: 4.0, 3: math.nan}})
    assert v.verdict == "reproduced" and v.interval.n == 3
    assert v.method_mean == pytest.approx(2.0)
    assert v.baseline_mean == pytest.approx(3.0)  # actual: nan
    assert v.method_mean - v.baseline_mean == pytest.approx(v.interval.mean)


def test_not_run():
    c = claim(expect=">", threshold=0.0, not_run="needs 8 GPUs")
    v = judge(c, {"m": seeds(1, 2, 3)})
    assert v.verdict == "not run" and v.reason == "needs 8 GPUs" and v.interval is None
    d = v.as_dict()
    assert d["verdict"] == "not run" and d["mean"] is None and d["n_seeds"] == 0


def test_verdict_as_dict():
    c = claim(expect="<", threshold=0.0, baseline="b", compare="reduction", tolerance=0.1)
    v = judge(c, {"m": seeds(1, 2, 3), "b": seeds(2, 4, 6)})
    d = v.as_dict()
    assert d["quantity"] == "1 − test_rmse[m] / test_rmse[b]"
    assert d["expectation"] == "< 0.1"
    assert d["n_seeds"] == 3 and d["mean"] == pytest.approx(0.5)
    assert d["per_seed"] == {"0": 0.5, "1": 0.5, "2": 0.5}
    assert d["claim"]["baseline"] == "b" and "statement" not in d["claim"]
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


def test_load_enkf_claims():
    from repro.registry import get_paper

    paper = get_paper("enkf")
    assert len(paper.claims) == 10
    assert len({c.id for c in paper.claims}) == 10


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


def test_scales_as_a_string(tmp_path):
    try:
        (c,) = load_claims(write(tmp_path, [{**GOOD, "scales": "smoke"}]))
    except ReproError:
        return  # rejecting it is fine too
    assert c.scales == ("smoke",)
