"""AutoAssist against its reference code (zhangjiong724/autoassist-exp@9007a14, image_classification/).

Golden values. ``golden_reference.json`` is written by ``_golden_reference.py`` (next to this file),
an independent NumPy float64 re-implementation of the reference's formulas — see that module's
docstring for the exact functions and lines it follows:

* Assistant update: ``assistant.py`` ``AssistantModelBinary.train_step`` — step size
  ``self.lr / Y.shape[0]`` (lr 0.01 divided by the batch size B) on the *sum* of the per-instance
  gradients ``grad = sigmoid(X·W + U[Y]) − 1[loss > mean]`` and on the L2 term (``lam`` 1e-3);
  ``U[Y[i]]`` updated in a sequential loop over the batch, then ``W``.
* Loss threshold: ``train_autoassist.py`` ``main()``: EMA (α 0.75) of the batch size and of the
  batch's loss sum, mean = ratio, updated with the current batch before it is reported.
* Acceptance: ``assistant.py`` ``AssistantSampler.__iter__``: yield if ``coin < b``, else if
  ``(coin − b)/(1 − b) < sigmoid(W·x + U[y])``.
* Batches: ``train_autoassist.py`` ``BQ_feeder``: ``DataLoader(batch_size=B, sampler=AssistantSampler)``
  over an endless sampler → consecutive groups of exactly B accepted indices, never flushed at the
  end of a pass over the data.

Regenerate: ``uv run --frozen python packages/autoassist/tests/_golden_reference.py --write``
(``test_golden_file_is_what_the_generator_writes`` checks the JSON is current).

Checked to fail on the previous implementation (its assistant.py + shrinking.py: step lr instead
of lr / B, i.e. B× too large, and thinned instead of filled batches: 14 of these fail) and on
single mutations of the new one: step lr (the 6 Assistant tests here), per-class biases updated
simultaneously instead of sequentially (the ``large_step`` golden case), fill disabled, the buffer
flushed at epoch end, the buffer left out of the checkpoint (the fill and resume tests).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.errors import ReproError
from repro.run import RunContext, seed_everything, summarise
from repro.timing import TrainClock
from repro.trainer import Hook, Trainer, TrainState
from repro.workloads import Workload

from repro_autoassist.assistant import Assistant, acceptance_prob, assistant_sgd, keep_score
from repro_autoassist.configuration_autoassist import AutoAssistConfig
from repro_autoassist.kernels import select_reference
from repro_autoassist.paper import PAPER
from repro_autoassist.methods import InstanceShrinking
from repro_autoassist.shrinking import SyncExchange

HERE = Path(__file__).resolve().parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("autoassist_golden_reference", HERE / "_golden_reference.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


REF = _load_generator()
GOLDEN = json.loads((HERE / "golden_reference.json").read_text())


def _close(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), path
    else:
        assert a == b, path


def test_golden_file_is_what_the_generator_writes():
    _close(REF.build(), GOLDEN)


# ---------------- the Assistant's update ----------------
@pytest.mark.parametrize("case", GOLDEN["learning"], ids=lambda c: c["name"])
def test_assistant_after_k_updates_matches_reference(case):
    t = lambda v, dt=torch.float32: torch.tensor(v, dtype=dt)  # noqa: E731
    a = Assistant(w=t(case["w0"]), u=t(case["u0"]), lr=case["lr"], l2=case["l2"], alpha=case["alpha"])
    exp = case["expected"]
    tol = 1e-6 if case["name"] == "reference_defaults" else 2e-5
    for k in range(len(case["x"])):
        x, y, losses = t(case["x"][k]), t(case["y"][k], torch.long), t(case["losses"][k])
        assert torch.allclose(a.score(x, y), t(exp["prob_before"][k]), atol=1e-6)
        w_before = a.w.clone()
        a.learn(x, y, losses)
        assert a.loss_mean == pytest.approx(exp["loss_mean"][k], rel=1e-6)
        assert torch.allclose(a.w, t(exp["w"][k]), rtol=0, atol=tol), (k, a.w - t(exp["w"][k]))
        assert torch.allclose(a.u, t(exp["u"][k]), rtol=0, atol=tol), (k, a.u - t(exp["u"][k]))
        assert not torch.equal(a.w, w_before)
    assert a.updates == len(case["x"])


@pytest.mark.parametrize("batch", [16, 40, 128])
def test_assistant_step_equals_reference_step(batch):
    """Our (w, u) step on a batch of B equals ``AssistantModelBinary.train_step``'s (lr 0.01 / B, λ 1e-3)."""
    rng = np.random.default_rng(batch)
    dim, classes = 64, 10
    W = (0.5 * rng.standard_normal(dim)).astype(np.float32)
    U = (0.5 * rng.standard_normal(classes)).astype(np.float32)
    X = rng.uniform(0, 1, (batch, dim)).astype(np.float32)
    Y = rng.integers(0, classes, batch)
    L = rng.exponential(1.0, batch).astype(np.float32)
    mean = float(L.mean())
    W_ref, U_ref = REF.reference_train_step(W, U, X.astype(np.float64), Y, L, mean, lr=0.01, lam=1e-3)
    w, u = assistant_sgd(torch.from_numpy(W), torch.from_numpy(U), torch.from_numpy(X), torch.from_numpy(Y),
                         torch.from_numpy(L > mean), lr=0.01, l2=1e-3)
    dw, dw_ref = w.double().numpy() - W, W_ref - W
    du, du_ref = u.double().numpy() - U, U_ref - U
    ratio = np.linalg.norm(dw) / np.linalg.norm(dw_ref)
    assert ratio == pytest.approx(1.0, abs=1e-4), f"step is {ratio:.2f}x the reference's"
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-3, atol=1e-8)
    np.testing.assert_allclose(du, du_ref, rtol=1e-3, atol=1e-8)


