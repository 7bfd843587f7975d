"""Every registered paper, every method: a tiny training run, and an interrupted run that resumes
to exactly the uninterrupted result. Adding a paper adds its cases here automatically."""

from __future__ import annotations

import math

import pytest
import torch

from repro.datasets import get_dataset, prepare
from repro.datasets.downloaded import mirror_dir
from repro.registry import get_paper, papers
from repro.run import build_context, summarise
from repro.workloads import get_workload

CASES = [
    (slug, exp.name, method)
    for slug in sorted(papers())
    for exp in get_paper(slug).experiments_at("smoke").values()
    for method in exp.methods
]
TIMING = {"train_time_s"}


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
    dataset = get_dataset(get_workload(paper.experiment("smoke", experiment).workload).dataset)
    if dataset.kind == "downloaded" and mirror_dir() is None:
        pytest.skip(f"{dataset.name} needs a download and no data mirror is configured (offline)")
    prepare(dataset.name)

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
