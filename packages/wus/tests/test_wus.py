"""Weight Update Skipping: skip mechanics, trigger, lr schedule, config validation, models, hook state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from repro.errors import ReproError
from repro.models import build_model
from repro.workloads import augment_batch, get_workload, random_crop_flip

from repro_wus import methods
from repro_wus.configuration_wus import WUSConfig
from repro_wus.paper import PAPER
from repro_wus.wus import (
    TriggerState,
    WeightUpdateSkipping,
    scheduled_lr,
    set_weight_updates,
    skip_schedule,
    trigger_step,
    weight_parameters,
)


def _bn_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10))


@pytest.mark.parametrize("optimizer", ["sgd_momentum_wd", "adamw"])
def test_skip_window_freezes_weights_and_trains_biases(optimizer):
    torch.manual_seed(0)
    model = _bn_cnn()
    opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
           if optimizer == "sgd_momentum_wd" else torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=1e-2))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # full update first: momentum / Adam state exists for every parameter
    set_weight_updates(model, False)
    weights = {id(w): w.detach().clone() for w in weight_parameters(model)}
    others = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in weights}
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    for w in weight_parameters(model):
        assert w.grad is None
    for n, p in model.named_parameters():
        if id(p) not in weights:
            assert p.grad is not None, n  # biases and batch-norm affine parameters
    opt.step()
    step()
    for w in weight_parameters(model):
        assert torch.equal(w, weights[id(w)])  # bit-identical despite momentum and weight decay
    for n, p in model.named_parameters():
        if id(p) not in weights:
            assert not torch.equal(p, others[n]), n
    set_weight_updates(model, True)
    assert all(w.requires_grad for w in weight_parameters(model))


def test_skip_window_keeps_the_function_and_the_state_dict():
    torch.manual_seed(0)
    model = _bn_cnn().eval()
    x = torch.randn(4, 1, 8, 8)
    keys, before = list(model.state_dict()), model(x)
    set_weight_updates(model, False)
    assert torch.allclose(model(x), before, atol=1e-6)  # conv(x, W) + b == conv(x, W, b)
    assert list(model.state_dict()) == keys
    set_weight_updates(model, True)
    assert "forward" not in model[0].__dict__ and torch.equal(model(x), before)


def test_weight_parameters_are_conv_and_linear_weights_only():
    model = _bn_cnn()
    assert [tuple(w.shape) for w in weight_parameters(model)] == [(4, 1, 3, 3), (10, 256)]


CFG = WUSConfig(threshold=0.01, patience=2, window=3, warmup=0)


def test_trigger_opens_a_window_after_patience_calm_epochs_and_resets_after():
    values = [0.5, 0.7, 0.705, 0.708, 0.71, 0.71, 0.71, 0.711, 0.712, 0.713, 0.9]
    # calm after epochs 3 and 4 -> window (epochs 5-7); the reference resets to the value after
    # epoch 7, so epochs 8 and 9 must be calm again before the next window (epochs 10-11).
    assert skip_schedule(values, CFG) == [False, False, False, False, True, True, True,
                                          False, False, True, True]


def test_trigger_never_fires_on_a_restless_or_disabled_run():
    values = [0.1 * i for i in range(10)]
    assert not any(skip_schedule(values, CFG))
    flat = [0.9] * 10
    assert not any(skip_schedule(flat, WUSConfig(skip=False)))
    assert any(skip_schedule(flat, CFG))


def test_trigger_warmup_and_missing_evaluations():
    flat = [0.9] * 8
    sched = skip_schedule(flat, WUSConfig(threshold=0.01, patience=1, window=2, warmup=4))
    assert sched.index(True) == 4  # epoch 4 (1-based) is the first that may count as calm
    st = trigger_step(TriggerState(previous=0.9, calm=1), None, 5, False, CFG)
    assert st.calm == 1 and st.skip_left == 0


def test_lr_schedules():
    step = WUSConfig(lr_schedule="step", lr_step=10, lr_gamma=0.1)
    assert [scheduled_lr(1.0, e, 30, step) for e in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.1, 0.01])
    cos = WUSConfig(lr_schedule="cosine")
    assert scheduled_lr(1.0, 0, 10, cos) == 1.0 and scheduled_lr(1.0, 5, 10, cos) == pytest.approx(0.5)
    assert scheduled_lr(0.3, 7, 10, WUSConfig()) == 0.3


@pytest.mark.parametrize(("key", "value"), [("threshold", -0.1), ("threshold", math.nan), ("window", 0),
                                            ("patience", -1), ("warmup", -1), ("lr_gamma", math.nan),
                                            ("lr_gamma", 2.0), ("lr_step", 0), ("lr_schedule", "linear"),
                                            ("threshold", math.inf)])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ReproError, match=key):
        WUSConfig(**{key: value})
    with pytest.raises(ReproError, match=key):
        methods.validate({"lr": 0.1, key: value})


def test_unknown_keys_and_models_are_refused():
    with pytest.raises(ReproError, match="windw"):
        methods.validate({"windw": 3})
    with pytest.raises(ReproError, match="resnet19_cifar"):
        build_model("resnet19_cifar")


def test_every_experiment_validates():
    for scale in ("smoke", "paper"):
        for exp in PAPER.experiments_at(scale).values():
            get_workload(exp.workload)
            for m, hp in exp.methods.items():
                PAPER.method(m).validate(hp)


@pytest.mark.parametrize("name", ["alexnet_cifar", "vgg11_cifar", "vgg16_cifar", "resnet18_cifar"])
def test_cifar_models_output_shapes(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=100).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    assert weight_parameters(model)


def test_crop_flip_augmentation():
    x = torch.rand(64, 3, 32, 32)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    again = augment_batch("crop_flip", x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # same generator state, same augmentation (resume-safe)
    # Each sample is a shifted (and maybe mirrored) copy: its centre patch appears in the original.
    matched = 0
    for i in range(len(x)):
        centre = out[i, :, 12:20, 12:20]
        for img in (x[i], x[i].flip(2)):
            windows = img.unfold(1, 8, 1).unfold(2, 8, 1)  # (C, 25, 25, 8, 8)
            if (windows == centre[:, None, None]).all(0).all(-1).all(-1).any():
                matched += 1
                break
    assert matched == len(x)
    assert torch.equal(augment_batch("", x, torch.Generator()), x)


class _State:
    def __init__(self, model: nn.Module, evaluated: bool = True, acc: float = 0.9, epoch: int = 0) -> None:
        from types import SimpleNamespace

        self.model, self.epoch, self.evaluated = model, epoch, evaluated
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        self.last_eval = {"test_accuracy": acc}
        self.ctx = SimpleNamespace(extra={})


def test_hook_state_round_trip_refreezes_on_resume():
    cfg = WUSConfig(threshold=0.05, patience=1, window=2, warmup=0, lr_schedule="step", lr_step=1, lr_gamma=0.5)
    model = _bn_cnn()
    hook = WeightUpdateSkipping(cfg, base_lr=1.0, total_epochs=10)
    for epoch in range(2):  # 0.9, 0.9 -> calm -> window opens after epoch 2
        st = _State(model, epoch=epoch)
        hook.epoch_start(st)
        st.epoch = epoch + 1
        hook.epoch_end(st)
    saved = hook.state_dict()
    assert saved["skip_left"] == 2 and saved["windows"] == 1

    resumed = WeightUpdateSkipping(cfg, base_lr=1.0, total_epochs=10)
    resumed.load_state_dict(saved)
    fresh = _bn_cnn()
    st = _State(fresh, epoch=3)  # lr at 0-based epoch 3: 1.0 * 0.5**3
    resumed.epoch_start(st)
    assert resumed.state_dict() == saved
    assert all(not w.requires_grad for w in weight_parameters(fresh))
    assert st.optimizer.param_groups[0]["lr"] == pytest.approx(0.125)
    resumed.fit_end(st)
    assert all(w.requires_grad for w in weight_parameters(fresh))
    assert st.ctx.extra["skip_windows"] == 1.0
