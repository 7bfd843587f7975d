"""Weight Update Skipping: skip mechanics, trigger, the core's lr schedule under WUS+LR, typed
hyper-parameters, the methods' fixed switches, validation-only decisions, models, hook state."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from repro import hparams as H
from repro.errors import ReproError
from repro.testing import spy_trial, temp_project
from repro.models import build_model
from repro.paper import Experiment
from repro.trainer import GD_KEYS, GradientConfig, LRSchedule, scheduled_lr, split_gradient_hparams
from repro.workloads import augment_batch, random_crop_flip

from repro_wus import METHODS, WeightUpdateSkipping
from repro_wus.configuration_wus import MONITORS, WUSConfig
from repro_wus.paper import PAPER
from repro_wus.wus import TriggerState, set_weight_updates, skip_schedule, trigger_step, weight_parameters

ROOT = Path(__file__).resolve().parents[3]  # the monorepo root (packages/wus/tests -> ...)


def _bn_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10))


# --- skip mechanics -------------------------------------------------------------------------------

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


# --- the trigger ------------------------------------------------------------------------------------

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


# --- learning-rate schedule: the core's, as WUS+LR uses it ---------------------------------------

def test_core_lr_schedules():
    step = GradientConfig(lr=1.0, lr_schedule="step", lr_step=10, lr_gamma=0.1)
    assert [scheduled_lr(step, e, 30) for e in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.1, 0.01])
    cos = GradientConfig(lr=1.0, lr_schedule="cosine")
    assert scheduled_lr(cos, 0, 10) == 1.0 and scheduled_lr(cos, 5, 10) == pytest.approx(0.5)
    assert scheduled_lr(GradientConfig(lr=0.3), 7, 10) == 0.3  # "none": constant
    warm = GradientConfig(lr=1.0, lr_schedule="step", lr_step=10, lr_gamma=0.1, warmup_epochs=4)
    assert [scheduled_lr(warm, e, 30) for e in (0, 3, 4, 10)] == pytest.approx([0.25, 1.0, 1.0, 0.1])


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_wus_lr_pair_runs_the_experiments_step_schedule(scale):
    exp = next(iter(PAPER.experiments_at(scale).values()))
    lr_step = exp.methods["wus_lr"]["lr_step"]
    for name in ("wus_lr", "baseline_lr"):
        gd, own = split_gradient_hparams(PAPER.trial_hparams(scale, exp.name, name), WUSConfig, name)
        assert (gd.lr_schedule, gd.lr_step, gd.lr_gamma) == ("step", lr_step, 0.1)
        assert own.skip is (name == "wus_lr")
        base = gd.lr
        assert scheduled_lr(gd, lr_step - 1, gd.epochs) == base
        assert scheduled_lr(gd, lr_step, gd.epochs) == pytest.approx(base * 0.1)
        assert scheduled_lr(gd, 2 * lr_step, gd.epochs) == pytest.approx(base * 0.01)
    for name in ("wus", "baseline"):  # the constant-lr pair: the same tunables, no schedule
        gd, _ = split_gradient_hparams(PAPER.trial_hparams(scale, exp.name, name), WUSConfig, name)
        assert gd.lr_schedule == "none"
        assert scheduled_lr(gd, 2 * lr_step, gd.epochs) == gd.lr


# --- typed hyper-parameters -----------------------------------------------------------------------

BAD_WUS = [("threshold", -0.1), ("threshold", math.nan), ("threshold", math.inf), ("threshold", "0.01"),
           ("window", 0), ("window", 2.5), ("patience", -1), ("patience", True), ("warmup", -1),
           ("skip", "yes"), ("skip", 1), ("monitor", 3), ("monitor", "test_accuracy"), ("monitor", "val_acc")]
BAD_LR = [("lr_gamma", math.nan), ("lr_gamma", 2.0), ("lr_gamma", 0.0), ("lr_step", 0),
          ("lr_schedule", "linear"), ("lr", -0.1), ("momentum", 1.5), ("epochs", 0)]


@pytest.mark.parametrize(("key", "value"), BAD_WUS)
def test_bad_wus_hparam_names_the_key(key, value):
    with pytest.raises(ReproError, match=repr(key)):
        H.parse(WUSConfig, {key: value}, "wus")


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(("key", "value"), BAD_WUS + BAD_LR)
def test_every_method_refuses_a_bad_hparam_naming_it(method, key, value):
    """Through the method's validate (what build_context runs before any work)."""
    with pytest.raises(ReproError, match=repr(key)):
        METHODS[method].validate({"lr": 0.1, key: value})


