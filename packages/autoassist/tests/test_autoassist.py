"""AutoAssist: assistant math and learning, acceptance, config validation, empty batches, the
sync/async exchange (crash fallback, never blocking the Boss), determinism/resume, kernel vs reference."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.errors import ReproError
from repro.run import RunContext, seed_everything, summarise
from repro.testing import run_under_triton_interpreter
from repro.timing import TrainClock
from repro.trainer import TrainState
from repro.workloads import Workload

from repro_autoassist.assistant import Assistant, acceptance_prob, assistant_sgd, ema_update, keep_score
from repro_autoassist.configuration_autoassist import AutoAssistConfig
from repro_autoassist.kernels import fused_select_reference, select_reference, triton_available
from repro_autoassist.paper import PAPER
from repro_autoassist.methods import InstanceShrinking
from repro_autoassist.shrinking import AsyncExchange, SyncExchange

WL = Workload(name="blobs_mlp", dataset="blobs", model="mlp", model_kwargs={"sizes": [8, 16, 3], "activation": "relu"},
              loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.9, batch_size=16,
              max_epochs=5, description="test blobs")


def _blobs(n: int = 240, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + torch.randn(n, 8, generator=g)
    return TensorData(name="blobs", task="classification", x_train=x[: n // 2], y_train=y[: n // 2],
                      x_test=x[n // 2:], y_test=y[n // 2:], num_classes=3)


def _ctx(tmp_path: Path, seed: int = 0, name: str = "ck") -> RunContext:
    dev = torch.device("cpu")
    seed_everything(seed, dev)
    data = WL.split(_blobs()) if hasattr(WL, "split") else _blobs()  # cores with a validation split
    return RunContext(paper="autoassist", experiment="blobs", method="m", seed=seed, scale="smoke", workload=WL,
                      data=data, device=dev, clock=TrainClock(dev),
                      checkpoint=Checkpointer(tmp_path / f"{name}.pt"),
                      generator=torch.Generator().manual_seed(seed), progress=False)


SRC = Path(__file__).resolve().parents[1] / "src"
SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 3, "batch_size": 16}
METHOD_OF = {"all": "sgd", "loss_is": "loss_is", "autoassist": "autoassist"}


def _fit(ctx: RunContext, hparams: dict) -> None:
    """The paper's method for hparams["selection"] (default autoassist), with the selection switch set."""
    sel = hparams.get("selection", "autoassist")
    PAPER.methods[METHOD_OF[sel]].fit(ctx, {**hparams, "selection": sel})


def _validate(hparams: dict) -> None:
    PAPER.methods["autoassist"].validate({"selection": "autoassist", **hparams})


def _n(ctx: RunContext) -> int:
    return len(ctx.data.x_train)


def _drop_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in history]


# ---------------- assistant math ----------------
def test_keep_score_and_acceptance_prob():
    w, u = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 0.5])
    x, y = torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.tensor([0, 1])
    p = keep_score(w, u, x, y)
    assert torch.allclose(p, torch.sigmoid(torch.tensor([-1.0, 0.5])))
    assert torch.allclose(acceptance_prob(p, 0.3), 0.3 + 0.7 * p)
    assert torch.all(acceptance_prob(p, 1.0) == 1.0)
    assert torch.allclose(acceptance_prob(p, 0.0), p)


def test_assistant_sgd_matches_hand_gradient():
    g = torch.Generator().manual_seed(0)
    w, u = torch.randn(4, generator=g), torch.randn(3, generator=g)
    x, y, t = torch.randn(5, 4, generator=g), torch.tensor([0, 1, 1, 2, 0]), torch.tensor([1, 0, 1, 0, 1])
    w2, u2 = assistant_sgd(w, u, x, y, t, lr=0.1, l2=0.01)
    gi = torch.sigmoid(x @ w + u[y]) - t.float()
    eta = 0.1 / 5  # the reference's lr / batch size
    assert torch.allclose(w2, w - eta * (x.t() @ gi + 0.01 * w))
    exp_u = u.clone()
    for i in range(5):  # sequential, as the reference's loop (u of the current iterate)
        exp_u[y[i]] -= eta * (gi[i] + 0.01 * exp_u[y[i]])
    assert torch.allclose(u2, exp_u)


