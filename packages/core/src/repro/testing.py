"""Helpers for the packages' tests (imported only by tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from repro import catalog, config
from repro import trainer as T
from repro.datasets import prepare
from repro.papers import get_paper
from repro.run import build_context, summarise


def run_under_triton_interpreter(script: Path, src: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run *script* in a fresh Python with ``TRITON_INTERPRET=1`` (Triton reads it when first
    imported, so it cannot be switched on inside a running test process); *src* goes first on
    ``PYTHONPATH``. Returns the finished process (stdout/stderr captured) for the test to check."""
    path = os.pathsep.join(filter(None, [str(src) if src else "", os.environ.get("PYTHONPATH", "")]))
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout)


class RecordingRow(dict):
    """An evaluation row that appends every key read from it to ``log`` (what a hook consulted)."""

    def __init__(self, row: dict, log: list[str]) -> None:
        super().__init__(row)
        self.log = log

    def __getitem__(self, key: str):
        self.log.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        self.log.append(key)
        return super().get(key, default)


def temp_project(root: Path, checkout: Path, monkeypatch, datasets: tuple[str, ...] = ()) -> Path:
    """A throw-away project in *root*: *checkout*'s params.yaml and config schema, the CPU, no
    outside tracking URI or mirror, and *datasets* prepared with their params.yaml parameters."""
    shutil.copyfile(checkout / "params.yaml", root / "params.yaml")
    schema = root / config.SCHEMA_RELPATH
    schema.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkout / config.SCHEMA_RELPATH, schema)
    for var in ("REPRO_DATA_MIRROR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REPRO_ROOT", str(root))
    monkeypatch.setenv("REPRO_DEVICE", "cpu")
    monkeypatch.chdir(root)
    for name in datasets:
        prepare(catalog.get_dataset(name), config.dataset_params(config.load(), name))
    return root


def spy_trial(paper: str, experiment: str, method: str, monkeypatch, overrides: dict | None = None,
              prepare_ctx=None):
    """Run one smoke trial of *method* (without MLflow) while recording what it did: every
    ``Trainer`` it built (``trainers``), the ``decision`` flag of every evaluation
    (``decisions``) and every metric read from an evaluation row (``reads``). *prepare_ctx(ctx)*
    may alter the context first (e.g. the validation targets). Returns a namespace with those,
    ``ctx`` and ``summary``."""
    ctx, hparams = build_context(paper, experiment, method, seed=0, scale="smoke")
    if prepare_ctx is not None:
        prepare_ctx(ctx)
    spy = SimpleNamespace(trainers=[], decisions=[], reads=[])
    evaluate = ctx.evaluate

    def spying_evaluate(predict, epoch, step, decision=False, **values):
        spy.decisions.append(decision)
        return RecordingRow(evaluate(predict, epoch, step, decision=decision, **values), spy.reads)

    ctx.evaluate = spying_evaluate
    fit = T.Trainer.fit

    def spying_fit(self):
        spy.trainers.append(self)
        return fit(self)

    monkeypatch.setattr(T.Trainer, "fit", spying_fit)
    get_paper(paper).method(method).fit(ctx, {**hparams, **(overrides or {})})
    spy.ctx, spy.summary = ctx, summarise(ctx)
    return spy
