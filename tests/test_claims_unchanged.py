"""The claims rewrite (claims.yaml templates, ``experiments`` averages, ``by_construction``) changed
only what it meant to change.

``tests/fixtures/claims_before/<paper>.json`` is every paper's expanded claim list as it was before
the rewrite (one mapping per claim, the fields of ``repro.claims.Claim`` at the time). Each
current claim is compared with it field by field. The intended changes are listed below, each
with its reason; any other difference — an id, a threshold, a tolerance, a method, a baseline, a
scale, a word of a statement — fails.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from repro.claims import Claim
from repro.papers import get_paper

FIXTURES = Path(__file__).parent / "fixtures" / "claims_before"
PAPERS = ("wus", "enkf", "autoassist", "approx")
WUS_CLAIMS_YAML = Path(__file__).resolve().parents[1] / "packages" / "wus" / "src" / "repro_wus" / "claims.yaml"
WUS_CLAIMS_YAML_LINES_BEFORE = 548

# ---------------------------------------------------------------------------------------------
# Allow-list of intended changes. Nothing else may differ.
# ---------------------------------------------------------------------------------------------

# 1. WUS, paper scale: the per-model time-reduction claims are replaced by one claim per dataset
#    and method, the per-seed reduction averaged over the four models (`experiments`), because the
#    paper states an average over AlexNet/VGG-11/VGG-16/ResNet-18. new id -> the ids it replaces,
#    in the order of its `experiments`. Its statement and paper_value are reworded for the
#    average; every other field must equal that of each claim it replaces.
WUS_MODELS = ("alexnet", "vgg11", "vgg16", "resnet18")
REPLACED: dict[str, dict[str, list[str]]] = {
    "wus": {
        f"{method}_time_reduction_{dataset}_average": [f"{method}_time_reduction_{dataset}_{m}" for m in WUS_MODELS]
        for method in ("wus", "wus_lr") for dataset in ("cifar10", "cifar100")
    },
}
REWORDED_FOR_AVERAGE = {"statement", "paper_value"}
NOT_RUN_ROW_NOTE = "; recorded against the CIFAR-10 experiment only to keep the row"

# 2. WUS and AutoAssist smoke timing claims read process CPU time instead of wall time (parallel
#    trials on one shared machine barely move CPU time); their statements say so with the suffix
#    " (CPU time)". (paper, id) -> (old metric, new metric).
CPU_TIME_SUFFIX = " (CPU time)"
CPU_TIME: dict[tuple[str, str], tuple[str, str]] = {
    ("wus", "wus_time_reduction_digits_cnn"): ("train_time_s", "train_cpu_time_s"),
    ("wus", "wus_lr_time_reduction_digits_cnn"): ("train_time_s", "train_cpu_time_s"),
    ("autoassist", "autoassist_time_to_target_vs_sgd_digits"): ("time_to_target_s", "time_to_target_cpu_s"),
    ("autoassist", "autoassist_time_to_target_vs_loss_is_digits"): ("time_to_target_s", "time_to_target_cpu_s"),
}

# 3. A `not_run` claim no longer names an experiment (it runs none; before, the field was
#    required and held a placeholder).

# 4. approx: the MACs-saved claims are fixed by the keep ratio, so they gained `by_construction`
#    (verdict "by construction", never "reproduced").
BY_CONSTRUCTION = {("approx", "approx_macs_saved_mnist_mlp"), ("approx", "approx_macs_saved_mnist_cnn")}

# Fields the old Claim did not have: absent from the fixture, they must hold their default unless
# an entry above changes them.
NEW_FIELD_DEFAULTS = {"experiments": [], "by_construction": None}


def _plain(claim: Claim) -> dict[str, Any]:
    """A claim as the fixture stores one (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(claim)))


def _before(slug: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in json.loads((FIXTURES / f"{slug}.json").read_text())}


