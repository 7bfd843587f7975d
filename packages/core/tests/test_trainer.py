"""The gradient training loop: hooks, batch selection, skipped steps, early stop, resume, timing."""

from __future__ import annotations

import time

import pytest
import torch

from repro.errors import ReproError
from repro.models import flat_parameters
from repro.timing import TrainClock
from repro.trainer import Hook, PlateauStop, Trainer, gradient_descent, validate_gradient_hparams
from repro.workloads import Workload

EVENTS = ["fit_start", "epoch_start", "select_batch", "before_forward", "after_forward", "before_backward",
          "after_backward", "before_optimizer_step", "after_optimizer_step", "epoch_end", "fit_end"]


def make_trainer(ctx, *, init_seed=0, lr=0.01, optimizer="adam", **kwargs) -> Trainer:
    torch.manual_seed(init_seed)
    model = ctx.workload.build_model()
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer](model.parameters(), lr=lr)
    kwargs.setdefault("batch_size", 50)
    return Trainer(ctx, model, opt, **kwargs)


class Recorder(Hook):
    """Records every hook event, whether the training clock ran, and how many evaluations existed."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.clock_running: list[bool] = []
        self.history_len: dict[str, list[int]] = {}

    def _log(self, name: str, state) -> None:
        self.events.append(name)
        self.clock_running.append(state.ctx.clock.running)
        self.history_len.setdefault(name, []).append(len(state.ctx.history))

    def fit_start(self, state): self._log("fit_start", state)
    def epoch_start(self, state): self._log("epoch_start", state)

    def select_batch(self, state, x, y):
        self._log("select_batch", state)
        return x, y

    def before_forward(self, state): self._log("before_forward", state)
    def after_forward(self, state): self._log("after_forward", state)
    def before_backward(self, state): self._log("before_backward", state)
    def after_backward(self, state): self._log("after_backward", state)
    def before_optimizer_step(self, state): self._log("before_optimizer_step", state)
    def after_optimizer_step(self, state): self._log("after_optimizer_step", state)
    def epoch_end(self, state): self._log("epoch_end", state)
    def fit_end(self, state): self._log("fit_end", state)


def test_gradient_descent_reduces_test_rmse(make_ctx):
    ctx = make_ctx(seed=0)
    torch.manual_seed(0)
    untrained = ctx.workload.evaluate(ctx.workload.build_model().eval(), ctx.data)["test_rmse"]
    state = gradient_descent(ctx, {"optimizer": "adam", "lr": 0.05, "epochs": 60, "batch_size": 50,
                                   "eval_every": 20})
    rmse = [row["test_rmse"] for row in ctx.history]
    assert [row["epoch"] for row in ctx.history] == [20.0, 40.0, 60.0]
    assert rmse[0] > rmse[1] > rmse[2]
    assert rmse[-1] < 0.1 < untrained  # below the workload's target, from well above it
    assert state.epoch == 60 and state.step == 60 * 4
    assert ctx.forward_evals == 60 * 200  # one forward per training sample per epoch
    assert ctx.history[-1]["forward_evals"] == 60 * 200
    assert {"test_rmse", "test_r2", "train_loss", "train_time_s", "step"} <= set(ctx.history[-1])


def test_gradient_descent_is_deterministic(make_ctx, tmp_path):
    finals = []
    for i in range(2):
        ctx = make_ctx(seed=3, checkpoint=tmp_path / f"{i}.pt")
        state = gradient_descent(ctx, {"lr": 0.01, "epochs": 3, "batch_size": 64})
        finals.append(flat_parameters(state.model))
    assert torch.equal(finals[0], finals[1])


def test_hook_order(make_ctx):
    ctx = make_ctx()
    rec = Recorder()
    make_trainer(ctx, epochs=1, batch_size=100, hooks=[rec]).fit()  # 200 samples: 2 batches
    per_batch = EVENTS[2:9]
    assert rec.events == ["fit_start", "epoch_start", *per_batch, *per_batch, "epoch_end", "fit_end"]
    assert all(rec.clock_running)  # everything a hook does counts as training time
    assert rec.history_len["after_optimizer_step"] == [0, 0]
    assert rec.history_len["epoch_end"] == [1]  # evaluated before epoch_end
    assert rec.history_len["fit_end"] == [1]  # and not again at the end


def test_hooks_called_in_list_order(make_ctx):
    calls = []

    class Tag(Hook):
        def __init__(self, tag):
            self.tag = tag

        def before_forward(self, state):
            calls.append(self.tag)

    make_trainer(make_ctx(), epochs=1, batch_size=200, hooks=[Tag("a"), Tag("b"), Tag("c")]).fit()
    assert calls == ["a", "b", "c"]


def test_select_batch_can_shrink_and_drop_batches(make_ctx):
    class Select(Hook):
        def __init__(self):
            self.sizes = []

        def epoch_start(self, state):
            self.i = 0

        def select_batch(self, state, x, y):
            self.i += 1
            if self.i == 1:
                return x[:0], y[:0]  # drop the whole first batch
            if self.i == 2:
                return x[:25], y[:25]
            return x, y

        def before_forward(self, state):
            self.sizes.append(len(state.x))
            assert len(state.x) == len(state.y)

    rec, sel = Recorder(), Select()
    ctx = make_ctx()
    state = make_trainer(ctx, epochs=2, batch_size=50, hooks=[sel, rec]).fit()
    assert sel.sizes == [25, 50, 50] * 2  # the empty batch never reached the model
    assert ctx.forward_evals == 2 * 125
    assert state.step == 2 * 3  # an empty batch is not a step
    assert rec.events.count("select_batch") == 2 * 4  # every hook's selection runs for every batch
    assert rec.events.count("before_forward") == 2 * 3  # but an emptied batch goes no further


def test_all_batches_dropped(make_ctx):
    class DropAll(Hook):
        def select_batch(self, state, x, y):
            return x[:0], y[:0]

    ctx = make_ctx()
    trainer = make_trainer(ctx, epochs=2, hooks=[DropAll()])
    before = flat_parameters(trainer.state.model).clone()
    state = trainer.fit()
    assert state.step == 0 and ctx.forward_evals == 0
    assert torch.equal(flat_parameters(state.model), before)
    assert ctx.history[-1]["train_loss"] == 0.0 and len(ctx.history) == 2


def test_skip_step(make_ctx):
    class SkipEven(Hook):
        """Skip every optimizer step with an even index and record whether parameters moved."""

        def before_optimizer_step(self, state):
            self.before = flat_parameters(state.model).clone()
            if state.step % 2 == 0:
                state.skip_step = True

        def after_optimizer_step(self, state):
            moved = not torch.equal(self.before, flat_parameters(state.model))
            self.log.append((state.step, state.skip_step, moved))

    hook = SkipEven()
    hook.log = []
    state = make_trainer(make_ctx(), epochs=2, batch_size=50, hooks=[hook]).fit()
    assert [s for s, _, _ in hook.log] == list(range(8))
    for step, skipped, moved in hook.log:
        assert skipped == (step % 2 == 0)  # the flag is reset for every batch
        assert moved == (not skipped)
    assert state.step == 8  # skipped steps are counted as steps


def test_skip_every_step_keeps_parameters(make_ctx):
    class SkipAll(Hook):
        def after_backward(self, state):
            state.skip_step = True

    ctx = make_ctx()
    trainer = make_trainer(ctx, epochs=3, hooks=[SkipAll()])
    before = flat_parameters(trainer.state.model).clone()
    trainer.fit()
    assert torch.equal(flat_parameters(trainer.state.model), before)
    assert ctx.forward_evals == 3 * 200


class SkipAll(Hook):
    def before_optimizer_step(self, state):
        state.skip_step = True


def test_plateau_stop_counts_only_fresh_evaluations(make_ctx):
    ctx = make_ctx()
    stop = PlateauStop(patience=2)
    state = make_trainer(ctx, epochs=30, eval_every=3, hooks=[SkipAll(), stop]).fit()
    # eval at 3 sets the best, 6 and 9 do not improve -> stop after epoch 9 (not at 4-5 on stale evals)
    assert state.epoch == 9 and state.stop
    assert [row["epoch"] for row in ctx.history] == [3.0, 6.0, 9.0]
    assert stop.bad == 2


def test_plateau_stop_does_not_stop_an_improving_run(make_ctx):
    ctx = make_ctx()
    state = gradient_descent(ctx, {"lr": 0.05, "epochs": 12, "batch_size": 50, "eval_every": 3,
                                   "plateau_patience": 1, "plateau_min_delta": 1e-4})
    assert state.epoch == 12 and not state.stop
    losses = [row["train_loss"] for row in ctx.history]
    assert losses == sorted(losses, reverse=True)


def test_stop_between_evaluations_evaluates_final_model(make_ctx):
    class StopAt4(Hook):
        def epoch_end(self, state):
            state.stop = state.epoch == 4

    ctx = make_ctx()
    state = make_trainer(ctx, epochs=10, eval_every=3, hooks=[StopAt4()]).fit()
    assert state.epoch == 4
    assert [row["epoch"] for row in ctx.history] == [3.0, 4.0]
    assert state.last_eval is ctx.history[-1] or state.last_eval == ctx.history[-1]


def test_plateau_stop_state_dict_and_validation():
    p = PlateauStop(patience=3)
    p.best, p.bad = 0.5, 2
    q = PlateauStop(patience=3)
    q.load_state_dict(p.state_dict())
    assert (q.best, q.bad) == (0.5, 2)
    for bad in ({"patience": 0}, {"min_delta": -1.0}, {"min_delta": float("nan")}):
        with pytest.raises(ReproError, match="PlateauStop"):
            PlateauStop(**bad)


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"batch_size": 0}, {"eval_every": 0},
                                    {"checkpoint_every": -1}])
def test_trainer_rejects_bad_settings(make_ctx, kwargs):
    with pytest.raises(ReproError, match="Trainer"):
        make_trainer(make_ctx(), **{"epochs": 1, **kwargs})


def _history_without_time(history):
    return [{k: v for k, v in row.items() if k != "train_time_s"} for row in history]


def test_checkpoint_resume_matches_uninterrupted_run(make_ctx, tmp_path):
    class Crash(Hook):
        def __init__(self, at=None):
            self.at = at

        def epoch_start(self, state):
            if state.epoch == self.at:
                raise KeyboardInterrupt("killed")

    settings = dict(epochs=4, batch_size=50, checkpoint_every=2)

    straight_ctx = make_ctx(seed=5, checkpoint=tmp_path / "straight.pt")
    straight = make_trainer(straight_ctx, hooks=[Crash()], **settings).fit()

    ckpt = tmp_path / "resumed.pt"
    first_ctx = make_ctx(seed=5, checkpoint=ckpt)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(first_ctx, hooks=[Crash(at=2)], **settings).fit()
    assert ckpt.is_file()
    saved = torch.load(ckpt, weights_only=True)
    assert saved["method"]["epoch"] == 2 and len(saved["ctx"]["history"]) == 2

    # A fresh process: new context, a differently initialised model and a new optimizer.
    resumed_ctx = make_ctx(seed=5, checkpoint=ckpt)
    resumed = make_trainer(resumed_ctx, init_seed=99, hooks=[Crash()], **settings).fit()

    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.epoch == straight.epoch == 4 and resumed.step == straight.step
    assert _history_without_time(resumed_ctx.history) == _history_without_time(straight_ctx.history)
    assert resumed_ctx.forward_evals == straight_ctx.forward_evals == 4 * 200
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"])
    # training time carried over from the first attempt
    assert resumed_ctx.history[1]["train_time_s"] == first_ctx.history[1]["train_time_s"]
    # checkpoint_every=2 saved after epoch 2 but not after the last epoch (4)
    assert torch.load(tmp_path / "straight.pt", weights_only=True)["method"]["epoch"] == 2


def test_checkpoint_keeps_hook_state(make_ctx, tmp_path):
    class Counter(Hook):
        def __init__(self):
            self.n = 0

        def after_optimizer_step(self, state):
            self.n += 1

        def epoch_start(self, state):
            if state.epoch == 2 and getattr(self, "crash", False):
                raise RuntimeError("boom")

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, s):
            self.n = s["n"]

    ckpt = tmp_path / "c.pt"
    first = Counter()
    first.crash = True
    with pytest.raises(RuntimeError):
        make_trainer(make_ctx(checkpoint=ckpt), epochs=3, checkpoint_every=1, hooks=[first]).fit()
    second = Counter()
    make_trainer(make_ctx(checkpoint=ckpt), epochs=3, checkpoint_every=1, hooks=[second]).fit()
    assert second.n == 3 * 4  # 8 restored + 4 new


def test_training_time_excludes_evaluation(make_ctx, monkeypatch):
    original = Workload.evaluate

    def slow_evaluate(self, predict, data, batch_size=4096):
        time.sleep(0.2)
        return original(self, predict, data, batch_size)

    monkeypatch.setattr(Workload, "evaluate", slow_evaluate)
    ctx = make_ctx()
    t0 = time.perf_counter()
    make_trainer(ctx, epochs=3, batch_size=200, optimizer="sgd").fit()
    wall = time.perf_counter() - t0
    assert len(ctx.history) == 3
    assert ctx.eval_time_s >= 0.6 and wall >= 0.6
    assert ctx.clock.elapsed < ctx.eval_time_s
    assert ctx.clock.elapsed < 0.2  # not even one evaluation's worth of time
    times = [row["train_time_s"] for row in ctx.history]
    assert times == sorted(times) and times[-1] <= ctx.clock.elapsed


def test_train_clock():
    clock = TrainClock(torch.device("cpu"))
    with clock.paused():  # pausing a stopped clock does not start it
        pass
    assert not clock.running and clock.elapsed == 0.0
    with clock.measuring():
        time.sleep(0.05)
        with clock.paused():
            time.sleep(0.3)
        assert clock.running
    assert not clock.running
    assert 0.05 <= clock.elapsed < 0.3  # the paused 0.3 s is not counted
    resumed = TrainClock(torch.device("cpu"), elapsed=10.0)
    assert resumed.elapsed == 10.0


@pytest.mark.parametrize(("hparams", "match"), [
    ({"optimiser": "adam"}, "unknown gradient-descent hyper-parameter 'optimiser'"),
    ({"optimizer": "rmsprop"}, r"unknown optimizer \(key 'optimizer'\) 'rmsprop'; valid choices: adam, adamw, sgd"),
    ({"lr": 0}, "'lr' must be a positive"),
    ({"lr": float("inf")}, "'lr' must be a positive"),
    ({"epochs": 0}, "'epochs' must be an integer >= 1"),
    ({"batch_size": 2.5}, "'batch_size' must be an integer"),
    ({"eval_every": -1}, "'eval_every'"),
])
def test_validate_gradient_hparams(hparams, match):
    with pytest.raises(ReproError, match=match):
        validate_gradient_hparams(hparams)


def test_validate_gradient_hparams_accepts_enkf_baselines():
    from repro.registry import get_paper

    for scale in ("smoke", "paper"):
        for exp in get_paper("enkf").experiments_at(scale).values():
            for name in ("gd_equal_budget", "gd_converged"):
                validate_gradient_hparams(exp.methods[name])


def test_stop_before_first_epoch(make_ctx):
    class StopNow(Hook):
        def fit_start(self, state):
            state.stop = True

    ctx = make_ctx()
    state = make_trainer(ctx, epochs=5, hooks=[StopNow()]).fit()
    assert state.epoch == 0 and state.step == 0
    assert [row["epoch"] for row in ctx.history] == [0.0]


def test_resume_after_early_stop_does_not_train_further(make_ctx, tmp_path):
    ckpt = tmp_path / "stop.pt"
    # Checkpoints at epochs 3 and 6; training stops at 9 and writes none there, so the one left
    # behind (as if the job died while logging to MLflow) is epoch 6's, with PlateauStop's state.
    settings = dict(epochs=30, eval_every=3, checkpoint_every=3)
    first_ctx = make_ctx(checkpoint=ckpt)
    first = make_trainer(first_ctx, hooks=[SkipAll(), PlateauStop(patience=2)], **settings).fit()
    assert first.epoch == 9 and ckpt.is_file()
    assert torch.load(ckpt, weights_only=True)["method"]["epoch"] == 6
    again_ctx = make_ctx(checkpoint=ckpt)
    again = make_trainer(again_ctx, hooks=[SkipAll(), PlateauStop(patience=2)], **settings).fit()
    assert again.epoch == 9
    assert [row["epoch"] for row in again_ctx.history] == [3.0, 6.0, 9.0]
