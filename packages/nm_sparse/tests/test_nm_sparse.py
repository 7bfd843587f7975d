"""The paper's declaration: methods, experiments, claims and workloads (the generic run/resume tests
in tests/test_papers_generic.py cover every method too)."""

from __future__ import annotations

import json
from pathlib import Path

from repro_nm_sparse.models import WORKLOADS
from repro_nm_sparse.paper import PAPER

PKG = Path(__file__).resolve().parents[1]


def test_methods_have_one_dense_baseline():
    assert [m.name for m in PAPER.methods.values() if m.is_baseline] == ["dense"]
    assert set(PAPER.methods) == {"dense", "ste", "srste", "bdwp"}


def test_smoke_claims_read_no_time_so_trials_run_two_at_a_time():
    """Smoke speed is MAC accounting (a claim on a *time* metric would make every trial run alone)."""
    for claim in PAPER.claims_at("smoke"):
        assert "time" not in claim.metric, claim.id
    assert any("time" in c.metric for c in PAPER.claims_at("paper") if not c.not_run)


def test_accounting_claims_are_by_construction():
    for claim in PAPER.claims:
        assert bool(claim.by_construction) is claim.metric.startswith("macs_"), claim.id


def test_paper_scale_covers_resnet18_and_50_on_cifar10_and_100_at_2to4_and_2to8():
    exps = PAPER.experiments_at("paper")
    for ds in ("cifar10", "cifar100"):
        for arch in ("resnet18", "resnet50"):
            for pat in ("2to4", "2to8"):
                assert f"{ds}_{arch}_{pat}" in exps
    assert {e.workload for e in exps.values()} >= {"cifar10_resnet18", "nm_cifar100_resnet50"}
    speed = exps["cifar10_resnet18_2to8_speed"]
    assert all(hp["backend"] == "semi_structured" for hp in speed.methods.values())


def test_workloads_and_metadata():
    assert {w.name for w in WORKLOADS} == {"nm_mnist_mlp", "nm_mnist_cnn", "nm_cifar10_resnet50", "nm_cifar100_resnet50"}
    mlp = next(w for w in WORKLOADS if w.name == "nm_mnist_mlp")
    assert mlp.model_kwargs["sizes"] == [784, 512, 256, 10]
    meta = json.loads((PKG / "metadata.json").read_text())
    assert "TODO" not in json.dumps(meta) and meta["link"].startswith("https://arxiv.org/abs/2309.13015")
    assert "TODO" not in (PKG / "README.md").read_text()