def test_ema_loss_mean():
    n, s = ema_update(0.0, 0.0, torch.tensor([1.0, 3.0]), 0.75)
    assert (n, s) == pytest.approx((0.5, 1.0))
    assert s / n == pytest.approx(2.0)


def test_assistant_learns_separable_case():
    # instances with x[0] > 0 have high loss: the assistant must learn to keep them
    g = torch.Generator().manual_seed(0)
    a = Assistant.create(5, 2, g, lr=0.05, l2=1e-4)
    for _ in range(300):
        x = torch.randn(64, 5, generator=g)
        y = torch.randint(0, 2, (64,), generator=g)
        losses = torch.where(x[:, 0] > 0, 2.0, 0.1)
        a.learn(x, y, losses)
    xt = torch.randn(500, 5, generator=g)
    yt = torch.randint(0, 2, (500,), generator=g)
    p = a.score(xt, yt)
    acc = ((p > 0.5) == (xt[:, 0] > 0)).float().mean()
    assert acc > 0.95
    assert a.updates == 300 and a.loss_mean == pytest.approx(1.05, abs=0.3)


def test_assistant_ignores_empty_report():
    a = Assistant.create(3, 2, torch.Generator().manual_seed(0))
    w = a.w.clone()
    a.learn(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert torch.equal(a.w, w) and a.updates == 0


# ---------------- config ----------------
@pytest.mark.parametrize("b", [-0.1, 1.5, float("nan"), "x"])
def test_base_prob_outside_unit_interval_is_rejected(b):
    with pytest.raises(ReproError, match="base_prob"):
        _validate({**SGD, "base_prob": b})


@pytest.mark.parametrize(("key", "value"), [("mode", "later"), ("selection", "xx"), ("ema", 1.0),
                                            ("queue_size", 0), ("assistant_lr", -1.0), ("bogus", 1)])
def test_bad_hparams_named(key, value):
    with pytest.raises(ReproError, match=key):
        _validate({**SGD, key: value})


def test_b_edges_accepted():
    AutoAssistConfig(base_prob=0.0)
    AutoAssistConfig(base_prob=1.0)


# ---------------- the hook ----------------
def _state(ctx: RunContext) -> TrainState:
    model = ctx.workload.build_model()
    return TrainState(ctx=ctx, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_empty_accepted_batch_is_counted_not_crashing(tmp_path):
    ctx = _ctx(tmp_path)
    hook = InstanceShrinking(AutoAssistConfig(base_prob=0.0))
    st = _state(ctx)
    hook.fit_start(st)
    hook.exchange.assistant.u = torch.full((3,), -50.0)  # p ~ 0: nothing accepted
    x, y = ctx.data.x_train[:16], ctx.data.y_train[:16]
    xs, ys = hook.select_batch(st, x, y)
    assert len(xs) == 0 and len(ys) == 0 and hook.empty_batches == 1
    xs, ys = hook.select_batch(st, x[:0], y[:0])  # an empty candidate batch too
    assert len(xs) == 0


def test_full_training_with_all_batches_empty(tmp_path):
    ctx = _ctx(tmp_path)
    real = InstanceShrinking._ensure

    def ensure(self, state):
        fresh = self.gen is None
        real(self, state)
        if fresh and self.exchange is not None:
            self.exchange.assistant.u = torch.full((3,), -50.0)

    mp = pytest.MonkeyPatch()
    mp.setattr(InstanceShrinking, "_ensure", ensure)
    try:
        _fit(ctx, {**SGD, "base_prob": 0.0, "epochs": 2})
    finally:
        mp.undo()
    s = summarise(ctx)
    assert s["instances_backpropagated"] == 0 and s["empty_batches"] == 2 * math.ceil(_n(ctx) / 16)
    assert ctx.forward_evals == 0 and math.isfinite(s["test_accuracy"])


def test_acceptance_rate_matches_probabilities(tmp_path):
    ctx = _ctx(tmp_path)
    hook = InstanceShrinking(AutoAssistConfig(base_prob=0.3))
    st = _state(ctx)
    hook.fit_start(st)
    hook.exchange.assistant.w.zero_()  # p = 0.5 -> accept 0.3 + 0.7 * 0.5 = 0.65
    kept = 0
    for _ in range(200):
        xs, _ = hook.select_batch(st, ctx.data.x_train[:50], ctx.data.y_train[:50])
        kept += len(xs)
    assert kept / 10000 == pytest.approx(0.65, abs=0.02)


def test_sgd_keeps_everything_and_records_instances(tmp_path):
    ctx = _ctx(tmp_path)
    _fit(ctx, {**SGD, "selection": "all"})
    s = summarise(ctx)
    n = _n(ctx)
    assert s["instances_backpropagated"] == 3 * n == ctx.forward_evals
    assert [r["instances_backpropagated"] for r in ctx.history] == [n, 2.0 * n, 3.0 * n]
    assert s["acceptance_rate"] == 1.0


def test_loss_is_counts_scoring_forwards(tmp_path):
    ctx = _ctx(tmp_path)
    _fit(ctx, {**SGD, "selection": "loss_is"})
    s = summarise(ctx)
    assert 0.3 <= s["acceptance_rate"] < 1.0
    assert ctx.forward_evals == 3 * _n(ctx) + s["instances_backpropagated"]


def test_sync_mode_is_deterministic_and_resumes(tmp_path):
    a = _ctx(tmp_path, name="a")  # seeds the global RNG (model init): build each context right before its fit
    _fit(a, {**SGD, "selection": "autoassist"})
    b = _ctx(tmp_path, name="b")
    _fit(b, {**SGD, "selection": "autoassist"})
    drop = _drop_times
    assert drop(a.history) == drop(b.history)
    assert a.extra["instances_backpropagated"] == b.extra["instances_backpropagated"] < 3 * _n(a)

    class Stop(Exception):
        pass

    c = _ctx(tmp_path, name="c")
    save = c.save_checkpoint

    def save_then_die(state):
        save(state)
        raise Stop

    c.save_checkpoint = save_then_die
    with pytest.raises(Stop):
        _fit(c, {**SGD, "selection": "autoassist", "checkpoint_every": 1})
    d = _ctx(tmp_path, name="c")
    _fit(d, {**SGD, "selection": "autoassist", "checkpoint_every": 1})
    assert drop(d.history) == drop(a.history) and d.forward_evals == a.forward_evals


# ---------------- exchanges ----------------
class _Crashing(Assistant):
    def learn(self, x, y, losses):
        raise RuntimeError("assistant exploded")


class _Slow(Assistant):
    def learn(self, x, y, losses):
        time.sleep(0.2)
        super().learn(x, y, losses)


def _crashing(a: Assistant) -> Assistant:
    return _Crashing(**{k: getattr(a, k) for k in ("w", "u", "lr", "l2", "alpha")})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_assistant_crash_falls_back_and_is_recorded(tmp_path, mode):
    ctx = _ctx(tmp_path)
    cfg = AutoAssistConfig(mode=mode)
    factory = (lambda a: AsyncExchange(_crashing(a))) if mode == "async" else (lambda a: SyncExchange(_crashing(a)))
    hook = InstanceShrinking(cfg, exchange_factory=factory)
    model = ctx.workload.build_model()
    from repro.trainer import Trainer

    Trainer(ctx, model, torch.optim.SGD(model.parameters(), lr=0.05), epochs=3, batch_size=16, hooks=[hook]).fit()
    s = summarise(ctx)
    assert s["assistant_failed"] == 1.0 and s["fallback_batches"] > 0
    assert "exploded" in hook.exchange.error
    assert s["acceptance_rate"] > 0.8  # plain sampling after the crash


def test_async_exchange_never_blocks_the_boss():
    g = torch.Generator().manual_seed(0)
    base = Assistant.create(8, 3, g)
    ex = AsyncExchange(_Slow(w=base.w, u=base.u), queue_size=2)
    x, y, losses = torch.randn(16, 8), torch.randint(0, 3, (16,)), torch.rand(16)
    for _ in range(20):
        ex.current()
        ex.report(x, y, losses)
    # 20 reports to a 0.2 s/update assistant with room for 2: a Boss that waited would have had
    # every report consumed; one that never blocks had most of them dropped (a count, not a clock).
    assert ex.dropped >= 15
    assert ex.assistant.updates + ex.dropped <= 20
    assert ex.drain(timeout=5.0)
    assert ex.assistant.updates >= 1 and ex.current()[0] is ex.assistant.w
    ex.close()
    assert not any(t.name == "autoassist-assistant" and t.is_alive() for t in threading.enumerate())


def test_async_training_runs_end_to_end(tmp_path):
    ctx = _ctx(tmp_path)
    _fit(ctx, {**SGD, "selection": "autoassist", "mode": "async"})
    s = summarise(ctx)
    assert s["assistant_failed"] == 0.0 and 0 < s["instances_backpropagated"] < 3 * _n(ctx)
    assert 0 <= s["assistant_overhead_frac"] < 1


def test_paper_declares_methods_and_tiny_hparams():
    assert set(PAPER.methods) == {"sgd", "loss_is", "autoassist"}
    assert set(PAPER.tiny_hparams) == set(PAPER.methods)
    ids = {c.id: c for c in PAPER.claims}
    assert ids["autoassist_transformer_time_bleu"].not_run
    for m in PAPER.methods:  # the hyper-parameters a trial runs with (a core may merge fixed switches in)
        hp = (PAPER.trial_hparams("smoke", "digits_mlp", m) if hasattr(PAPER, "trial_hparams")
              else PAPER.experiment("smoke", "digits_mlp").methods[m])
        PAPER.methods[m].validate(hp)
        if m == "autoassist":
            assert hp["mode"] == "sync"


# ---------------- kernel ----------------
def _kernel_inputs(n: int, d: int, c: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g) * 3, torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g),
            torch.randn(d, generator=g) * 0.3, torch.randn(c, generator=g), 0.3, torch.rand(n, generator=g))


