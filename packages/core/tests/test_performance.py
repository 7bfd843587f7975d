"""The Trainer's GPU switches (repro.performance): per-scale defaults, no-ops on the CPU, warm-up
off the clock, no host sync inside the training step, the device generator in checkpoints.

The ``gpu`` tests run the step under ``torch.cuda.set_sync_debug_mode("error")``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from repro import performance as P
from repro.checkpoint import Checkpointer
from repro.datasets import TensorData
from repro.run import RunContext, seed_everything
from repro.timing import TrainClock
from repro.trainer import Hook, Trainer, gradient_descent
from repro.workloads import Workload, random_crop_flip

CUDA = torch.device("cuda")
CPU = torch.device("cpu")

# CIFAR-shaped synthetic images: a convnet with crop+flip augmentation (the CIFAR step's pattern)
IMAGES = Workload(name="images", dataset="synthetic_images", model="small_cnn",
                  model_kwargs={"in_channels": 3, "num_classes": 4, "width": 4}, loss="cross_entropy",
                  metrics=("test_accuracy",), target=0.9, batch_size=16, max_epochs=2, augment="crop_flip")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the tiny convnet steps of these tests, not a thread pool's spin-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def image_ctx(tmp_path: Path, device: torch.device = CPU, seed: int = 0, scale: str = "smoke",
              n: int = 96, checkpoint: str = "ckpt.pt") -> RunContext:
    seed_everything(seed, device)
    g = torch.Generator().manual_seed(123)
    data = TensorData(name="synthetic_images", task="classification",
                      x_train=torch.randn(n, 3, 8, 8, generator=g), y_train=torch.randint(0, 4, (n,), generator=g),
                      x_test=torch.randn(32, 3, 8, 8, generator=g), y_test=torch.randint(0, 4, (32,), generator=g),
                      num_classes=4)
    return RunContext(
        paper="test", experiment="exp", method="gd", seed=seed, scale=scale, workload=IMAGES,
        data=IMAGES.split(data).to(device), device=device, clock=TrainClock(device),
        checkpoint=Checkpointer(tmp_path / checkpoint), generator=torch.Generator().manual_seed(seed),
        device_generator=torch.Generator(device=device).manual_seed(seed) if device.type == "cuda" else None,
        progress=False,
    )


def image_trainer(ctx: RunContext, optimizer: str = "adam", perf: P.Performance | None = None,
                  hooks: tuple[Hook, ...] = (), epochs: int = 2, batch_size: int = 16) -> Trainer:
    torch.manual_seed(ctx.seed)
    model = ctx.workload.build_model()
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    return Trainer(ctx, model, opt, epochs=epochs, batch_size=batch_size, hooks=hooks, performance=perf)


# ---- defaults and the CPU ----------------------------------------------------------------------

def test_per_scale_defaults_on_cuda():
    smoke, paper = P.resolve(CUDA, "smoke"), P.resolve(CUDA, "paper")
    assert smoke == P.Performance(precision="fp32", tf32=False, channels_last=False, compile=False,
                                  deterministic=True, warmup_steps=P.CUDA_WARMUP_STEPS)
    assert paper == P.Performance(precision="fp32", tf32=True, channels_last=True, compile=False,
                                  deterministic=False, warmup_steps=P.CUDA_WARMUP_STEPS)
    asked = P.resolve(CUDA, "paper", precision="bf16", tf32=False, channels_last=False, compile=True,
                      deterministic=True, warmup_steps=0)
    assert asked == P.Performance("bf16", False, False, True, True, 0)


def test_every_switch_but_warmup_is_ignored_on_the_cpu():
    everything = dict(precision="bf16", tf32=True, channels_last=True, compile=True, deterministic=False)
    assert P.resolve(CPU, "paper", **everything) == P.Performance()
    assert P.resolve(CPU, "smoke") == P.Performance(warmup_steps=0)
    assert P.resolve(CPU, "smoke", warmup_steps=3).warmup_steps == 3
    model = torch.nn.Conv2d(3, 4, 3)
    assert P.apply(P.resolve(CUDA, "paper"), CPU, model) is model  # no flags, no memory format on the CPU
    assert isinstance(P.autocast(P.Performance(precision="bf16"), CPU), type(P.autocast(P.Performance(), CPU)))


def test_gradient_switches_are_validated_and_recorded(make_ctx):
    from repro.errors import ReproError

    with pytest.raises(ReproError, match=r"'precision' value 'fp16'; valid choices: bf16, fp32"):
        gradient_descent(make_ctx(), {"precision": "fp16", "epochs": 1})
    with pytest.raises(ReproError, match=r"'warmup_steps' must be in \[0, inf\]"):
        gradient_descent(make_ctx(), {"warmup_steps": -1, "epochs": 1})
    ctx = make_ctx()
    gradient_descent(ctx, {"epochs": 1, "precision": "bf16", "deterministic": False, "tf32": True})
    # what applied, not what was asked: the CPU trains in fp32, deterministically
    assert ctx.performance == P.Performance().record()
    assert "warmup_time_s" not in ctx.extra  # default: no warm-up on the CPU, the summary unchanged


def test_cpu_switches_change_no_number(tmp_path):
    """Explicit GPU switches on the CPU train bit-identically to the defaults."""
    plain = image_trainer(image_ctx(tmp_path)).fit()
    asked = P.resolve(CPU, "paper", precision="bf16", tf32=True, channels_last=True, deterministic=False)
    switched = image_trainer(image_ctx(tmp_path), perf=asked).fit()
    for a, b in zip(plain.model.parameters(), switched.model.parameters(), strict=True):
        assert torch.equal(a, b)


# ---- warm-up -----------------------------------------------------------------------------------

class ClockProbe(Hook):
    def __init__(self) -> None:
        self.running: list[bool] = []

    def before_forward(self, state):
        self.running.append(state.ctx.clock.running)


def test_warmup_steps_train_as_usual_off_the_clock(tmp_path):
    cold_probe = ClockProbe()
    cold = image_trainer(image_ctx(tmp_path), hooks=(cold_probe,)).fit()
    warm_ctx = image_ctx(tmp_path)
    probe = ClockProbe()
    warm = image_trainer(warm_ctx, perf=P.Performance(warmup_steps=3), hooks=(probe,)).fit()
    steps = cold.step
    assert steps == warm.step > 3
    assert cold_probe.running == [True] * steps
    assert probe.running == [False] * 3 + [True] * (steps - 3)  # the first 3 steps of the process only
    for a, b in zip(cold.model.parameters(), warm.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the warm-up steps are training steps
    assert warm_ctx.extra["warmup_steps"] == 3.0 and warm_ctx.extra["warmup_time_s"] > 0


def test_warmup_time_carries_over_a_resume(tmp_path):
    class Crash(Hook):
        def epoch_start(self, state):
            if state.epoch == 1:
                raise KeyboardInterrupt

    ctx = image_ctx(tmp_path)
    trainer = image_trainer(ctx, perf=P.Performance(warmup_steps=2), hooks=(Crash(),))
    trainer.checkpoint_every = 1
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    first = ctx.extra["warmup_time_s"]
    resumed_ctx = image_ctx(tmp_path)
    probe = ClockProbe()
    resumed = image_trainer(resumed_ctx, perf=P.Performance(warmup_steps=2), hooks=(probe,))
    resumed.fit()
    assert probe.running[:3] == [False, False, True]  # a new process warms up again
    assert resumed_ctx.extra["warmup_time_s"] > first


# ---- no host sync inside the step ----------------------------------------------------------------

SYNCING = ("item", "tolist", "nonzero", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_syncs(monkeypatch):
    """Counts the Python-level calls that read a tensor back to the host (on CUDA each one waits
    for the device): Tensor.item/tolist/nonzero/cpu/numpy, bool()/float()/int() of a tensor, and
    torch.nonzero — except torch.optim's reads of its step counter (Adam's ``state["step"]`` is a
    host tensor unless ``capturable``: reading it never waits for the device)."""
    calls: list[str] = []
    optim = str(Path(torch.optim.__file__).parent)

    def counting(name, original):
        def wrapper(*args, **kwargs):
            # torch.optim reads its own step counter, a host tensor also on CUDA (no device sync)
            if not sys._getframe(1).f_code.co_filename.startswith(optim):
                calls.append(name)
            return original(*args, **kwargs)
        return wrapper

    for name in SYNCING:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "nonzero", counting("torch.nonzero", torch.nonzero))
    return calls


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_training_step_never_reads_back_to_the_host(tmp_path, host_syncs, optimizer):
    trainer = image_trainer(image_ctx(tmp_path), optimizer=optimizer)
    host_syncs.clear()
    loss = trainer._run_epoch()  # 6 steps: augmentation, forward, loss, backward, optimizer step
    assert trainer.state.step == 6
    assert host_syncs == [], f"host syncs inside the training steps: {sorted(set(host_syncs))}"
    assert loss.dim() == 0  # the epoch's loss stays on the device, read once by fit


def test_host_reads_are_per_epoch_not_per_step(tmp_path, host_syncs):
    counts = []
    for batch_size in (8, 32):  # 11 vs 3 steps an epoch
        trainer = image_trainer(image_ctx(tmp_path), batch_size=batch_size)
        host_syncs.clear()
        trainer.fit()
        counts.append(len(host_syncs))
    assert counts[0] == counts[1] > 0  # only the per-epoch reads (loss, evaluation)


def test_the_probe_sees_a_per_step_read(tmp_path, host_syncs):
    """The counter catches a hook that reads the loss every step (so the tests above can fail)."""
    class Reads(Hook):
        def after_forward(self, state):
            float(state.loss)

    trainer = image_trainer(image_ctx(tmp_path), hooks=(Reads(),))
    host_syncs.clear()
    trainer._run_epoch()
    assert host_syncs.count("__float__") == trainer.state.step == 6


# ---- the augmentation generator ------------------------------------------------------------------

def test_augmentation_draws_on_the_generators_device(monkeypatch):
    seen = []
    randint = torch.randint

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device"))
        return randint(*args, **kwargs)

    monkeypatch.setattr(torch, "randint", spy)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(5, 3, 8, 8)
    old = torch.Generator().manual_seed(0)  # the previous draws: CPU generator, no device argument
    offsets = randint(0, 9, (2, 5), generator=old)
    flips = torch.rand(5, generator=old) < 0.5
    out = random_crop_flip(x, g)
    assert seen == [g.device]
    # same numbers as before on the CPU
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(5):
        crop = padded[i, :, offsets[0, i]:offsets[0, i] + 8, offsets[1, i]:offsets[1, i] + 8]
        assert torch.equal(out[i], crop.flip(2) if flips[i] else crop)


def test_cpu_augments_from_the_run_generator_and_a_device_generator_is_checkpointed(tmp_path):
    ctx = image_ctx(tmp_path)
    assert ctx.device_generator is None and ctx.step_generator is ctx.generator
    # a device generator (a CPU one stands in for the CUDA one here) is saved and restored
    ctx.device_generator = torch.Generator().manual_seed(7)
    assert ctx.step_generator is ctx.device_generator
    torch.rand(3, generator=ctx.device_generator)
    state = ctx.state_dict()
    expected = torch.rand(4, generator=ctx.device_generator)
    other = dataclasses.replace(ctx, device_generator=torch.Generator().manual_seed(0))
    other.load_state_dict(state)
    assert torch.equal(torch.rand(4, generator=other.device_generator), expected)


# ---- CUDA -----------------------------------------------------------------------------------------

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@gpu
@needs_cuda
@pytest.mark.parametrize("scale,precision", [("smoke", "fp32"), ("paper", "fp32"), ("paper", "bf16")])
def test_cuda_step_has_no_host_sync(tmp_path, scale, precision):
    ctx = image_ctx(tmp_path, CUDA, scale=scale, n=256)
    perf = P.resolve(CUDA, scale, precision=precision, warmup_steps=0)
    trainer = image_trainer(ctx, perf=perf)
    trainer._run_epoch()  # lazy start-up (cuBLAS handles, cuDNN autotuning) outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = trainer._run_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item()
    assert ctx.performance == perf.record()
    if perf.channels_last:
        conv = trainer.state.model[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last)


@gpu
@needs_cuda
def test_cuda_fit_with_warmup_and_compile(tmp_path):
    ctx = image_ctx(tmp_path, CUDA, scale="paper", n=256)
    perf = P.resolve(CUDA, "paper", precision="bf16", compile=True, warmup_steps=3)
    state = image_trainer(ctx, perf=perf).fit()
    assert state.step > 3 and ctx.extra["warmup_time_s"] > 0 and ctx.history
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()


@gpu
@needs_cuda
def test_cuda_resume_augments_the_same(tmp_path):
    """The device generator and CUDA RNG are in checkpoints: a resumed run equals a straight one
    (deterministic mode)."""
    class Crash(Hook):
        def __init__(self, at=None):
            self.at = at

        def epoch_start(self, state):
            if state.epoch == self.at:
                raise KeyboardInterrupt

    perf = P.resolve(CUDA, "smoke", warmup_steps=0)
    straight_ctx = image_ctx(tmp_path, CUDA, checkpoint="a.pt")
    resumed_ctx = image_ctx(tmp_path, CUDA, checkpoint="b.pt")
    straight = image_trainer(straight_ctx, perf=perf, epochs=3).fit()
    first = image_trainer(image_ctx(tmp_path, CUDA, checkpoint="b.pt"), perf=perf, hooks=(Crash(at=2),), epochs=3)
    first.checkpoint_every = 1
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = image_trainer(resumed_ctx, perf=perf, epochs=3).fit()
    # the device generator was restored and drew the same (epoch orders and crops of epoch 3)
    assert torch.equal(straight_ctx.device_generator.get_state(), resumed_ctx.device_generator.get_state())
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        # (adaptive average pooling has no deterministic CUDA backward: equal up to float rounding)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_report_names_the_training_mode_only_off_the_cpu_defaults():
    from repro.report import _performance_lines

    cpu = {"performance": P.Performance().record()}
    assert _performance_lines([cpu, cpu, {}]) == []
    fast = {"performance": P.resolve(CUDA, "paper", precision="bf16").record()}
    line = _performance_lines([fast, fast])[-1]
    assert line.startswith("**Training mode:** bf16, fast (non-deterministic, cudnn.benchmark), tf32, channels_last")
    assert "5 warm-up steps off the clock" in line
    both = _performance_lines([fast, {"performance": P.resolve(CUDA, "smoke").record()}])[-1]
    assert "fp32, deterministic" in both and "bf16, fast" in both
