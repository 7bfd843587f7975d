"""A Snakemake run killed and started again needs no ``--unlock``: stale locks are told from live ones.

Snakemake locks a working directory with files (``.snakemake/locks/*.lock``, listing the files
a run reads and writes) and deletes them when it exits. A run killed with SIGKILL, lost with
its machine or cut by a reboot leaves them behind, and every later run stops with "Directory
cannot be locked" until someone runs ``snakemake --unlock`` — which is unsafe while another
instance really is running there, because the lock files do not say whose they are.

The Snakefile calls :func:`hold` while it is parsed, so every snakemake process of this
workflow holds a *shared* ``flock`` on ``.snakemake/repro-instances.lock`` for as long as it
lives, and so does every training job (``repro run``, :func:`join`); the kernel drops it when the
process ends, however it ends. A process that can take that
lock *exclusively* is the only live instance: every Snakemake lock file present was left by a
dead one, and it deletes them before Snakemake looks. Otherwise another instance lives (a run,
a dry run, a SLURM job of a run) and the lock files are left to Snakemake's own check.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path
from typing import IO

INSTANCES = "repro-instances.lock"
_held: list[IO[str]] = []  # the open lock file of this process, kept until it exits


def hold(workdir: Path | None = None, clear_stale: bool = True) -> list[Path]:
    """Register this process as a live instance in *workdir* (default: the cwd) and, if it is the
    only one and *clear_stale*, delete the Snakemake lock files a dead instance left.
    Returns the lock files deleted."""
    meta = (workdir or Path.cwd()) / ".snakemake"
    meta.mkdir(parents=True, exist_ok=True)
    fh = open(meta / INSTANCES, "a")  # noqa: SIM115 - held open for the life of the process
    removed: list[Path] = []
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another instance is alive: its locks (if any) are real
    else:
        if clear_stale:
            for f in sorted((meta / "locks").glob("*.lock")):
                f.unlink(missing_ok=True)
                removed.append(f)
    fcntl.flock(fh, fcntl.LOCK_SH)  # waits only while another instance clears stale locks
    _held.append(fh)
    if removed:
        print(f"repro: removed {len(removed)} stale Snakemake lock file(s) left by an interrupted run "
              f"(no other snakemake instance is running in {meta.parent})", file=sys.stderr)
    return removed


def join(root: Path) -> None:
    """Count a pipeline job (``repro run``) as a live instance while it runs: if only the snakemake
    process of a run was killed, its jobs go on, and a restart must not take its locks for stale."""
    if (root / ".snakemake").is_dir():
        hold(root, clear_stale=False)