def test_unknown_keys_name_both_sets_of_valid_keys_and_unknown_models_are_refused():
    with pytest.raises(ReproError, match="windw") as err:
        METHODS["wus"].validate({"windw": 3})
    assert "window" in str(err.value) and "lr_schedule" in str(err.value)  # WUS's keys and the core's
    with pytest.raises(ReproError, match="resnet19_cifar"):
        build_model("resnet19_cifar")


def test_wus_config_fields_are_documented_and_typed():
    specs = H.specs(WUSConfig)
    assert set(specs) == {"skip", "monitor", "threshold", "patience", "window", "warmup"}
    assert not set(specs) & GD_KEYS  # the schedule keys are the core's, not WUS's
    assert all(s.doc for s in specs.values())
    assert specs["monitor"].choices == MONITORS and all(m.startswith("val_") for m in MONITORS)
    parsed = H.parse(WUSConfig, {"threshold": 0, "window": 1, "monitor": "val_cross_entropy"}, "wus")
    assert parsed == WUSConfig(threshold=0.0, window=1, monitor="val_cross_entropy")
    assert isinstance(parsed.threshold, float)
    for name in METHODS:
        for key in specs:
            assert f"`{key}`" in METHODS[name].hparams_doc, (name, key)


# --- the methods: fixed switches ------------------------------------------------------------------

def test_methods_are_defined_by_their_fixed_switches():
    assert PAPER.methods is METHODS
    assert PAPER.methods["wus"].fixed == {"skip": True}
    assert PAPER.methods["baseline"].fixed == {"skip": False}
    assert PAPER.methods["wus_lr"].fixed == {"skip": True, "lr_schedule": "step"}
    assert PAPER.methods["baseline_lr"].fixed == {"skip": False, "lr_schedule": "step"}
    assert {m for m, spec in METHODS.items() if spec.is_baseline} == {"baseline", "baseline_lr"}
    # Every experiment gives the four methods the same tunables: only the fixed switches differ.
    for scale in ("smoke", "paper"):
        for exp in PAPER.experiments_at(scale).values():
            tunables = list(exp.methods.values())
            assert all(t == tunables[0] for t in tunables)
            assert not set(tunables[0]) & {"skip", "lr_schedule"}
            assert PAPER.trial_hparams(scale, exp.name, "baseline_lr")["lr_schedule"] == "step"
            assert PAPER.trial_hparams(scale, exp.name, "wus_lr")["skip"] is True
            assert "lr_schedule" not in PAPER.trial_hparams(scale, exp.name, "wus")


@pytest.mark.parametrize(("method", "key", "value"), [("wus", "skip", False), ("baseline", "skip", True),
                                                      ("wus_lr", "lr_schedule", "cosine")])
def test_an_experiment_setting_a_fixed_switch_is_refused(method, key, value):
    with pytest.raises(ReproError, match=repr(key)):
        METHODS[method].hparams({"lr": 0.1, key: value})
    bad = Experiment("bad", "digits_cnn", {m: {} for m in METHODS} | {method: {key: value}})
    with pytest.raises(ReproError, match=f"{key!r}.*fixed switch of method {method!r}"):
        dataclasses.replace(PAPER, experiments={"smoke": {"bad": bad}}, claims=())


# --- decisions read validation only ---------------------------------------------------------------

class _State:
    def __init__(self, model: nn.Module, evaluated: bool = True, epoch: int = 0, **metrics: float) -> None:
        self.model, self.epoch, self.evaluated = model, epoch, evaluated
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        self.last_eval = metrics or {"val_accuracy": 0.9}
        self.ctx = SimpleNamespace(extra={})


def test_the_hook_decides_on_validation_exactly_when_it_skips():
    assert WeightUpdateSkipping(WUSConfig(skip=True)).decides_on_validation is True
    assert WeightUpdateSkipping(WUSConfig(skip=False)).decides_on_validation is False
    assert WUSConfig().monitor == "val_accuracy"


def test_the_trigger_ignores_test_metrics():
    cfg = WUSConfig(threshold=0.05, patience=1, window=2, warmup=0)
    hook = WeightUpdateSkipping(cfg)
    for epoch in range(4):  # a perfectly flat *test* accuracy and no validation metric: never calm
        st = _State(_bn_cnn(), epoch=epoch + 1, test_accuracy=0.9, test_cross_entropy=0.3)
        hook.epoch_end(st)
    assert hook.trigger == TriggerState()
    for epoch in range(2):  # the same values on the validation split open a window
        hook.epoch_end(_State(_bn_cnn(), epoch=epoch + 1, val_accuracy=0.9, test_accuracy=0.1 * epoch))
    assert hook.trigger.windows == 1


