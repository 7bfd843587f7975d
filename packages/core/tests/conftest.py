"""Fixtures for the repro core tests.

Every test runs with its cwd in a temp dir and without ``REPRO_ROOT``, so a test that forgets
the ``project`` fixture fails (no params.yaml found) instead of writing into the real checkout.

The core tests stand alone: they see exactly one paper, the FAKE one of ``fake_paper.py``
(added with ``repro.papers.add_paper``), and none of the installed paper packages, so they pass
(and their messages read the same) whichever papers are installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

MAIN = Path(__file__).resolve().parents[3]  # the monorepo root (packages/core/tests -> ...)
SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def _forget_paper_caches() -> None:
    from repro import catalog, environment

    catalog._load_all.cache_clear()
    environment.package_versions.cache_clear()


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No test sees the real checkout as its project root, whatever the caller's environment,
    nor any installed paper: only the FAKE paper is registered."""
    from repro import papers

    from .fake_paper import PAPER

    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    for var in ("REPRO_ROOT", "REPRO_DATA_MIRROR", "MLFLOW_TRACKING_URI", "REPRO_DEVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(papers, "_entry_points", lambda: {})
    _forget_paper_caches()
    papers.add_paper(PAPER)
    yield
    papers.remove_paper(PAPER.slug)
    _forget_paper_caches()


@pytest.fixture
def fake_paper():
    """The FAKE paper object (registered for every test as ``fake``)."""
    from .fake_paper import PAPER

    return PAPER


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A throw-away project root: params.yaml + the config schema, MLflow in a temp SQLite file."""
    from repro import environment

    root = tmp_path / "project"
    (root / SCHEMA).parent.mkdir(parents=True)
    # The real params.yaml, pinned to the FAKE paper: these tests check the DAG against it.
    params = yaml.safe_load((MAIN / "params.yaml").read_text())
    params["papers"] = ["fake"]
    # The leaderboard's stages have their own tests (test_leaderboard.py); off for the paper DAG tests.
    params["leaderboard"] = {**params["leaderboard"], "methods": "all", "workloads": {"smoke": [], "paper": []}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copyfile(MAIN / SCHEMA, root / SCHEMA)
    monkeypatch.setenv("REPRO_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("REPRO_DEVICE", "cpu")  # same numbers on every machine
    monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
    monkeypatch.chdir(root)
    environment.git_state.cache_clear()  # computed from the project root
    yield root
    environment.git_state.cache_clear()


@pytest.fixture
def config(project) -> dict:
    from repro import config as cfg

    return cfg.load()


@pytest.fixture
def sine_data(project, config):
    """The ``sine`` dataset, prepared into the temp project and loaded back."""
    from repro import config as cfg
    from repro.datasets import DATASETS, load_prepared, prepare

    prepare(DATASETS.get("sine"), cfg.dataset_params(config, "sine"))
    return load_prepared("sine")


@pytest.fixture
def make_ctx(project, sine_data):
    """Build a fresh RunContext on the ``sine`` workload (CPU, its validation split carved out),
    as run_trial would."""
    from repro import paths
    from repro.checkpoint import Checkpointer
    from repro.run import RunContext, seed_everything
    from repro.timing import TrainClock
    from repro.workloads import get_workload

    def make(seed: int = 0, workload: str = "sine", checkpoint: Path | None = None) -> RunContext:
        device = torch.device("cpu")
        seed_everything(seed, device)
        wl = get_workload(workload)
        return RunContext(
            paper="test", experiment="exp", method="gd", seed=seed, scale="smoke",
            workload=wl, data=wl.split(sine_data), device=device, clock=TrainClock(device),
            checkpoint=Checkpointer(checkpoint or paths.checkpoint_dir() / f"seed{seed}.pt"),
            generator=torch.Generator().manual_seed(seed), progress=False,
        )

    return make


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store with its schema migrated (~5 s), made once per session."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_store(project, _migrated_store) -> str:
    """The project's tracking store, pre-migrated (tests of a *fresh* store must not use this)."""
    import os

    uri = os.environ["MLFLOW_TRACKING_URI"]
    shutil.copyfile(_migrated_store, uri.removeprefix("sqlite:///"))
    return uri