def test_probabilities_do_not_saturate_on_a_synthetic_problem():
    """1,000 reports of B = 128 digits-like inputs (64 features in [0, 1], 10 classes) whose loss is
    softplus of a hidden linear score plus noise. With the reference's lr / B step no held-out
    probability leaves [0.01, 0.99] and the Assistant still ranks high-loss instances higher; the
    B-times-larger step (the previous rule, emulated by lr × B) saturates > 10% of them."""

    def train(lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        dim, classes, batch = 64, 10, 128
        v = torch.randn(dim, generator=g)
        a = Assistant.create(dim, classes, g, lr=lr)
        for _ in range(1000):
            x, y = torch.rand(batch, dim, generator=g), torch.randint(0, classes, (batch,), generator=g)
            z = (x - 0.5) @ v / 2 + 0.5 * torch.randn(batch, generator=g)
            a.learn(x, y, torch.nn.functional.softplus(z))
        xt, yt = torch.rand(4000, dim, generator=g), torch.randint(0, classes, (4000,), generator=g)
        high = torch.nn.functional.softplus((xt - 0.5) @ v / 2) > a.loss_mean
        return a.score(xt, yt), high

    p, high = train(0.01)
    saturated = ((p < 0.01) | (p > 0.99)).float().mean().item()
    assert saturated == 0.0, saturated
    assert p[high].mean() > p[~high].mean() + 0.05  # it learned something
    p_big, _ = train(0.01 * 128)
    assert ((p_big < 0.01) | (p_big > 0.99)).float().mean().item() > 0.10


# ---------------- acceptance and batches ----------------
S = GOLDEN["stream"]


def test_acceptance_matches_reference_sampler():
    w, u = torch.tensor(S["w"]), torch.tensor(S["u"])
    x, y = torch.tensor(S["x"]), torch.tensor(S["y"])
    p = keep_score(w, u, x, y)
    assert torch.allclose(p, torch.tensor(S["expected"]["keep_prob"]), atol=1e-6)
    assert torch.allclose(acceptance_prob(p, S["base_prob"]), torch.tensor(S["expected"]["accept_prob"]), atol=1e-6)
    order, coins = torch.tensor(S["order"]), torch.tensor(S["coins"])
    idx, _ = select_reference(x[order], y[order], w, u, S["base_prob"], coins)
    assert idx.tolist() == S["expected"]["accepted_positions"]


class _FixedCoins(InstanceShrinking):
    """The hook with the golden coins instead of its generator."""

    def __init__(self, cfg: AutoAssistConfig, coins: list[float]) -> None:
        super().__init__(cfg)
        self._golden = torch.tensor(coins)
        self._used = 0

    def _coins(self, n: int) -> torch.Tensor:
        out = self._golden[self._used:self._used + n]
        self._used += n
        return out


def _drive(batching: str) -> tuple[_FixedCoins, list[int], list[torch.Tensor]]:
    """Feed the golden candidate stream (3 epochs of 13, batches 5/5/3) through a frozen Assistant."""
    hook = _FixedCoins(AutoAssistConfig(base_prob=S["base_prob"], batching=batching), S["coins"])
    hook.gen = torch.Generator()  # set up by hand: no context needed
    hook.exchange = SyncExchange(Assistant(w=torch.tensor(S["w"]), u=torch.tensor(S["u"])))
    state = SimpleNamespace(evaluated=False, ctx=SimpleNamespace(history=[], extra={}))
    x, y, order = torch.tensor(S["x"]), torch.tensor(S["y"]), S["order"]
    sizes, batches, pos, per_epoch = [], [], 0, math.ceil(S["n_per_epoch"] / S["batch"])
    for k, size in enumerate(S["candidate_sizes"]):
        rows = order[pos:pos + size]
        pos += size
        xs, ys = hook.select_batch(state, x[rows], y[rows])
        assert len(xs) == len(ys)
        sizes.append(len(ys))
        if len(ys):
            batches.append(xs)
        if (k + 1) % per_epoch == 0:
            hook.epoch_end(state)  # an epoch boundary must not flush the buffer
    return hook, sizes, batches


def test_fill_batches_match_reference_loader():
    hook, sizes, batches = _drive("fill")
    exp = S["expected"]
    assert sizes == exp["fill_sizes"]
    x, order = torch.tensor(S["x"]), S["order"]
    assert len(batches) == len(exp["fill_batches_positions"])
    for got, positions in zip(batches, exp["fill_batches_positions"]):
        assert torch.equal(got, x[[order[p] for p in positions]])  # same instances, same (stream) order
    assert hook.buffered == exp["fill_leftover"]
    assert hook.accepted == len(exp["accepted_positions"]) and hook.candidates == len(order)
    assert hook.empty_batches == sizes.count(0)


def test_thin_batches_are_the_accepted_part_of_each_candidate_batch():
    hook, sizes, _ = _drive("thin")
    assert sizes == S["expected"]["thin_sizes"]
    assert hook.buffered == 0 and hook.accepted == sum(sizes)


def test_batching_is_validated():
    for bad in ("bulk", 3):
        with pytest.raises(ReproError, match="batching"):
            PAPER.methods["autoassist"].validate({"optimizer": "sgd", "lr": 0.1, "selection": "autoassist",
                                                  "batching": bad})
    assert AutoAssistConfig().batching == "fill"


# ---------------- in the Trainer ----------------
WL = Workload(name="blobs_mlp", dataset="blobs", model="mlp", model_kwargs={"sizes": [8, 16, 3], "activation": "relu"},
              loss="cross_entropy", metrics=("test_accuracy", "test_cross_entropy"), target=0.9, batch_size=16,
              max_epochs=5, description="test blobs")


def _ctx(tmp_path: Path, name: str = "ck", seed: int = 0) -> RunContext:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 8, generator=g) * 3
    y = torch.randint(0, 3, (240,), generator=g)
    x = centers[y] + torch.randn(240, 8, generator=g)
    data = TensorData(name="blobs", task="classification", x_train=x[:120], y_train=y[:120], x_test=x[120:],
                      y_test=y[120:], num_classes=3)
    if hasattr(WL, "split"):  # a core with a validation split carved out of the training data
        data = WL.split(data)
    dev = torch.device("cpu")
    seed_everything(seed, dev)
    return RunContext(paper="autoassist", experiment="blobs", method="m", seed=seed, scale="smoke", workload=WL,
                      data=data, device=dev, clock=TrainClock(dev), checkpoint=Checkpointer(tmp_path / f"{name}.pt"),
                      generator=torch.Generator().manual_seed(seed), progress=False)


