"""The declaration: metadata, methods, experiments at both scales, claims, and the README card."""

from __future__ import annotations

import json

import pytest

from repro.claims import load_claims

from repro_oto.methods import METHODS
from repro_oto.paper import HERE, PAPER, PAPER_CONFIGS, SMOKE

PKG = PAPER.package_dir


def test_metadata_is_filled_and_used():
    meta = json.loads((PKG / "metadata.json").read_text())
    assert meta["name"] == "oto" and "TODO" not in json.dumps(meta)
    assert PAPER.title == meta["title"] and PAPER.url == meta["link"] == "https://arxiv.org/abs/2107.07467"


def test_one_baseline_and_the_three_methods():
    assert set(METHODS) == {"dense", "prox_sg", "hspg"}
    assert [m for m, spec in METHODS.items() if spec.is_baseline] == ["dense"]
    assert {m: spec.fixed["regulariser"] for m, spec in METHODS.items()} == {
        "dense": "none", "prox_sg": "prox_sg", "hspg": "hspg"}


def test_paper_scale_is_the_v1_configs():
    """The declared CIFAR-10 experiments carry the v1 train/configs/config_*_hspg.yml values."""
    v1 = {  # (lambda, decays, epsilon[3] for linear groups), batch 64, 300 epochs, lr 0.1, N_P 75, momentum 0
        "cifar10_vgg16": (1e-3, [75, 150, 225], 0.99),
        "cifar10_vgg16_bn": (5e-4, [75, 150, 250], 0.9),
        "cifar10_resnet50": (1e-3, [75, 150, 225], 0.0),
    }
    for name, (lmbda, decays, eps_linear) in v1.items():
        exp = PAPER.experiment("paper", name)
        for method in exp.methods:
            h = PAPER.trial_hparams("paper", name, method)
            assert (h["lmbda"], h["lr_decays"], h["epsilon_linear"]) == (lmbda, decays, eps_linear)
            assert (h["batch_size"], h["epochs"], h["lr"], h["n_p"], h["momentum"], h["epsilon"]) == \
                   (64, 300, 0.1, 75, 0.0, 0.0)
    assert set(PAPER_CONFIGS) == set(v1)


def test_smoke_follows_the_v1_schedule_shape():
    e, n_p = SMOKE["epochs"], SMOKE["n_p"]
    assert n_p == e // 4 and SMOKE["lr_decays"] == [n_p, 2 * n_p, 3 * n_p]
    assert SMOKE["momentum"] == 0.0 and SMOKE["batch_size"] == 64 and SMOKE["optimizer"] == "sgd"
    exp = PAPER.experiment("smoke", "digits_bn_cnn")
    assert set(exp.methods) == set(METHODS)
    assert all(h == SMOKE for h in exp.methods.values())  # the same schedule and lambda for every method


def test_claims_cover_both_scales_and_read_recorded_metrics():
    claims = load_claims(HERE / "claims.yaml")
    assert {c.id for c in claims} == {c.id for c in PAPER.claims}
    smoke = [c for c in claims if "smoke" in c.scales]
    paper = [c for c in claims if "paper" in c.scales]
    assert smoke and paper
    recorded = {"slim_max_abs_diff", "flops_remaining", "params_remaining", "group_sparsity", "test_accuracy",
                "test_f1"}
    assert {c.metric for c in claims} <= recorded
    assert any(c.baseline == "prox_sg" for c in smoke) and any(c.baseline == "dense" for c in smoke)
    not_run = [c for c in claims if c.not_run]
    assert {c.id for c in not_run} >= {"oto_flops_resnet50_imagenet", "oto_bert_squad"}


@pytest.mark.parametrize("section", ["## How to use", "## What has not been verified", "<!-- repro:claims paper=oto"])
def test_readme_card_has_its_sections(section):
    text = (PKG / "README.md").read_text()
    assert section in text
    assert "TODO" not in text


def test_readme_python_example_runs():
    """The README's Python snippet, run as written on the smoke model."""
    import re

    import torch

    from repro_oto.models import oto_bn_cnn

    text = (PKG / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.S)
    model = oto_bn_cnn().eval()
    ns = {"model": model, "example_batch": torch.randn(2, 1, 8, 8), "x_test": torch.randn(16, 1, 8, 8)}
    exec(compile(snippet, "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["numbers"]["slim_max_abs_diff"] == 0.0 and ns["numbers"]["flops_remaining"] == 1.0
    assert isinstance(ns["slim"], torch.nn.Module) and ns["partition"].num_groups == 112
