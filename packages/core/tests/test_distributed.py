"""Multi-process training (``repro.distributed``): the Trainer in two gloo processes against one
process, a killed two-process run resumed from rank 0's checkpoint, and what is refused.

Tolerance of "the same as one process": two processes compute each batch's gradient as the mean
of two half-batch means (weighted by their shares) instead of one mean over the batch, so the
float32 sums run in another order; that differs in the last bits (~1e-7 relative) and, over the
76 SGD steps here, stays there (measured: at most 2.2e-7 relative on the losses). Continuous
metrics must agree to 1e-5 relative: 45x the measured difference, and 14x below what a wrong
split does (the uneven last batch, 31/30, left unweighted: 1.4e-4 relative on the final
validation loss, measured); accuracies to one sample; every counter (epochs, steps, forward
passes) exactly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from repro import config as cfg
from repro import distributed, pipeline
from repro.errors import ReproError

WORKER = Path(__file__).with_name("ddp_worker.py")
REL = 1e-5


def _run(out: Path, processes: int, checkpoint: Path, *mode: str) -> list[dict]:
    out.mkdir()
    args = [str(WORKER), str(out), str(checkpoint), *mode]
    if processes == 1:
        subprocess.run([sys.executable, *args], check=True, timeout=300)
    else:
        distributed.launch(processes, args, threads=1)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if "time" not in k} for row in history]


@pytest.fixture
def digits(project, config):
    from repro.datasets import DATASETS, prepare

    prepare(DATASETS.get("digits"), cfg.dataset_params(config, "digits"))


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume_from_rank_0s_checkpoint(digits, tmp_path):
    one = _run(tmp_path / "one", 1, tmp_path / "one.pt")[0]
    two = _run(tmp_path / "two", 2, tmp_path / "two.pt")
    assert one["world"] == 1 and [r["world"] for r in two] == [2, 2]
    # every process records the same history (gathered evaluations, summed counters)
    assert _untimed(two[0]["history"]) == _untimed(two[1]["history"])
    n_test = 450  # digits' test split
    for a, b in zip(one["history"], two[0]["history"], strict=True):
        assert (a["epoch"], a["step"], a["forward_evals"]) == (b["epoch"], b["step"], b["forward_evals"])
        for key in ("val_accuracy", "test_accuracy"):
            assert abs(a[key] - b[key]) <= 1.001 / n_test, (key, a, b)
        for key in ("val_cross_entropy", "test_cross_entropy", "train_loss"):
            assert math.isclose(a[key], b[key], rel_tol=REL), (key, a[key], b[key])
    assert one["forward_evals"] == two[0]["forward_evals"] == 4 * 1211  # each sample once per epoch, not twice

    # Killed at the start of epoch 3 (after rank 0's epoch-2 checkpoint) and run again: every process
    # resumes from it and the run ends exactly as the uninterrupted one (same process count).
    ckpt = tmp_path / "killed.pt"
    with pytest.raises(ReproError, match=r"multi-process run failed \(2 processes\): rank \d exited with code 3"):
        _run(tmp_path / "killed", 2, ckpt, "crash", "2")
    assert ckpt.is_file()
    resumed = _run(tmp_path / "resumed", 2, ckpt)
    assert [r["resumed"] for r in resumed] == [True, True]
    assert _untimed(resumed[0]["history"]) == _untimed(two[0]["history"])
    assert _untimed(resumed[1]["history"]) == _untimed(two[0]["history"])

    # A hook that does not declare `distributed` is refused in several processes, naming it.
    with pytest.raises(ReproError, match=r"rank \d exited with code 2"):
        _run(tmp_path / "undeclared", 2, tmp_path / "undeclared.pt", "undeclared")
    msg = (tmp_path / "undeclared" / "error.txt").read_text()
    assert "method 'gd'" in msg and "Undeclared" in msg and "1 process" in msg


def test_a_method_without_multi_process_support_is_refused_before_any_process_starts(project, capsys):
    from repro import cli, paths

    code = cli.main(["run", "fake", "--experiment", "sine", "--method", "boosted", "--seed", "0",
                     "--processes", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "method 'boosted' of paper 'fake' does not support multi-process training" in err
    assert not paths.trial_path("fake", "smoke", "sine", "boosted", 0).exists()
    assert cli.main(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--processes", "0"]) == 2
    assert "--processes must be >= 1, got 0" in capsys.readouterr().err


def test_processes_per_trial_launches_each_trial_in_n_processes_and_reserves_their_cores(config):
    assert config["processes_per_trial"] == 1  # the default: one process, the command as before
    assert "--processes" not in pipeline.train_cmd("fake", "smoke", "sine", "gd", config)
    two = cfg.validate({**config, "processes_per_trial": 2, "threads_per_trial": 3})
    assert " --threads 3 --processes 2 " in pipeline.train_cmd("fake", "smoke", "sine", "gd", two)
    assert pipeline.trial_cores("fake", "paper", "sine", two, all_cores=64) == 6  # threads x processes
    assert "sine" in pipeline.timed_experiments("fake", "smoke")  # timed: every core, and at least 6
    assert pipeline.trial_cores("fake", "smoke", "sine", two, all_cores=4) == 6
    with pytest.raises(ReproError, match="method 'boosted' of paper 'fake' does not support multi-process"):
        pipeline.train_cmd("fake", "smoke", "sine", "boosted", two)
    with pytest.raises(ReproError, match="processes_per_trial"):
        cfg.validate({**config, "processes_per_trial": 0})


def test_which_methods_may_train_in_several_processes(fake_paper):
    from repro.trainer import LRSchedule, PlateauStop

    # plain gradient descent may; a method with hooks only if it says so (and its hooks do)
    assert fake_paper.method("gd").distributed and not fake_paper.method("boosted").distributed
    assert LRSchedule.distributed and PlateauStop.distributed
    distributed.check_hooks([object()], "x")  # one process: any hook