def _differences(slug: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Field differences of one claim that the allow-list does not explain."""
    cid = old["id"]
    old = {**NEW_FIELD_DEFAULTS, **old}
    allowed: dict[str, Any] = {}  # field -> the value the intended change gives it (required, not optional)
    if (slug, cid) in CPU_TIME:
        before_metric, after_metric = CPU_TIME[slug, cid]
        assert old["metric"] == before_metric, f"{cid}: the fixture's metric is not {before_metric!r}"
        allowed["metric"] = after_metric
        allowed["statement"] = old["statement"] + CPU_TIME_SUFFIX
    if old["not_run"]:
        allowed["experiment"] = None
        # The only reason a not-run claim named an experiment goes with it from its explanation.
        allowed["not_run"] = old["not_run"].replace(NOT_RUN_ROW_NOTE, "")
    if (slug, cid) in BY_CONSTRUCTION:
        if not (isinstance(new["by_construction"], str) and new["by_construction"].strip()):
            return [f"{cid}.by_construction: expected a reason, got {new['by_construction']!r}"]
        allowed["by_construction"] = new["by_construction"]
    out = []
    for key in sorted(set(old) | set(new)):
        want = allowed.get(key, old.get(key, "<absent>"))
        got = new.get(key, "<absent>")
        if got != want:
            out.append(f"{cid}.{key}: {old.get(key, '<absent>')!r} -> {got!r}"
                       + (f" (the intended change makes it {want!r})" if key in allowed else ""))
    return out


@pytest.mark.parametrize("slug", PAPERS)
def test_claims_unchanged_except_the_intended(slug):
    before = _before(slug)
    now = {c.id: _plain(c) for c in get_paper(slug).claims}
    replaced = REPLACED.get(slug, {})
    gone = {old for olds in replaced.values() for old in olds}
    assert gone <= set(before), f"allow-list names claims the fixture lacks: {sorted(gone - set(before))}"

    # The ids: the old ones, minus the replaced ones, plus their replacements.
    assert set(now) == (set(before) - gone) | set(replaced), (
        f"removed: {sorted(set(before) - gone - set(now))}, added: {sorted(set(now) - set(before) - set(replaced))}"
    )

    problems = []
    for cid in sorted(set(before) - gone):
        problems += _differences(slug, before[cid], now[cid])

    for new_id, old_ids in replaced.items():
        new = now[new_id]
        old_claims = [before[i] for i in old_ids]
        if new["experiments"] != [c["experiment"] for c in old_claims]:
            problems.append(f"{new_id}.experiments: {new['experiments']!r}, expected the replaced claims' "
                            f"{[c['experiment'] for c in old_claims]!r}")
        if new["experiment"] is not None:
            problems.append(f"{new_id}.experiment: {new['experiment']!r}, expected None (it has `experiments`)")
        for old in old_claims:
            old = {**NEW_FIELD_DEFAULTS, **old}
            for key in sorted(set(old) - {"id", "experiment", "experiments"} - REWORDED_FOR_AVERAGE):
                if new.get(key) != old[key]:
                    problems.append(f"{new_id}.{key}: {new.get(key)!r} differs from replaced {old['id']}'s {old[key]!r}")
    assert not problems, f"{slug}: claims changed beyond the allow-list:\n" + "\n".join(problems)


def test_every_allow_list_entry_is_used():
    """A stale allow-list entry would silently permit a change nobody made."""
    for slug, cid in [*CPU_TIME, *BY_CONSTRUCTION]:
        assert cid in _before(slug), f"{slug}: {cid} is not in the fixture"
        assert cid in {c.id for c in get_paper(slug).claims}, f"{slug}: {cid} is no current claim"
    for slug, cid in BY_CONSTRUCTION:
        assert not _before(slug)[cid].get("by_construction")


def test_wus_claims_yaml_is_templated():
    """The template rewrite of the WUS claims is much shorter than the 548 lines it replaced."""
    lines = len(WUS_CLAIMS_YAML.read_text().splitlines())
    assert lines <= WUS_CLAIMS_YAML_LINES_BEFORE // 3, f"{WUS_CLAIMS_YAML.name}: {lines} lines"
    assert len(get_paper("wus").claims) == 26
