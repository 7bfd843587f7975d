"""The gradient training loop: hooks, batch selection, skipped steps, early stop, resume, the
learning-rate schedule, hyper-parameter validation, and what runs on the training clock.

No test reads the wall clock: timing is checked with a fake time source that moves only when a
test says so, so the accounting (what is on the clock, what is not) is exact.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from repro import hparams as H
from repro.errors import ReproError
from repro.models import flat_parameters
from repro.timing import TrainClock
from repro.trainer import (GD_KEYS, GradientConfig, Hook, LRSchedule, PlateauStop, Trainer, gradient_descent,
                           scheduled_lr, split_gradient_hparams)
from repro.workloads import Workload

N_TRAIN = 180  # the sine workload's 200 training samples minus its 10% validation split

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
    assert len(ctx.data.x_train) == N_TRAIN and len(ctx.data.x_val) == 20
    torch.manual_seed(0)
    untrained = ctx.workload.evaluate(ctx.workload.build_model().eval(), ctx.data)["test_rmse"]
    state = gradient_descent(ctx, {"optimizer": "adam", "lr": 0.05, "epochs": 60, "batch_size": 50,
                                   "eval_every": 20})
    rmse = [row["test_rmse"] for row in ctx.history]
    assert [row["epoch"] for row in ctx.history] == [20.0, 40.0, 60.0]
    assert rmse[0] > rmse[1] > rmse[2]
    assert rmse[-1] < 0.1 < untrained  # below the workload's target, from well above it
    assert state.epoch == 60 and state.step == 60 * 4  # 180 samples: batches of 50, 50, 50, 30
    assert ctx.forward_evals == 60 * N_TRAIN  # one forward per training sample per epoch
    assert ctx.history[-1]["forward_evals"] == 60 * N_TRAIN
    assert {"val_rmse", "val_r2", "test_rmse", "test_r2", "train_loss", "train_time_s", "train_cpu_time_s",
            "step"} <= set(ctx.history[-1])


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
    make_trainer(ctx, epochs=1, batch_size=100, hooks=[rec]).fit()  # 180 samples: 2 batches
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
    state = make_trainer(ctx, epochs=2, batch_size=50, hooks=[sel, rec]).fit()  # batches 50, 50, 50, 30
    assert sel.sizes == [25, 50, 30] * 2  # the empty batch never reached the model
    assert ctx.forward_evals == 2 * 105
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
    assert ctx.forward_evals == 3 * N_TRAIN


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
    val = [row["val_rmse"] for row in ctx.history]
    assert val == sorted(val, reverse=True)


def plateau_state(workload):
    """A minimal TrainState stand-in: PlateauStop reads only these fields."""
    return SimpleNamespace(ctx=SimpleNamespace(workload=workload), evaluated=True, last_eval={}, stop=False)


def feed(stop, workload, rows):
    """Feed one fresh evaluation per epoch; the index of the evaluation that stopped (None: none)."""
    state = plateau_state(workload)
    stopped_at = None
    for i, row in enumerate(rows):
        state.last_eval = row
        stop.epoch_end(state)
        if state.stop and stopped_at is None:
            stopped_at = i
    return stopped_at


def test_plateau_stop_monitors_the_validation_metric(make_ctx):
    wl = make_ctx().workload
    assert PlateauStop.decides_on_validation is True
    # validation stalls while test (and training loss) keep improving: stop
    stalled = [{"val_rmse": 0.5, "test_rmse": 0.5 - 0.1 * i, "train_loss": 1.0 - 0.1 * i} for i in range(5)]
    assert feed(PlateauStop(patience=2), wl, stalled) == 2
    # validation improves while test gets worse: keep going (the test split never steers)
    improving = [{"val_rmse": 0.5 - 0.1 * i, "test_rmse": 0.1 + 0.1 * i, "train_loss": 1.0} for i in range(5)]
    assert feed(PlateauStop(patience=1), wl, improving) is None
    # an explicit monitor (higher is better for r2)
    r2 = [{"val_r2": 0.1 * i, "val_rmse": 0.5} for i in range(5)]
    assert feed(PlateauStop(patience=1, monitor="val_r2"), wl, r2) is None
    assert feed(PlateauStop(patience=1, monitor="val_r2"), wl, list(reversed(r2))) == 1


def test_plateau_stop_ignores_stale_or_missing_evaluations(make_ctx):
    wl = make_ctx().workload
    stop = PlateauStop(patience=1)
    state = plateau_state(wl)
    state.last_eval = {"val_rmse": 0.5}
    stop.epoch_end(state)
    state.evaluated = False  # the same evaluation seen again at a later epoch does not count
    for _ in range(3):
        stop.epoch_end(state)
    assert not state.stop and stop.bad == 0
    state.evaluated, state.last_eval = True, {"test_rmse": 0.1}  # no validation metric: nothing to judge
    stop.epoch_end(state)
    assert not state.stop and stop.bad == 0


def test_stop_between_evaluations_evaluates_final_model(make_ctx):
    class StopAt4(Hook):
        def epoch_end(self, state):
            state.stop = state.epoch == 4

    ctx = make_ctx()
    state = make_trainer(ctx, epochs=10, eval_every=3, hooks=[StopAt4()]).fit()
    assert state.epoch == 4
    assert [row["epoch"] for row in ctx.history] == [3.0, 4.0]
    assert state.last_eval is ctx.history[-1] or state.last_eval == ctx.history[-1]


def _test_keys(row):
    return {k for k in row if k.startswith("test_")}


@pytest.mark.parametrize("stop_at", [None, 4, 6])  # full budget; stopped between evaluations; stopped at one
def test_test_split_scored_only_for_the_final_evaluation(make_ctx, stop_at):
    """With ``test_every_eval`` off (the leaderboard) only the last row has test metrics, and they
    are those of the run that scores the test split every time (same model, same numbers)."""
    class StopAt(Hook):
        def epoch_end(self, state):
            state.stop = state.epoch == stop_at

    rows = {}
    for every in (True, False):
        ctx = make_ctx()
        ctx.test_every_eval = every
        make_trainer(ctx, epochs=9, eval_every=3 if stop_at == 4 else 1, hooks=[StopAt()]).fit()
        rows[every] = ctx.history
    full, final = rows[True], rows[False]
    assert [r["epoch"] for r in final] == [r["epoch"] for r in full]
    assert final[-1]["epoch"] == (stop_at or 9)
    assert all(not _test_keys(r) for r in final[:-1]) and _test_keys(final[-1]) == {"test_rmse", "test_r2"}
    assert {k: final[-1][k] for k in _test_keys(full[-1])} == {k: full[-1][k] for k in _test_keys(full[-1])}
    assert [r["val_rmse"] for r in final] == [r["val_rmse"] for r in full]


def test_score_final_test_for_a_method_that_never_says_final(make_ctx):
    """A method that calls ``ctx.evaluate`` itself (no ``final``): ``score_final_test`` (run by
    ``execute`` after the method) scores the test split with the last evaluation's predictor."""
    ctx = make_ctx()
    ctx.test_every_eval = False
    model = ctx.workload.build_model().eval()
    ctx.evaluate(model, epoch=1, step=1)
    ctx.evaluate(model, epoch=2, step=2)
    assert not _test_keys(ctx.history[-1])
    ctx.score_final_test()
    assert _test_keys(ctx.history[-1]) == {"test_rmse", "test_r2"} and not _test_keys(ctx.history[0])
    again = dict(ctx.history[-1])
    ctx.score_final_test()  # already scored: no-op
    assert ctx.history[-1] == again


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
    return [{k: v for k, v in row.items() if k not in ("train_time_s", "train_cpu_time_s")} for row in history]


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
    assert resumed_ctx.forward_evals == straight_ctx.forward_evals == 4 * N_TRAIN
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"])
    # training time carried over from the first attempt
    assert resumed_ctx.history[1]["train_time_s"] == first_ctx.history[1]["train_time_s"]
    assert resumed_ctx.history[1]["train_cpu_time_s"] == first_ctx.history[1]["train_cpu_time_s"]
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
    assert second.n == 3 * 4  # 8 restored + 4 new (180 samples, batches of 50)


