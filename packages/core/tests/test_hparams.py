"""repro.hparams (typed, documented hyper-parameters) and what a Method / Paper declares: fixed
switches, the merged hyper-parameters of a trial, and the checks a Paper runs when it is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from repro import hparams as H
from repro.errors import ReproError
from repro.hparams import hp
from repro.paper import Experiment, Method


@dataclass(frozen=True)
class Cfg:
    size: int = hp(10, "members", low=2)
    rate: float = hp(0.5, "a fraction", low=0, high=1, low_open=True)
    strict: float = hp(0.5, "strictly inside", low=0, high=1, low_open=True, high_open=True)
    mode: str = hp("a", "which mode", choices=("a", "b"))
    flag: bool = hp(False, "a switch")
    limit: int | None = hp(None, "optional cap", low=0)
    widths: tuple[int, ...] = hp((8, 4), "layer widths")
    anything: str = hp("", "free text")


def test_parse_fills_defaults_and_converts():
    assert H.parse(Cfg, {}, "m") == Cfg()
    cfg = H.parse(Cfg, {"size": 3, "rate": 1, "mode": "b", "flag": True, "limit": 5, "widths": [2, 3]}, "m")
    assert cfg == Cfg(size=3, rate=1.0, mode="b", flag=True, limit=5, widths=(2, 3))
    assert isinstance(cfg.rate, float) and isinstance(cfg.widths, tuple)
    assert H.parse(Cfg, {"limit": None}, "m").limit is None
    assert H.as_dict(cfg)["widths"] == [2, 3]


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ReproError) as info:
        H.parse(Cfg, {"sise": 3}, "mymethod")
    assert str(info.value) == ("unknown mymethod hyper-parameter 'sise'; valid choices: anything, flag, limit, "
                               "mode, rate, size, strict, widths")


def test_ignored_keys_are_skipped_and_listed():
    assert H.parse(Cfg, {"lr": 0.1, "size": 4}, "m", ignore=frozenset({"lr"})) == Cfg(size=4)
    with pytest.raises(ReproError, match=r"valid choices: anything, flag, limit, lr, mode"):
        H.parse(Cfg, {"nope": 1}, "m", ignore=frozenset({"lr"}))


@pytest.mark.parametrize(("hparams", "message"), [
    ({"size": "3"}, "m hyper-parameter 'size' must be int, got '3'"),
    ({"size": 3.0}, "m hyper-parameter 'size' must be int, got 3.0"),
    ({"size": True}, "m hyper-parameter 'size' must be int, got True"),
    ({"rate": "0.1"}, "m hyper-parameter 'rate' must be a finite number, got '0.1'"),
    ({"rate": float("nan")}, "m hyper-parameter 'rate' must be a finite number, got nan"),
    ({"rate": False}, "m hyper-parameter 'rate' must be a finite number, got False"),
    ({"flag": 1}, "m hyper-parameter 'flag' must be bool, got 1"),
    ({"mode": 1}, "m hyper-parameter 'mode' must be str, got 1"),
    ({"limit": "x"}, "m hyper-parameter 'limit' must be int, got 'x'"),
    ({"widths": 8}, "m hyper-parameter 'widths' must be a list, got 8"),
    ({"widths": "84"}, "m hyper-parameter 'widths' must be a list, got '84'"),
    ({"widths": [8, "4"]}, "m hyper-parameter 'widths' must be int, got '4'"),
])
def test_wrong_type_names_key_and_value(hparams, message):
    with pytest.raises(ReproError) as info:
        H.parse(Cfg, hparams, "m")
    assert str(info.value) == message


@pytest.mark.parametrize(("hparams", "message"), [
    ({"size": 1}, "m hyper-parameter 'size' must be in [2, inf], got 1"),
    ({"rate": 0}, "m hyper-parameter 'rate' must be in (0, 1], got 0.0"),
    ({"rate": 1.5}, "m hyper-parameter 'rate' must be in (0, 1], got 1.5"),
    ({"strict": 1.0}, "m hyper-parameter 'strict' must be in (0, 1), got 1.0"),
    ({"limit": -1}, "m hyper-parameter 'limit' must be in [0, inf], got -1"),
    ({"mode": "c"}, "unknown m hyper-parameter 'mode' value 'c'; valid choices: a, b"),
])
def test_out_of_range_names_key_and_value(hparams, message):
    with pytest.raises(ReproError) as info:
        H.parse(Cfg, hparams, "m")
    assert str(info.value) == message


def test_bounds_are_inclusive_unless_open():
    assert H.parse(Cfg, {"size": 2, "rate": 1.0, "limit": 0}, "m") == Cfg(size=2, rate=1.0, limit=0)


def test_specs_keys_and_document():
    specs = H.specs(Cfg)
    assert list(specs) == ["size", "rate", "strict", "mode", "flag", "limit", "widths", "anything"]
    assert specs["rate"].range_text() == "in (0, 1]"
    assert specs["strict"].range_text() == "in (0, 1)"
    assert specs["size"].range_text() == "in [2, inf]"
    assert specs["mode"].range_text() == "one of a, b"
    assert specs["anything"].range_text() == ""
    assert H.keys(Cfg) == frozenset(specs)
    doc = H.document(Cfg).splitlines()
    assert doc[0] == "- `size` (int, default 10; in [2, inf]): members"
    assert doc[3] == "- `mode` (str, default 'a'; one of a, b): which mode"
    assert doc[-1] == "- `anything` (str, default ''): free text"
    assert len(doc) == len(specs)


def test_mutable_default_is_refused():
    with pytest.raises(TypeError, match="mutable"):
        hp([1, 2], "a list")


# --------------------------------------------------------------------------- Method: fixed switches


def _fit(ctx, hparams):
    return None


SKIP = Method("skip", _fit, "skips", fixed={"skip": True, "schedule": "step"})


def test_method_merges_its_fixed_switches():
    assert SKIP.hparams({"lr": 0.1}) == {"lr": 0.1, "skip": True, "schedule": "step"}
    assert Method("plain", _fit, "no switches").hparams({"lr": 0.1}) == {"lr": 0.1}


def test_method_refuses_an_experiment_that_sets_a_fixed_switch():
    with pytest.raises(ReproError) as info:
        SKIP.hparams({"lr": 0.1, "skip": False}, "experiment 'e'")
    msg = str(info.value)
    assert msg.startswith("experiment 'e': 'skip' is a fixed switch of method 'skip' (= True)")
    assert "declare another method" in msg


def test_paper_refuses_an_experiment_that_sets_a_fixed_switch(fake_paper):
    exps = {"smoke": {"sine": Experiment("sine", "sine", {"gd": {}, "boosted": {"variant": "plain"}})}}
    with pytest.raises(ReproError) as info:
        dataclasses.replace(fake_paper, experiments=exps, claims=())
    msg = str(info.value)
    assert "'variant' is a fixed switch of method 'boosted'" in msg
    assert "experiment 'sine' (smoke) of paper 'fake'" in msg


def test_trial_hparams_are_tunable_plus_fixed(fake_paper):
    exp = fake_paper.experiment("smoke", "sine")
    merged = fake_paper.trial_hparams("smoke", "sine", "boosted")
    assert merged == {**exp.methods["boosted"], "variant": "boosted"}
    assert "variant" not in exp.methods["boosted"]  # the experiment carries only tunables
    assert fake_paper.trial_hparams("smoke", "sine", "gd") == exp.methods["gd"]
    merged["lr"] = 99  # a copy: the declaration is unchanged
    assert fake_paper.trial_hparams("smoke", "sine", "boosted")["lr"] == 0.05
    with pytest.raises(ReproError, match=r"unknown method of experiment 'sine' 'nope'; valid choices: boosted, gd"):
        fake_paper.trial_hparams("smoke", "sine", "nope")
    with pytest.raises(ReproError, match=r"unknown scale 'huge'"):
        fake_paper.trial_hparams("huge", "sine", "gd")


@pytest.mark.parametrize(("changes", "match"), [
    ({"experiments": {"smoke": {"sine": Experiment("sine", "sine", {"sgd": {}})}}, "claims": ()},
     r"unknown method in experiment 'sine' of paper 'fake' 'sgd'; valid choices: boosted, gd"),
    ({"experiments": {"huge": {}}, "claims": ()}, r"unknown scale in paper 'fake' 'huge'"),
    ({"tiny_hparams": {"sgd": {}}}, r"unknown method in tiny_hparams of paper 'fake' 'sgd'"),
    ({"experiments": {"smoke": {"sine": Experiment("sine", "sine", {"gd": {}, "boosted": {}})}}},
     r"claim 'boosted_rmse_vs_gd_hat' of paper 'fake' names experiment 'hat', which scale 'smoke' does not define"),
])
def test_paper_checks_its_declaration(fake_paper, changes, match):
    if "experiments" in changes and "claims" not in changes:  # keep the other scale, so the missing experiment is the one named
        changes["experiments"] = {**changes["experiments"], "paper": fake_paper.experiments["paper"]}
    with pytest.raises(ReproError, match=match):
        dataclasses.replace(fake_paper, **changes)


def test_method_registered_under_another_name_is_refused(fake_paper):
    with pytest.raises(ReproError, match=r"method 'gd' is registered as 'sgd'"):
        dataclasses.replace(fake_paper, methods={**fake_paper.methods, "sgd": fake_paper.methods["gd"]})


def test_claims_at_a_scale(fake_paper):
    smoke = {c.id for c in fake_paper.claims_at("smoke")}
    paper = {c.id for c in fake_paper.claims_at("paper")}
    assert "gd_epochs_fixed" in smoke and "gd_epochs_fixed" not in paper  # scales: [smoke]
    assert {"boosted_rmse_vs_gd_sine", "boosted_rmse_vs_gd_hat", "boosted_gpu_speedup"} <= smoke & paper
