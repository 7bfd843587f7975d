"""The fast CIFAR-10 baseline (``repro.fast_cifar``) against airbench94's own code (the ``airbench``
0.1.8 package, a dev dependency), on identical inputs, on the CPU: the network's forward pass,
the whitening init, test-time augmentation, two optimizer steps with its learning-rate and
weight-decay conventions (its summed loss vs our mean loss), the lookahead EMA and the schedule;
then the whole recipe on tiny data through the core Trainer (step cap, drop-last, whitening-bias
freeze, test scored once with TTA, exact resume) and the benchmark's CPU quick mode."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from repro import catalog, fast_cifar
from repro.models import CIFAR10_MEAN, CIFAR10_STD, AirbenchNet
from repro.workloads import tta_predict

airbench = pytest.importorskip("airbench")
from airbench import lib_airbench94 as ab94  # noqa: E402
from airbench import utils as abu  # noqa: E402


@pytest.fixture
def reference_net(monkeypatch):
    """airbench's ``make_net94`` on the CPU in fp32 (it calls ``.half().cuda()``: made no-ops)."""
    def build(widths=(64, 256, 256)):
        monkeypatch.setattr(nn.Module, "half", lambda self: self)
        monkeypatch.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
        net = ab94.make_net94(widths={"block1": widths[0], "block2": widths[1], "block3": widths[2]})
        monkeypatch.undo()
        return net.to(memory_format=torch.contiguous_format)
    return build


def _their_key(ours: str) -> str | None:
    """Our parameter/buffer names -> airbench's nn.Sequential indices."""
    if ours in ("mean", "std"):
        return None
    for a, b in (("whiten.", "0."), ("groups.0.", "2."), ("groups.1.", "3."), ("groups.2.", "4."), ("head.", "7.")):
        if ours.startswith(a):
            return b + ours[len(a):]
    raise AssertionError(ours)


def _same_weights(ours: AirbenchNet, theirs: nn.Module) -> None:
    sd = theirs.state_dict()
    with torch.no_grad():
        for k, v in ours.state_dict().items():
            tk = _their_key(k)
            if tk is not None:
                sd[tk].copy_(v)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)


