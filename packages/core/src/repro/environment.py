"""What ran where: code version, package versions, hardware. Recorded with every run and report."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

import repro
from repro import paths
from repro.papers import get_paper, papers

PACKAGES = ("torch", "torchvision", "numpy", "mlflow", "snakemake", "dvc", "triton")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=paths.project_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.cache
def git_state() -> dict[str, str]:
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def source_dirs(paper: str) -> list[Path]:
    """The source trees a trial of *paper* runs: the core's and the paper package's — the
    project's own ``packages/<name>/src`` in a checkout, else wherever they are installed."""
    core = Path(repro.__file__).resolve().parent.parent.parent  # .../packages/core
    return [paths.checkout_dir(d) / "src" for d in (core, get_paper(paper).package_dir.resolve())]


@functools.cache
def tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and not f.name.endswith((".pyc", ".egg-info")):
            h.update(str(f.relative_to(directory)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def code_digest(paper: str) -> str:
    """sha256 over the content of the core's and *paper*'s source (not their mtimes)."""
    return hashlib.sha256("".join(tree_digest(d) for d in source_dirs(paper)).encode()).hexdigest()[:16]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_name()}"


@functools.cache
def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    for ep in papers().values():
        dist = ep.entry_point.dist
        if dist is not None:
            found[dist.name] = dist.version
    return found


def hardware() -> dict[str, str]:
    info = {
        "cpu": cpu_name(),
        "cpu_count": str(os.cpu_count()),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return info


def select_device() -> torch.device:
    """``$REPRO_DEVICE`` if set, else CUDA when present, else CPU."""
    wanted = os.environ.get("REPRO_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
