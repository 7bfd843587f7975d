"""The bad-input contract for the installed `repro` command in real processes, with the real papers.

The sweep itself runs in-process on the core's fake paper (packages/core/tests/test_bad_input.py);
these two check the same contract end to end where the process boundary matters: the network
blocked through the environment (an unreachable proxy), and a real paper's trial refusing a
prepared file that passes its checksum but that ``torch.load(weights_only=True)`` refuses. Each:
exit 2, one ``repro: error:`` line naming the file and the fix, no traceback, nothing left that
looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run

SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"
OFFLINE = {var: "http://127.0.0.1:9" for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
                                                  "ALL_PROXY", "all_proxy")}
OFFLINE.update(NO_PROXY="", no_proxy="", REPRO_DATA_MIRROR="")  # port 9 (discard) refuses; no mirror


@pytest.fixture
def bare_project(tmp_path: Path) -> Path:
    """The checkout's params.yaml and config schema, nothing else (its data_mirror does not exist here)."""
    root = tmp_path / "project"
    (root / SCHEMA).parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "params.yaml", root / "params.yaml")
    shutil.copyfile(ROOT / SCHEMA, root / SCHEMA)
    return root


def repro(project: Path, *args: str, **env: str):
    return run(["repro", *args], project, check=False, timeout=300, REPRO_DEVICE="cpu", **env)


def one_clean_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repro: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def nothing_finished(project: Path) -> None:
    assert not (project / "results").exists()
    assert not (project / "mlflow.db").exists()
    assert not (project / "data" / "prepared" / "mnist.pt").exists()


def test_download_without_network_or_mirror(bare_project):
    proc = repro(bare_project, "data", "prepare", "mnist", **OFFLINE)
    one_clean_error(proc, "could not download https://",
                    "Connection refused",  # by the blocked proxy: the download was tried, through it
                    "No copy of MNIST/raw/train-images-idx3-ubyte was found in a local mirror",
                    "set REPRO_DATA_MIRROR to a directory that holds it")
    nothing_finished(bare_project)
    raw = bare_project / "data" / "raw"
    assert not raw.exists() or not [f for f in raw.rglob("*") if f.is_file()]  # no partial download


class NotATensor:
    """Anything torch.load(weights_only=True) refuses to unpickle."""


def test_prepared_file_that_weights_only_refuses(bare_project):
    """The issue's case: the sidecar matches, the content is a pickle of a foreign object."""
    trial = ("enkf", "--experiment", "sine", "--method", "esmda", "--seed", "0", "--no-progress")
    path = bare_project / "data" / "prepared" / "sine.pt"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        torch.save({"x_train": torch.zeros(2, 1), "meta": NotATensor()}, fh)
    path.with_name("sine.pt.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")
    proc = repro(bare_project, "run", *trial)
    one_clean_error(proc, f"{path} matches its checksum but is not a prepared dataset that can be loaded safely",
                    "delete it and run `repro data prepare sine` again")
    assert "UnpicklingError" not in proc.stderr.replace("(UnpicklingError)", "")
    nothing_finished(bare_project)



def test_output_into_a_closed_pipe_ends_quietly():
    """`repro experiments wus | head`: the reader has gone; the command stops with 141 (128 + SIGPIPE)
    and no traceback (stdout unbuffered here, so the first write meets the closed pipe)."""
    import subprocess
    import sys

    from conftest import tool_env

    script = ("import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1); from repro.cli import main; "
              "rc = main(['experiments', 'wus', '--hparams']); sys.stderr.write(f'rc={rc}')")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env=tool_env(PYTHONUNBUFFERED="1"), timeout=120)
    assert "rc=141" in proc.stderr and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