def _images(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


WIDTHS = (16, 32, 32)  # small nets: the same code path, CPU-sized


def test_network_matches_airbench94(reference_net):
    torch.manual_seed(0)
    ours, theirs = AirbenchNet(widths=WIDTHS), reference_net(WIDTHS)
    assert set(filter(None, map(_their_key, ours.state_dict()))) == set(theirs.state_dict())
    # the same fixed / trainable parameters and batch-norm settings
    ours_frozen = {_their_key(n) for n, p in ours.named_parameters() if not p.requires_grad}
    assert ours_frozen == {n for n, p in theirs.named_parameters() if not p.requires_grad}
    bn_o = [m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_t = [m for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [(m.eps, m.momentum) for m in bn_o] == [(m.eps, m.momentum) for m in bn_t]
    # the Dirac part of every 3x3 convolution's init
    for conv in (m for m in ours.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)):
        c = conv.in_channels
        eye = torch.zeros_like(conv.weight[:c])
        nn.init.dirac_(eye)
        assert torch.equal(conv.weight[:c], eye)
    x = _images()
    ours.whiten.weight.data.normal_()
    _same_weights(ours, theirs)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        torch.testing.assert_close(ours(x), theirs(normalize(x)), rtol=1e-5, atol=1e-5)


def test_whitening_init_matches_airbench94():
    x = _images(200)
    ours = AirbenchNet(widths=WIDTHS)
    ours.whiten_init(x)
    layer = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    abu.init_whitening_conv(layer, normalize(x))
    a, b = ours.whiten.weight.flatten(1), layer.weight.detach().flatten(1)
    # eigenvectors are defined up to sign: filter i and its negative i + 12 may swap halves
    for i in range(12):
        sign = 1.0 if torch.allclose(a[i], b[i], rtol=1e-3, atol=1e-3) else -1.0
        torch.testing.assert_close(a[i], sign * b[i], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(a[i + 12], sign * b[i + 12], rtol=1e-3, atol=1e-3)


def test_tta_matches_airbench94(reference_net):
    torch.manual_seed(1)
    ours, theirs = AirbenchNet(widths=WIDTHS).eval(), reference_net(WIDTHS).eval()
    _same_weights(ours, theirs)
    x = _images(40)
    loader = SimpleNamespace(images=x, normalize=normalize)
    for level in (1, 2):
        with torch.no_grad():
            torch.testing.assert_close(tta_predict(ours, level)(x), abu.infer(theirs, loader, level),
                                       rtol=1e-5, atol=1e-5)


def test_optimizer_steps_match_airbench94_conventions(reference_net):
    """Two steps of ours (mean loss, ``torch_sgd_settings``) equal two of airbench's (summed loss,
    its un-decoupled lr and weight decay per group) on the same net and batches: no learning rate
    off by the batch size."""
    cfg = fast_cifar.FastCifarConfig(batch_size=32)
    torch.manual_seed(2)
    ours, theirs = AirbenchNet(widths=WIDTHS), reference_net(WIDTHS)
    _same_weights(ours, theirs)
    # airbench's optimizer, as its train() builds it
    kilostep = 1024 * (1 + 1 / (1 - cfg.momentum))
    lr, wd = cfg.lr / kilostep, cfg.weight_decay * cfg.batch_size / kilostep
    lr_b = lr * cfg.bias_scaler
    norm_b = [p for k, p in theirs.named_parameters() if "norm" in k and p.requires_grad]
    other = [p for k, p in theirs.named_parameters() if "norm" not in k and p.requires_grad]
    opt_t = torch.optim.SGD([dict(params=norm_b, lr=lr_b, weight_decay=wd / lr_b),
                             dict(params=other, lr=lr, weight_decay=wd / lr)], momentum=cfg.momentum, nesterov=True)
    s = fast_cifar.torch_sgd_settings(cfg)
    norm_o = [p for n, p in ours.named_parameters() if ".norm" in n and p.requires_grad]
    other_o = [p for n, p in ours.named_parameters() if ".norm" not in n and p.requires_grad]
    assert [p.shape for p in norm_o] == [p.shape for p in norm_b] and [p.shape for p in other_o] == [p.shape for p in other]
    opt_o = torch.optim.SGD([dict(params=norm_o, lr=s["lr_bias"], weight_decay=s["weight_decay_bias"]),
                             dict(params=other_o, lr=s["lr"], weight_decay=s["weight_decay"])],
                            momentum=cfg.momentum, nesterov=True)
    loss_t = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none")
    for step in range(2):
        x, y = _images(cfg.batch_size, seed=10 + step), torch.randint(0, 10, (cfg.batch_size,))
        opt_t.zero_grad(), opt_o.zero_grad()
        loss_t(theirs(normalize(x)), y).sum().backward()
        nn.functional.cross_entropy(ours(x), y, label_smoothing=cfg.label_smoothing).backward()
        opt_t.step(), opt_o.step()
    theirs_sd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        if _their_key(k) is not None and v.is_floating_point():
            torch.testing.assert_close(v, theirs_sd[_their_key(k)], rtol=1e-4, atol=1e-6, msg=k)


def test_lookahead_and_schedule_match_airbench94():
    total = 40
    sched = fast_cifar.triangle_schedule(total)
    peak = int(0.23 * total)
    assert sched[0] == pytest.approx(0.2) and sched[peak] == pytest.approx(1.0) and sched[total] == pytest.approx(0.07)
    assert torch.allclose(sched[1:peak] - sched[:peak - 1], torch.full((peak - 1,), 0.8 / peak))  # linear up
    # the EMA: our hook against airbench's LookaheadState over the same parameter trajectory
    torch.manual_seed(3)
    ours_net, ref_net = AirbenchNet(widths=WIDTHS), AirbenchNet(widths=WIDTHS)
    ref_net.load_state_dict(ours_net.state_dict())
    hook = fast_cifar.FastCifarRecipe(fast_cifar.FastCifarConfig(), total)
    hook.ema = {k: v.clone() for k, v in ours_net.state_dict().items() if v.is_floating_point()}
    hook.base_lrs = [1.0]
    ref = abu.LookaheadState(ref_net)
    state = SimpleNamespace(model=ours_net, optimizer=SimpleNamespace(param_groups=[{"lr": 1.0}]), step=0)
    for step in range(total):
        noise = torch.Generator().manual_seed(step)
        with torch.no_grad():
            for a, b in zip(ours_net.parameters(), ref_net.parameters()):
                d = torch.randn(a.shape, generator=noise) * 0.01
                a.add_(d), b.add_(d)
        state.step = step
        hook.after_optimizer_step(state)
        done = step + 1
        # airbench's train loop: every 5 steps, and once more (decay 1) at the last
        if done % 5 == 0:
            ref.update(ref_net, decay=0.95 ** 5 * (done / total) ** 3)
        if done >= total:
            ref.update(ref_net, decay=1.0)
        assert state.optimizer.param_groups[0]["lr"] == pytest.approx(float(sched[done]))
    for k, v in ours_net.state_dict().items():
        torch.testing.assert_close(v, ref_net.state_dict()[k], msg=k)


def test_torch_sgd_settings_scale_with_the_batch():
    a = fast_cifar.torch_sgd_settings(fast_cifar.FastCifarConfig(batch_size=1024))
    b = fast_cifar.torch_sgd_settings(fast_cifar.FastCifarConfig(batch_size=512))
    assert a["lr"] == pytest.approx(11.5 / (1 + 1 / 0.15))  # 11.5 per 1024 examples, summed -> mean loss
    assert b["lr"] == pytest.approx(a["lr"] / 2)  # per-example step size unchanged
    # decay per step lr * wd: 0.0153 per 1024 examples, so half of it with half the batch
    assert a["lr"] * a["weight_decay"] == pytest.approx(0.0153 / (1 + 1 / 0.15))
    assert b["lr"] * b["weight_decay"] == pytest.approx(a["lr"] * a["weight_decay"] / 2)


# --- the whole recipe through the core Trainer ------------------------------------------------

@pytest.fixture
def tiny_ctx(project, tmp_path):
    from repro.bench_fast_cifar import synthetic_cifar
    from repro.checkpoint import Checkpointer
    from repro.run import RunContext, seed_everything
    from repro.timing import TrainClock

    wl = dataclasses.replace(catalog.get_workload(fast_cifar.WORKLOAD), model_kwargs={"widths": (8, 16, 16)})
    data = wl.split(synthetic_cifar(300, 64))

    def make(name: str = "a") -> RunContext:
        seed_everything(0, torch.device("cpu"))
        return RunContext(paper="core", experiment="t", method="fast_cifar", seed=0, scale="smoke", workload=wl,
                          data=data, device=torch.device("cpu"), clock=TrainClock(torch.device("cpu")),
                          checkpoint=Checkpointer(tmp_path / f"{name}.pt"), generator=torch.Generator().manual_seed(0))
    return make


def test_recipe_trains_through_the_trainer(tiny_ctx):
    ctx = tiny_ctx()
    ctx.test_every_eval = False
    hp = {"batch_size": 64, "train_epochs": 2.5, "whiten_bias_epochs": 1, "lookahead_every": 2}
    state = fast_cifar.fit(ctx, hp)
    per_epoch = 270 // 64  # 270 training samples (10% held out), incomplete batches dropped
    assert ctx.extra["total_steps"] == math.ceil(per_epoch * 2.5) == state.step
    assert state.epoch == 3 and not state.model.whiten.bias.requires_grad
    ctx.score_final_test()
    assert "test_accuracy" in ctx.history[-1] and all("test_accuracy" not in r for r in ctx.history[:-1])
    assert torch.linalg.matrix_rank(state.model.whiten.weight.flatten(1)[:12]) == 12  # whitening set from data


def test_recipe_resumes_exactly(tiny_ctx):
    hp = {"batch_size": 64, "train_epochs": 3, "checkpoint_every": 1}
    full = tiny_ctx("full")
    fast_cifar.fit(full, hp)

    class Stop(Exception):
        pass

    first = tiny_ctx("resumed")
    save = first.save_checkpoint

    def save_then_die(state):
        save(state)
        if state["epoch"] == 2:
            raise Stop

    first.save_checkpoint = save_then_die
    with pytest.raises(Stop):
        fast_cifar.fit(first, hp)
    again = tiny_ctx("resumed")
    fast_cifar.fit(again, hp)
    drop = ("train_time_s", "train_cpu_time_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in again.history] == \
        [{k: v for k, v in r.items() if k not in drop} for r in full.history]


def test_recipe_refuses_another_model(project, make_ctx):
    from repro.errors import ReproError

    with pytest.raises(ReproError, match=r"no whitening layer.*'cifar10_fast'"):
        fast_cifar.fit(make_ctx(), {})


def test_bench_quick_on_cpu(project, tmp_path):
    from repro.bench_fast_cifar import bench_fast_cifar

    doc, js, md = bench_fast_cifar("cpu", seeds=1, synthetic=True, quick=True, out=tmp_path / "fc")
    assert doc["data"] == "synthetic (speed only)" and doc["ratio"] is None and doc["ours"][0]["train_time_s"] > 0
    assert "airbench94 not run: no CUDA device" in md.read_text() and js.is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_against_airbench_on_gpu(project, tmp_path):
    from repro.bench_fast_cifar import bench_fast_cifar

    doc, _, _ = bench_fast_cifar("cuda", seeds=1, synthetic=True, quick=True, out=tmp_path / "fc")
    assert doc["airbench"]["runs"] and doc["ratio"] is not None and doc["ratio"] > 0
