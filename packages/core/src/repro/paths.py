"""Where things live in a project checkout. Every path the pipeline writes is derived here."""

from __future__ import annotations

import os
from pathlib import Path

from repro.errors import ReproError

PARAMS_FILE = "params.yaml"


def project_root() -> Path:
    """The project root: ``$REPRO_ROOT`` or the nearest parent of the cwd holding params.yaml."""
    env = os.environ.get("REPRO_ROOT")
    if env:
        root = Path(env).resolve()
        if not (root / PARAMS_FILE).is_file():
            raise ReproError(f"REPRO_ROOT={env} has no {PARAMS_FILE}")
        return root
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / PARAMS_FILE).is_file():
            return candidate
    raise ReproError(
        f"no {PARAMS_FILE} in {here} or its parents; run inside a project checkout or set REPRO_ROOT"
    )


def rel(path: Path) -> str:
    """A path relative to the project root, as the pipeline files spell it."""
    return os.path.relpath(path, project_root())


def data_dir() -> Path:
    return project_root() / "data"


def prepared_data_path(dataset: str) -> Path:
    return data_dir() / "prepared" / f"{dataset}.pt"


def results_dir(paper: str, scale: str) -> Path:
    return project_root() / "results" / paper / scale


def trial_path(paper: str, scale: str, experiment: str, method: str, seed: int) -> Path:
    return results_dir(paper, scale) / experiment / method / f"seed{seed}.json"


def claims_path(paper: str, scale: str) -> Path:
    return results_dir(paper, scale) / "claims.json"


def metrics_path(paper: str, scale: str) -> Path:
    return results_dir(paper, scale) / "metrics.json"


def reports_dir(paper: str | None = None) -> Path:
    base = project_root() / "reports"
    return base / paper if paper else base


def checkpoint_dir() -> Path:
    return project_root() / ".checkpoints"


def checkout_dir(installed: Path) -> Path:
    """A workspace package's folder in this project (``packages/<name>``) if the project has it,
    else *installed* (where the package was installed from)."""
    local = project_root() / "packages" / installed.name
    return local if local.is_dir() else installed