class FakeTime:
    """Stands in for the ``time`` module of repro.timing and repro.run: wall and CPU time move
    only when a test advances them."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 50.0

    def perf_counter(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu

    def advance(self, seconds: float, cpu: float | None = None) -> None:
        self.now += seconds
        self.cpu += seconds if cpu is None else cpu


@pytest.fixture
def fake_time(monkeypatch):
    ft = FakeTime()
    monkeypatch.setattr("repro.timing.time", ft)
    monkeypatch.setattr("repro.run.time", ft)
    return ft


EVAL_S = 10.0  # what scoring one split costs on the fake clock
STEP_S = 1.0  # what one training batch costs


@pytest.fixture
def costed(fake_time, monkeypatch):
    """Scoring a split costs EVAL_S; each call records (split, whether the training clock ran)."""
    original = Workload.evaluate
    calls = []

    def evaluate(self, predict, data, split="test", batch_size=4096):
        calls.append((split, costed.ctx.clock.running))
        fake_time.advance(EVAL_S)
        return original(self, predict, data, split, batch_size)

    monkeypatch.setattr(Workload, "evaluate", evaluate)
    costed = SimpleNamespace(calls=calls, ctx=None)
    return costed


class Tick(Hook):
    """Training work: one batch costs STEP_S (wall and CPU)."""

    def __init__(self, ft):
        self.ft = ft

    def before_forward(self, state):
        self.ft.advance(STEP_S)


class Decider(Hook):
    """A hook that steers training from the validation metric (like WUS's trigger)."""

    decides_on_validation = True


@pytest.mark.parametrize("decides", [False, True])
def test_what_evaluation_time_is_on_the_training_clock(make_ctx, fake_time, costed, decides):
    """Evaluation is off the clock, except the validation scoring a deciding hook needs; the
    test split is always off the clock."""
    ctx = make_ctx()
    costed.ctx = ctx
    hooks = [Tick(fake_time), *([Decider()] if decides else [])]
    make_trainer(ctx, epochs=3, batch_size=N_TRAIN, optimizer="sgd", hooks=hooks).fit()  # one batch per epoch
    assert costed.calls == [("val", decides), ("test", False)] * 3
    val_on_clock = EVAL_S if decides else 0.0
    assert ctx.clock.elapsed == pytest.approx(3 * (STEP_S + val_on_clock))
    assert ctx.clock.cpu_elapsed == pytest.approx(3 * (STEP_S + val_on_clock))
    assert ctx.eval_time_s == pytest.approx(3 * (2 * EVAL_S - val_on_clock))  # the rest is evaluation time
    assert [row["train_time_s"] for row in ctx.history] == pytest.approx(
        [(i + 1) * (STEP_S + val_on_clock) for i in range(3)])
    assert [row["train_cpu_time_s"] for row in ctx.history] == pytest.approx(
        [row["train_time_s"] for row in ctx.history])


def test_plateau_stop_puts_validation_on_the_clock(make_ctx, fake_time, costed):
    ctx = make_ctx()
    costed.ctx = ctx
    gradient_descent(ctx, {"epochs": 2, "batch_size": N_TRAIN, "plateau_patience": 50})
    assert costed.calls == [("val", True), ("test", False)] * 2
    assert ctx.clock.elapsed == pytest.approx(2 * EVAL_S) and ctx.eval_time_s == pytest.approx(2 * EVAL_S)
    plain = make_ctx()
    costed.ctx = plain
    costed.calls.clear()
    gradient_descent(plain, {"epochs": 2, "batch_size": N_TRAIN})
    assert costed.calls == [("val", False), ("test", False)] * 2
    assert plain.clock.elapsed == 0.0 and plain.eval_time_s == pytest.approx(4 * EVAL_S)


def test_final_evaluation_after_an_early_stop_is_not_a_decision(make_ctx, fake_time, costed):
    class StopAt4(Decider):
        def epoch_end(self, state):
            state.stop = state.epoch == 4

    ctx = make_ctx()
    costed.ctx = ctx
    make_trainer(ctx, epochs=10, eval_every=3, batch_size=N_TRAIN, hooks=[StopAt4()]).fit()
    assert [row["epoch"] for row in ctx.history] == [3.0, 4.0]
    assert costed.calls == [("val", True), ("test", False), ("val", False), ("test", False)]


def test_context_evaluate_decision_flag(make_ctx, fake_time, costed):
    ctx = make_ctx()
    costed.ctx = ctx
    predict = lambda x: torch.zeros(len(x), 1)  # noqa: E731
    row = ctx.evaluate(predict, epoch=1, step=5, decision=True, extra_value=2)
    assert {"val_rmse", "test_rmse", "val_r2", "test_r2"} <= set(row) and row["extra_value"] == 2.0
    assert row["train_time_s"] == EVAL_S and ctx.eval_time_s == EVAL_S and not ctx.clock.running
    with ctx.clock.measuring():  # called from inside a measured block (re-entrant), still correct
        ctx.evaluate(predict, epoch=2, step=6, decision=True)
        assert ctx.clock.running
    ctx.evaluate(predict, epoch=3, step=7)
    assert ctx.clock.elapsed == 2 * EVAL_S and ctx.eval_time_s == 4 * EVAL_S
    assert costed.calls == [("val", True), ("test", False)] * 2 + [("val", False), ("test", False)]
    assert ctx.history[-1] is not row and len(ctx.history) == 3


def test_train_clock(fake_time):
    clock = TrainClock(torch.device("cpu"))
    with clock.paused():  # pausing a stopped clock does not start it
        fake_time.advance(5)
    assert not clock.running and clock.elapsed == 0.0 and clock.cpu_elapsed == 0.0
    with clock.measuring():
        fake_time.advance(2, cpu=1)
        with clock.measuring():  # re-entrant: the inner block does not stop the outer one
            fake_time.advance(1, cpu=1)
        assert clock.running
        assert clock.elapsed == 3.0  # readable while running
        with clock.paused():
            fake_time.advance(30)
        assert clock.running
        fake_time.advance(4, cpu=0.5)
    assert not clock.running
    assert clock.elapsed == 7.0 and clock.cpu_elapsed == 2.5  # the paused 30 s are not counted
    fake_time.advance(100)
    assert clock.elapsed == 7.0
    resumed = TrainClock(torch.device("cpu"), elapsed=10.0, cpu_elapsed=3.0)
    assert resumed.elapsed == 10.0 and resumed.cpu_elapsed == 3.0


# --------------------------------------------------------------------------- hyper-parameters


@pytest.mark.parametrize(("hparams", "match"), [
    ({"optimiser": "adam"}, r"unknown gradient-descent hyper-parameter 'optimiser'; valid choices: batch_size, "
                            r"channels_last, checkpoint_every, compile, deterministic, epochs, eval_every, lr, "),
    ({"optimizer": "rmsprop"}, r"unknown gradient-descent hyper-parameter 'optimizer' value 'rmsprop'; "
                               r"valid choices: adam, adamw, sgd"),
    ({"lr": 0}, r"'lr' must be in \(0, inf\], got 0.0"),
    ({"lr": float("inf")}, r"'lr' must be a finite number, got inf"),
    ({"lr": "0.1"}, r"'lr' must be a finite number, got '0.1'"),
    ({"epochs": 0}, r"'epochs' must be in \[1, inf\], got 0"),
    ({"epochs": True}, r"'epochs' must be int, got True"),
    ({"batch_size": 2.5}, r"'batch_size' must be int, got 2.5"),
    ({"eval_every": -1}, r"'eval_every' must be in \[1, inf\], got -1"),
    ({"momentum": 1.5}, r"'momentum' must be in \[0, 1\], got 1.5"),
    ({"lr_schedule": "linear"}, r"'lr_schedule' value 'linear'; valid choices: cosine, none, step"),
    ({"lr_gamma": 0.0}, r"'lr_gamma' must be in \(0, 1\], got 0.0"),
])
def test_gradient_hparams_are_validated(hparams, match):
    with pytest.raises(ReproError, match=match):
        H.parse(GradientConfig, hparams, "gradient-descent")


def test_gradient_hparams_defaults_and_nones():
    cfg = H.parse(GradientConfig, {"epochs": None, "lr": 1, "momentum": None}, "gd")
    assert cfg.epochs is None and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg == GradientConfig(lr=1.0) and cfg.optimizer == "adam" and cfg.plateau_patience is None
    assert GD_KEYS == H.keys(GradientConfig) and "lr_schedule" in GD_KEYS


def test_split_gradient_hparams_names_both_sets():
    from .fake_paper import BoostConfig

    gd, own = split_gradient_hparams({"lr": 0.1, "boost": 3.0}, BoostConfig, "boosted")
    assert gd == GradientConfig(lr=0.1) and own == BoostConfig(boost=3.0)
    with pytest.raises(ReproError) as info:
        split_gradient_hparams({"bost": 3.0}, BoostConfig, "boosted")
    msg = str(info.value)
    assert "unknown boosted hyper-parameter 'bost'" in msg and "boost" in msg and "lr_schedule" in msg
    gd, own = split_gradient_hparams({"lr": 0.1}, None, "plain")
    assert own is None
    with pytest.raises(ReproError, match=r"unknown plain hyper-parameter 'boost'; valid choices: batch_size"):
        split_gradient_hparams({"boost": 3.0}, None, "plain")


def test_gradient_method_validates_and_documents(fake_paper):
    m = fake_paper.methods["boosted"]
    assert m.fixed == {"variant": "boosted"} and not m.is_baseline and fake_paper.methods["gd"].is_baseline
    m.validate({"lr": 0.1, "boost": 2.0, "variant": "boosted"})
    with pytest.raises(ReproError, match=r"'boost' must be in \(0, inf\]"):
        m.validate({"boost": -1.0})
    assert "`lr` (float, default 0.001; in (0, inf]): base learning rate" in m.hparams_doc
    assert "`variant` (str, default 'plain'; one of plain, boosted)" in m.hparams_doc
    assert "`boost`" not in fake_paper.methods["gd"].hparams_doc


def test_every_fake_experiment_validates(fake_paper):
    for scale in ("smoke", "paper"):
        for exp in fake_paper.experiments_at(scale).values():
            for name in exp.methods:
                fake_paper.method(name).validate(fake_paper.trial_hparams(scale, exp.name, name))


def test_gradient_method_runs_its_hooks_with_the_fixed_switch(make_ctx, fake_paper, monkeypatch):
    """What a trial runs: the method's hooks, built from the merged hyper-parameters (boosted
    doubles its learning rate only because its fixed switch says so)."""
    seen = {}
    original = Trainer.fit

    def fit(self):
        state = original(self)
        seen[self.ctx.method] = (state.optimizer.param_groups[0]["lr"], [type(h).__name__ for h in self.hooks])
        return state

    monkeypatch.setattr(Trainer, "fit", fit)
    runs = {"gd": fake_paper.trial_hparams("smoke", "sine", "gd"),
            "boosted": fake_paper.trial_hparams("smoke", "sine", "boosted"),
            "boosted_plain": {**fake_paper.trial_hparams("smoke", "sine", "boosted"), "variant": "plain"}}
    for label, hp in runs.items():
        ctx = make_ctx()
        ctx.method = label
        fake_paper.method(label.split("_")[0]).fit(ctx, {**hp, "epochs": 1})
        assert len(ctx.history) == 1
    assert seen == {"gd": (0.05, []), "boosted": (0.1, ["Boost"]), "boosted_plain": (0.05, [])}


# --------------------------------------------------------------------------- learning-rate schedule


def test_scheduled_lr():
    step = GradientConfig(lr=1.0, lr_schedule="step", lr_step=10, lr_gamma=0.1)
    assert [scheduled_lr(step, e, 100) for e in (0, 9, 10, 25)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    cosine = GradientConfig(lr=2.0, lr_schedule="cosine")
    assert scheduled_lr(cosine, 0, 10) == pytest.approx(2.0)
    assert scheduled_lr(cosine, 5, 10) == pytest.approx(1.0)
    assert scheduled_lr(cosine, 10, 10) == pytest.approx(0.0, abs=1e-12)
    warm = GradientConfig(lr=1.0, warmup_epochs=4)
    assert [scheduled_lr(warm, e, 10) for e in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert scheduled_lr(GradientConfig(lr=0.3), 50, 100) == 0.3


def test_lr_schedule_hook_sets_each_epochs_rate(make_ctx):
    lrs = []

    class Spy(Hook):
        def epoch_end(self, state):
            lrs.append(state.optimizer.param_groups[0]["lr"])

    cfg = GradientConfig(lr=0.8, lr_schedule="step", lr_step=1, lr_gamma=0.5)
    ctx = make_ctx()
    make_trainer(ctx, epochs=3, lr=0.8, hooks=[LRSchedule(cfg, 3), Spy()]).fit()
    assert lrs == pytest.approx([0.8, 0.4, 0.2])
    lrs.clear()
    gradient_descent(make_ctx(), {"lr": 0.8, "epochs": 3, "lr_schedule": "step", "lr_step": 1, "lr_gamma": 0.5},
                     hooks=[Spy()])
    assert lrs == pytest.approx([0.8, 0.4, 0.2])  # gradient_descent adds the schedule itself
    lrs.clear()
    gradient_descent(make_ctx(), {"lr": 0.8, "epochs": 2}, hooks=[Spy()])
    assert lrs == pytest.approx([0.8, 0.8])


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