METHOD_OF = {"all": "sgd", "loss_is": "loss_is", "autoassist": "autoassist"}


def _fit(ctx: RunContext, hparams: dict) -> None:
    PAPER.methods[METHOD_OF[hparams["selection"]]].fit(ctx, hparams)


def _candidate_batches(ctx: RunContext, batch: int = 16) -> list[int]:
    n = len(ctx.data.x_train)
    return [min(batch, n - s) for s in range(0, n, batch)]


class _Sizes(Hook):
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def after_forward(self, state: TrainState) -> None:
        self.sizes.append(len(state.y))


def _train(tmp_path: Path, selection: str, batching: str,
           epochs: int = 3) -> tuple[RunContext, InstanceShrinking, list[int]]:
    ctx = _ctx(tmp_path)
    hook, spy = InstanceShrinking(AutoAssistConfig(selection=selection, batching=batching)), _Sizes()
    model = ctx.workload.build_model()
    Trainer(ctx, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), epochs=epochs, batch_size=16,
            hooks=[hook, spy]).fit()
    return ctx, hook, spy.sizes


@pytest.mark.parametrize("selection", ["autoassist", "loss_is"])
def test_fill_gives_every_step_b_accepted_instances(tmp_path, selection):
    ctx, hook, sizes = _train(tmp_path, selection, "fill")
    s = summarise(ctx)
    cands = _candidate_batches(ctx)
    assert cands[-1] < 16  # the last candidate batch of an epoch is short; steps are still full
    assert sizes and set(sizes) == {16}
    assert s["instances_backpropagated"] == 16 * len(sizes) == hook.backprop
    assert hook.accepted == hook.backprop + hook.buffered and 0 <= s["leftover_instances"] < 16
    assert s["acceptance_rate"] == pytest.approx(hook.accepted / (3 * sum(cands)))
    assert s["empty_batches"] == 3 * len(cands) - len(sizes)  # candidate batches without a step
    steps = [r["instances_backpropagated"] for r in ctx.history]
    assert steps == sorted(steps) and steps[-1] == hook.backprop and all(v % 16 == 0 for v in steps)
    if not math.isnan(ctx.extra["instances_to_target"]):
        assert ctx.extra["instances_to_target"] in steps


