"""Interrupted trials: time-based checkpoints (off the clock, no effect on results), the key a
checkpoint must match to be resumed, orphaned MLflow runs marked FAILED, stale Snakemake locks.
The same with real signals and processes: tests/test_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from repro import cli, snakemake_locks, tracking
from repro import config as cfg
from repro.checkpoint import Checkpointer
from repro.datasets import DATASETS, prepare
from repro.run import build_context, run_trial, trial_key
from repro.trainer import Trainer

TIMING = ("train_time_s", "train_cpu_time_s", "eval_time_s", "time_to_target_s", "time_to_target_cpu_s")


def _untimed(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _trainer(ctx, epochs=6, **kwargs):
    torch.manual_seed(0)
    model = ctx.workload.build_model()
    return Trainer(ctx, model, torch.optim.Adam(model.parameters(), lr=0.01), epochs=epochs, batch_size=50, **kwargs)


class Interrupted(Exception):
    pass


def _spy_saves(ctx, die_after=None):
    """Record the epoch of every checkpoint saved (and whether the clock ran); optionally die after the n-th."""
    saved, save = [], ctx.checkpoint.save

    def spy(state):
        saved.append((state["method"]["epoch"], ctx.clock.running))
        save(state)
        if die_after is not None and len(saved) == die_after:
            raise Interrupted

    ctx.checkpoint.save = spy
    return saved


def test_time_based_checkpoints_at_epoch_boundaries_off_the_clock_change_no_result(make_ctx, tmp_path):
    straight_ctx = make_ctx(seed=3, checkpoint=tmp_path / "a.pt")
    straight = _trainer(straight_ctx).fit()
    assert not (tmp_path / "a.pt").exists()  # checkpoint_seconds 0 and no checkpoint_every: none

    timed_ctx = make_ctx(seed=3, checkpoint=tmp_path / "b.pt")
    timed_ctx.checkpoint_seconds = 1e-9  # due at every boundary
    saves = _spy_saves(timed_ctx)
    timed = _trainer(timed_ctx).fit()
    assert saves == [(e, False) for e in range(1, 6)]  # every epoch but the last; never on the clock
    assert _untimed(timed_ctx.history) == _untimed(straight_ctx.history)
    for a, b in zip(straight.model.parameters(), timed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_from_a_time_based_checkpoint_matches_the_uninterrupted_run(make_ctx, tmp_path):
    straight_ctx = make_ctx(seed=4, checkpoint=tmp_path / "a.pt")
    _trainer(straight_ctx).fit()
    first = make_ctx(seed=4, checkpoint=tmp_path / "b.pt")
    first.checkpoint_seconds = 1e-9
    _spy_saves(first, die_after=3)
    with pytest.raises(Interrupted):
        _trainer(first).fit()
    resumed = make_ctx(seed=4, checkpoint=tmp_path / "b.pt")
    resumed.checkpoint_seconds = 1e-9
    saves = _spy_saves(resumed)
    _trainer(resumed).fit()
    assert [e for e, _ in saves] == [4, 5]  # went on from epoch 3
    assert _untimed(resumed.history) == _untimed(straight_ctx.history)


def test_checkpoint_due_counts_wall_time_since_the_last_checkpoint(make_ctx, tmp_path):
    ctx = make_ctx(checkpoint=tmp_path / "c.pt")
    assert not ctx.checkpoint_due(3) and ctx.checkpoint_due(4, every=2) and not ctx.checkpoint_due(3, every=2)
    ctx.checkpoint_seconds = 5.0
    assert not ctx.checkpoint_due(1)
    ctx.last_checkpoint_at -= 6.0  # six seconds later
    assert ctx.checkpoint_due(1)
    ctx.save_checkpoint({"epoch": 1})
    assert not ctx.checkpoint_due(2)  # the clock restarts at every checkpoint


def test_a_checkpoint_of_another_setup_or_unreadable_is_not_resumed(tmp_path, capsys):
    path = tmp_path / "c.pt"
    Checkpointer(path, key="a").save({"x": torch.ones(2)})
    assert torch.equal(Checkpointer(path, key="a").load()["x"], torch.ones(2))
    assert Checkpointer(path, key="b").load() is None and not path.exists()
    assert "written by another setup" in capsys.readouterr().err
    path.write_bytes(b"not a checkpoint")
    assert Checkpointer(path, key="a").load() is None and not path.exists()
    assert "unreadable" in capsys.readouterr().err


@pytest.fixture
def sine_config(project, config):
    prepare(DATASETS.get("sine"), cfg.dataset_params(config, "sine"))
    return config


def test_trial_key_names_setup_code_and_threads(sine_config):
    ctx, hp = build_context("fake", "sine", "gd", 0, "smoke")
    assert ctx.checkpoint.key == trial_key(ctx, hp) == build_context("fake", "sine", "gd", 0, "smoke")[0].checkpoint.key
    assert build_context("fake", "sine", "boosted", 0, "smoke")[0].checkpoint.key != ctx.checkpoint.key
    assert trial_key(ctx, {**hp, "lr": 0.5}) != ctx.checkpoint.key
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert trial_key(ctx, hp) != ctx.checkpoint.key  # thread count changes the numbers
    finally:
        torch.set_num_threads(threads)


def test_run_trial_checkpoints_by_the_configured_seconds_with_the_same_result(sine_config, mlflow_store, monkeypatch):
    plain = json.loads(run_trial("fake", "sine", "boosted", 0, "smoke", {**sine_config, "checkpoint_seconds": 0},
                                 progress=False).read_text())
    saves = []
    save = Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save", lambda self, state: (saves.append(state["method"]["epoch"]),
                                                                   save(self, state)))
    timed = json.loads(run_trial("fake", "sine", "boosted", 0, "smoke", {**sine_config, "checkpoint_seconds": 1e-9},
                                 progress=False).read_text())
    assert saves == [1, 2]  # three epochs: a checkpoint after each but the last
    assert _untimed(timed["history"]) == _untimed(plain["history"])


def test_checkpoint_seconds_is_validated(sine_config, capsys):
    rc = cli.main(["run", "fake", "--experiment", "sine", "--method", "gd", "--seed", "0", "--checkpoint-seconds", "-1"])
    err = capsys.readouterr().err
    assert rc == 2 and "config key 'checkpoint_seconds'" in err and "Traceback" not in err


def _running(client, exp_id, name, seed="0", **tags):
    identity = {"paper": "fake", "experiment": "sine", "method": "gd", "scale": "smoke", "seed": seed}
    return client.create_run(exp_id, run_name=name, tags={**identity, **tracking._process_tags(), **tags}).info.run_id


def test_orphaned_runs_of_the_trial_are_marked_failed(project, mlflow_store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    exp = tracking.get_or_create_experiment(mlflow_store, "fake")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    elsewhere = _running(client, exp, "sine/gd/seed0", **{"repro.host": "another-node", "repro.pid": "1"})
    ended_here = _running(client, exp, "sine/gd/seed0", **{"repro.pid": dead.stdout.strip()})
    alive_here = _running(client, exp, "sine/gd/seed0")  # this very process: still running
    other_seed = _running(client, exp, "sine/gd/seed1", seed="1", **{"repro.host": "another-node"})
    other_project = _running(client, exp, "sine/gd/seed0", **{"repro.host": "another-node", "repro.project": "x"})

    tags = {"paper": "fake", "experiment": "sine", "method": "gd", "scale": "smoke", "seed": "0"}
    with tracking.TrackedRun("fake", "sine/gd/seed0", {"a": 1}, tags) as tracked:
        pass
    status = {r: client.get_run(r).info.status for r in (elsewhere, ended_here, alive_here, other_seed, other_project)}
    assert status == {elsewhere: "FAILED", ended_here: "FAILED", alive_here: "RUNNING", other_seed: "RUNNING",
                      other_project: "RUNNING"}
    assert client.get_run(elsewhere).data.tags["error"] == (
        f"orphaned: its process (pid 1 on another-node) ended without closing the run; "
        f"the trial was run again as {tracked.run_id}")
    assert client.get_run(tracked.run_id).info.status == "FINISHED"
    assert client.get_run(tracked.run_id).data.tags["repro.pid"] == str(os.getpid())


def test_a_checkpoint_naming_a_run_the_store_lacks_logs_to_a_new_run(project, mlflow_store, capsys):
    with tracking.TrackedRun("fake", "r", {}, {}, resume_run_id="f" * 32) as tracked:
        pass
    assert tracked.run_id != "f" * 32 and "logs to a new run" in capsys.readouterr().err


HOLD = ("import sys, time; from pathlib import Path; from repro import snakemake_locks; "
        "snakemake_locks.hold(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)")


def test_stale_snakemake_locks_are_cleared_only_when_no_instance_lives(tmp_path):
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("data/x\n")
    (locks / "0.output.lock").write_text("results/x\n")
    live = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "held\n"  # it was alone: it cleared the stale locks
        assert not list(locks.glob("*.lock"))
        (locks / "0.output.lock").write_text("results/x\n")  # the live instance's own lock
        # Another process: the first one lives (holds its shared lock), so its lock file is real.
        other = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(60)", "pass"), str(tmp_path)],
                               capture_output=True, text=True, timeout=60)
        assert other.stdout == "held\n" and (locks / "0.output.lock").exists()
    finally:
        live.kill()
        live.wait()
    # The live one is gone (killed: its lock file is now stale): the next instance clears it.
    assert [p.name for p in snakemake_locks.hold(tmp_path)] == ["0.output.lock"]
    snakemake_locks._held.pop().close()