@pytest.fixture
def digits_project(tmp_path, monkeypatch):
    """A temp project (the real params.yaml and schema) with the digits dataset prepared."""
    return temp_project(tmp_path, ROOT, monkeypatch, ("digits",))


def _tiny_trial(method: str, monkeypatch) -> SimpleNamespace:
    """One tiny smoke trial of *method*, spying on the Trainer and on every evaluation."""
    return spy_trial("wus", "digits_cnn", method, monkeypatch, PAPER.tiny_hparams[method])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_trials_decide_on_validation_only_and_only_when_skipping(digits_project, monkeypatch, method):
    spy = _tiny_trial(method, monkeypatch)
    (trainer,) = spy.trainers
    (wus_hook,) = [h for h in trainer.hooks if isinstance(h, WeightUpdateSkipping)]
    skips = METHODS[method].fixed["skip"]
    assert wus_hook.cfg.skip is skips and wus_hook.cfg.monitor == "val_accuracy"
    # A baseline's hooks decide nothing on validation, so its evaluations stay off the clock.
    assert trainer.decides_on_validation is skips
    assert any(spy.decisions) is skips
    lr_hooks = [h for h in trainer.hooks if isinstance(h, LRSchedule)]
    assert len(lr_hooks) == (1 if method.endswith("_lr") else 0)
    if lr_hooks:
        assert lr_hooks[0].cfg.lr_schedule == "step" and lr_hooks[0].cfg.lr_step == PAPER.tiny_hparams[method]["lr_step"]
    # Nothing that steers training ever reads a test metric.
    assert spy.reads and not [k for k in spy.reads if k.startswith("test_")]
    history = spy.ctx.history
    assert all("val_accuracy" in row and "test_accuracy" in row for row in history)
    assert all(row["train_cpu_time_s"] > 0 for row in history)


def test_a_wus_trial_skips_as_its_validation_accuracy_dictates(digits_project, monkeypatch):
    spy = _tiny_trial("wus", monkeypatch)
    cfg = H.parse(WUSConfig, {**PAPER.trial_hparams("smoke", "digits_cnn", "wus"), **PAPER.tiny_hparams["wus"]},
                  "wus", ignore=GD_KEYS)
    history = spy.ctx.history
    assert [row["epoch"] for row in history] == [float(e) for e in range(1, 7)]
    replay = skip_schedule([row["val_accuracy"] for row in history], cfg)
    assert spy.summary["skipped_epochs"] == sum(replay) > 0  # tiny threshold 0.5: calm from the warm-up on
    assert spy.summary["skip_windows"] >= 1
    assert spy.summary["skipped_fraction"] == pytest.approx(sum(replay) / 6)
    assert "val_accuracy" in spy.reads


# --- models and augmentation ------------------------------------------------------------------------

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


# --- resume ---------------------------------------------------------------------------------------

def test_hook_state_round_trip_refreezes_on_resume():
    cfg = WUSConfig(threshold=0.05, patience=1, window=2, warmup=0)
    model = _bn_cnn()
    hook = WeightUpdateSkipping(cfg)
    for epoch in range(2):  # 0.9, 0.9 -> calm -> window opens after epoch 2
        st = _State(model, epoch=epoch)
        hook.epoch_start(st)
        st.epoch = epoch + 1
        hook.epoch_end(st)
    saved = hook.state_dict()
    assert saved["skip_left"] == 2 and saved["windows"] == 1

    resumed = WeightUpdateSkipping(cfg)
    resumed.load_state_dict(saved)
    fresh = _bn_cnn()
    st = _State(fresh, epoch=3)
    resumed.epoch_start(st)
    assert resumed.state_dict() == saved
    assert all(not w.requires_grad for w in weight_parameters(fresh))
    # The lr of a resumed epoch comes from the epoch number alone (the core's LRSchedule).
    LRSchedule(GradientConfig(lr=1.0, lr_schedule="step", lr_step=1, lr_gamma=0.5), total_epochs=10).epoch_start(st)
    assert st.optimizer.param_groups[0]["lr"] == pytest.approx(0.125)  # 1.0 * 0.5**3
    resumed.fit_end(st)
    assert all(w.requires_grad for w in weight_parameters(fresh))
    assert st.ctx.extra["skip_windows"] == 1.0
