"""Every registered paper, every method: its declaration resolves and validates at every scale, a
tiny training run, and an interrupted run that resumes to exactly the uninterrupted result.
Adding a paper adds its cases here automatically."""

from __future__ import annotations

import math

import pytest
import torch

from repro import catalog
from repro import config as cfg
from repro.datasets import prepare
from repro.datasets.downloaded import resolve_mirror
from repro.models import MODELS
from repro.papers import get_paper, papers
from repro.run import build_context, summarise
from repro.scales import SCALES

CASES = [
    (slug, exp.name, method)
    for slug in sorted(papers())
    for exp in get_paper(slug).experiments_at("smoke").values()
    for method in exp.methods
]
# Every (paper, scale, experiment, method) the registry declares, at both scales.
ALL_CASES = [
    (slug, scale, exp.name, method)
    for slug in sorted(papers())
    for scale in SCALES
    for exp in get_paper(slug).experiments_at(scale).values()
    for method in exp.methods
]
TIMING = {"train_time_s", "train_cpu_time_s"}


class Interrupted(Exception):
    pass


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temp project with the real config; the data mirror made absolute so it still resolves."""
    import shutil

    import yaml

    from conftest import MIRROR, ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data_mirror"] = str(MIRROR)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    schema = tmp_path / "workflow" / "schemas" / "config.schema.yaml"
    schema.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "workflow" / "schemas" / "config.schema.yaml", schema)
    monkeypatch.setenv("REPRO_ROOT", str(tmp_path))
    monkeypatch.setenv("REPRO_DEVICE", "cpu")
    return tmp_path


@pytest.mark.parametrize(("slug", "scale", "experiment", "method"), ALL_CASES,
                         ids=["-".join(c) for c in ALL_CASES])
def test_every_declared_trial_resolves_and_validates(slug, scale, experiment, method):
    """What `repro run` checks before any work, for every trial of every installed paper at every
    scale: the merged hyper-parameters (tunable + the method's fixed switches) are accepted by the
    method, and the workload, its dataset and its model resolve through the catalog."""
    paper = get_paper(slug)
    spec = paper.method(method)
    hparams = paper.trial_hparams(scale, experiment, method)
    tunable = paper.experiment(scale, experiment).methods[method]
    assert not set(tunable) & set(spec.fixed), "an experiment sets a fixed switch"
    assert hparams == {**tunable, **spec.fixed}
    spec.validate(hparams)
    if scale == "smoke" and method in paper.tiny_hparams:  # what the tiny runs below train with
        spec.validate({**hparams, **paper.tiny_hparams[method]})
    workload = catalog.get_workload(paper.experiment(scale, experiment).workload)
    dataset = catalog.get_dataset(workload.dataset)
    assert dataset.name == workload.dataset
    assert workload.model in MODELS
    assert workload.target_metric == "val_" + workload.metric_names[0]


def test_every_claim_names_declared_experiments_and_methods():
    for slug in papers():
        paper = get_paper(slug)
        for claim in paper.claims:
            if claim.not_run:
                continue
            for scale in claim.scales:
                for name in claim.experiment_names:
                    methods = paper.experiment(scale, name).methods
                    assert claim.method in methods and (claim.baseline is None or claim.baseline in methods)


def _fit(slug, experiment, method, hparams_override, interrupt_after_first_checkpoint=False):
    ctx, hparams = build_context(slug, experiment, method, seed=0, scale="smoke")
    hparams.update(hparams_override)
    if interrupt_after_first_checkpoint:
        save = ctx.save_checkpoint

        def save_then_die(state):
            save(state)
            raise Interrupted

        ctx.save_checkpoint = save_then_die
    get_paper(slug).method(method).fit(ctx, hparams)
    return ctx


def _comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


@pytest.mark.parametrize(("slug", "experiment", "method"), CASES)
def test_tiny_run_and_resume(project, slug, experiment, method):
    paper = get_paper(slug)
    assert method in paper.tiny_hparams, f"paper {slug!r} declares no tiny_hparams for {method!r}"
    tiny = paper.tiny_hparams[method]
    dataset = catalog.get_dataset(catalog.get_workload(paper.experiment("smoke", experiment).workload).dataset)
    config = cfg.load()
    mirror = resolve_mirror(config["data_mirror"])
    if dataset.kind == "downloaded" and mirror is None:
        pytest.skip(f"{dataset.name} needs a download and no data mirror is configured (offline)")
    prepare(dataset, cfg.dataset_params(config, dataset.name), mirror=mirror)

    straight = _fit(slug, experiment, method, tiny)
    summary = summarise(straight)
    quality = straight.workload.quality_metric
    assert math.isfinite(summary[quality])
    assert summary["forward_evals"] > 0 and summary["train_time_s"] > 0
    assert summary["eval_time_s"] > 0

    with pytest.raises(Interrupted):
        _fit(slug, experiment, method, {**tiny, "checkpoint_every": 1}, interrupt_after_first_checkpoint=True)
    resumed = _fit(slug, experiment, method, {**tiny, "checkpoint_every": 1})
    assert _comparable(resumed.history) == _comparable(straight.history)
    assert resumed.forward_evals == straight.forward_evals


def test_every_paper_has_claims_for_both_scales():
    for slug in papers():
        paper = get_paper(slug)
        for scale in ("smoke", "paper"):
            assert paper.claims_at(scale), f"{slug} has no claims at {scale}"
            assert paper.experiments_at(scale), f"{slug} has no experiments at {scale}"


def test_torch_generator_state_round_trips_through_checkpoints(project):
    # What resume relies on: the run's generator state survives a weights_only save/load.
    g = torch.Generator().manual_seed(3)
    from repro.checkpoint import Checkpointer

    ck = Checkpointer(project / "c.pt")
    ck.save({"g": g.get_state()})
    expected = torch.rand(3, generator=g)
    g2 = torch.Generator()
    g2.set_state(ck.load()["g"])
    assert torch.equal(torch.rand(3, generator=g2), expected)