def test_fused_reference_matches_pieces():
    logits, xf, y, w, u, b, coins = _kernel_inputs(50, 7, 4)
    out = fused_select_reference(logits, xf, y, w, u, b, coins)
    idx, prob = select_reference(xf, y, w, u, b, coins)
    assert torch.allclose(out["losses"], torch.nn.functional.cross_entropy(logits, y, reduction="none"), atol=1e-5)
    assert torch.equal(out["idx"][: int(out["count"])], idx) and torch.all(out["idx"][int(out["count"]):] == -1)
    assert torch.allclose(out["prob"], prob)


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
def test_triton_kernel_matches_reference_in_interpreter():
    # TRITON_INTERPRET is read when triton is first imported: a fresh interpreter process.
    proc = run_under_triton_interpreter(Path(__file__).with_name("_kernel_check.py"), SRC, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == 5  # 4 random cases + the golden reference stream


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_kernel_matches_reference_on_gpu():
    assert os.environ.get("TRITON_INTERPRET", "0") != "1"
    from repro_autoassist.kernels import fused_select_triton

    args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in _kernel_inputs(65536, 3072, 10)]
    ref, got = fused_select_reference(*args), fused_select_triton(*args)
    assert torch.allclose(got["prob"], ref["prob"], atol=1e-5)
    assert torch.allclose(got["losses"], ref["losses"], atol=1e-4)
    agree = (got["accept"] == ref["accept"]).float().mean()
    assert agree > 0.9999