def test_thin_steps_on_each_thinned_candidate_batch(tmp_path):
    ctx, hook, sizes = _train(tmp_path, "autoassist", "thin")
    s = summarise(ctx)
    assert max(sizes) <= 16 and len(set(sizes)) > 1
    assert hook.accepted == hook.backprop == sum(sizes) and s["leftover_instances"] == 0
    assert len(sizes) == 3 * len(_candidate_batches(ctx)) - s["empty_batches"]


def test_sgd_is_unaffected_by_batching(tmp_path):
    runs = [_train(tmp_path, "all", b) for b in ("fill", "thin")]
    drop = lambda h: [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in h]  # noqa: E731
    (a, _, sa), (b, _, sb) = runs
    assert sa == sb == _candidate_batches(a) * 3
    assert drop(a.history) == drop(b.history) and a.extra["instances_backpropagated"] == 3 * len(a.data.x_train)


@pytest.mark.parametrize(("selection", "batching"),
                         [("autoassist", "fill"), ("loss_is", "fill"), ("autoassist", "thin")])
def test_resume_is_exact_with_the_buffer_in_the_checkpoint(tmp_path, selection, batching):
    hp = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 4, "batch_size": 16, "checkpoint_every": 1,
          "selection": selection, "batching": batching}
    full = _ctx(tmp_path, name="full")
    _fit(full, hp)

    class Stop(Exception):
        pass

    c = _ctx(tmp_path, name="c")
    save, saved = c.save_checkpoint, []

    def save_then_die(state):  # "fill": die at the first checkpoint holding a partial batch; "thin": the 2nd
        save(state)
        saved.append(state["hooks"][0])
        if (batching == "fill" and saved[-1]["buffer"] is not None) or len(saved) == 2:
            raise Stop

    c.save_checkpoint = save_then_die
    with pytest.raises(Stop):
        _fit(c, hp)
    if batching == "fill":
        assert saved[-1]["buffer"] is not None and 0 < len(saved[-1]["buffer"][1]) < 16  # a partial batch waits
    else:
        assert all(h["buffer"] is None for h in saved)
    d = _ctx(tmp_path, name="c")
    _fit(d, hp)
    drop = lambda h: [{k: v for k, v in r.items() if not k.endswith("_time_s")} for r in h]  # noqa: E731
    assert drop(d.history) == drop(full.history) and d.forward_evals == full.forward_evals
    for key in ("instances_backpropagated", "instances_to_target", "acceptance_rate", "leftover_instances",
                "empty_batches"):
        a, b = d.extra[key], full.extra[key]
        assert (math.isnan(a) and math.isnan(b)) or a == b, key
