"""The prepared device check (scripts/device_check.py) end to end in its CPU dry run: every step
runs in its own time-boxed process, and the JSON and Markdown summaries say what ran and how it went."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check.py"


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Device check\n", 1)[1].split("\n## ", 1)[0]
    return [line.split() for line in section.splitlines() if line.startswith("scripts/device_check.sh")]


def test_readme_section_has_the_device_and_the_dry_run_command():
    cmds = _readme_commands()
    assert len(cmds) == 2 and "--dry-run" not in cmds[0] and "--dry-run" in cmds[1]
    assert (ROOT / "scripts" / "device_check.sh").stat().st_mode & 0o111  # executable as the README runs it


def test_help_names_the_steps_and_the_dry_run():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("--dry-run", "--budget", "--out", "gpu", "bench", "timing", "mnist", "airbench"):
        assert word in proc.stdout


def test_bad_step_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "gpu,nope", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr and "steps: gpu, bench" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path):
    (cmd,) = [c for c in _readme_commands() if "--dry-run" in c]  # the README's command, as written
    out = tmp_path / "dc"
    args = [str(out) if prev == "--out" else a for prev, a in zip([""] + cmd[1:], cmd[1:])]
    env = {**os.environ, "REPRO_DATA_MIRROR": os.environ.get("REPRO_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    doc = json.loads((out / "device_check.json").read_text())
    assert doc["dry_run"] is True and doc["device"].startswith("CPU")
    steps = {r["step"]: r for r in doc["steps"]}
    assert {"gpu", "bench-all", "timing-all", "mnist-approx", "airbench"} <= set(steps)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + json.dumps(doc["steps"], indent=1)[:4000]
    assert all(r["status"] in ("ok", "skipped") for r in doc["steps"])
    bench = {i["name"]: i for i in steps["bench-all"]["result"]["items"]}
    assert {"approx", "trainer"} <= set(bench) and all(i["status"] == "ok" for i in bench.values())
    assert (out / "bench" / "approx.json").is_file() and (out / "bench" / "trainer.json").is_file()
    timing = [i for i in steps["timing-all"]["result"]["items"] if i["status"] == "ok"]
    assert len(timing) == 1 and timing[0]["label"].startswith("synthetic CIFAR-shaped")
    assert [m["time_ratio"] for m in timing[0]["methods"]][0] == 1.0  # the baseline first
    (mnist,) = steps["mnist-approx"]["result"]["items"]
    assert all(0 <= m["test_accuracy"] <= 1 for m in mnist["methods"])
    (fast,) = steps["airbench"]["result"]["items"]  # our fast CIFAR baseline ran; airbench needs CUDA
    assert fast["status"] == "ok" and fast["ours_mean_s"] > 0 and fast["ratio_ours_over_airbench"] is None
    md = (out / "device_check.md").read_text()
    assert "Fast CIFAR-10 baseline vs airbench94" in md and "airbench not run" in md
    assert "# Device check (dry run)" in md and "speed ratios only" in md and "real MNIST" in md
    assert "says nothing about a GPU" in md or "say nothing about a GPU" in md
