"""Weight Update Skipping: the pure pieces (which parameters freeze, the trigger). The thin
``Hook`` that plugs them into the core's Trainer is in ``methods.py``.

Why freezing saves time: for a conv/linear layer y = W x + b, backward computes dX = dY Wᵀ
(needed by earlier layers), dW = dYᵀ X (a GEMM as large as the forward one) and db = Σ dY
(a cheap reduction). With ``W.requires_grad = False`` autograd never computes dW, and the
optimizer skips W because its ``.grad`` stays ``None`` (``zero_grad(set_to_none=True)``), so
neither momentum nor weight decay moves it. Biases — and batch-norm scale/shift, which are
per-channel "biases" too — keep training; batch-norm running statistics keep updating.

One CPU detail matters: oneDNN's convolution backward computes the weight and bias gradients
in one call, so a conv whose bias still trains would compute dW anyway (measured: no saving
for VGG/AlexNet on CPU until this was handled). Inside a window a conv with a bias therefore
runs as ``conv(x, W, bias=None) + b`` (same function, the bias added separately), so its bias
gradient is a plain sum of dY and dW is never computed on any backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from repro_wus.configuration_wus import WUSConfig

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``weight`` tensors of every conv/linear layer: what a skip window freezes."""
    return [m.weight for m in model.modules() if isinstance(m, WEIGHT_LAYERS) and m.weight is not None]


CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _conv_then_bias(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``self``'s convolution without its bias, then the bias broadcast over the spatial dims."""
    y = self._conv_forward(x, self.weight, None)
    return y + self.bias.view(1, -1, *([1] * (y.dim() - 2)))


def set_weight_updates(model: nn.Module, enabled: bool) -> None:
    """Turn gradient computation (hence updates) of conv/linear weights on or off; biases untouched.

    Disabling also makes biased convs add their bias separately (see the module docstring);
    enabling restores the layers' own forward. Parameters and ``state_dict`` never change.
    """
    for m in model.modules():
        if isinstance(m, WEIGHT_LAYERS) and m.weight is not None:
            m.weight.requires_grad_(enabled)
        if isinstance(m, CONV_LAYERS) and m.bias is not None:
            if enabled:
                m.__dict__.pop("forward", None)
            else:
                m.forward = _conv_then_bias.__get__(m)


@dataclass
class TriggerState:
    """What the trigger remembers between epochs (saved in checkpoints)."""

    previous: float | None = None  # monitored value after the last full-training epoch
    calm: int = 0  # consecutive calm epochs
    skip_left: int = 0  # epochs left in the current skip window
    windows: int = 0  # windows opened so far
    skipped_epochs: int = 0  # epochs trained inside windows


def trigger_step(st: TriggerState, value: float | None, epoch: int, skipped: bool, cfg: WUSConfig) -> TriggerState:
    """Advance the trigger after epoch *epoch* (1-based count of completed epochs).

    *skipped*: this epoch ran inside a skip window. *value*: the monitored metric after it
    (None: not evaluated this epoch, which counts as neither calm nor restless).

    Rules (ours; see README "Choices"): inside a window, count it down; when it closes, the
    reference value resets, so a new window needs ``patience`` fresh calm epochs of full
    training. Outside a window, an epoch is calm if |value − previous| < threshold and at least
    ``warmup`` epochs have passed; ``patience`` consecutive calm epochs open a window of
    ``window`` epochs.
    """
    st = TriggerState(**asdict(st))
    if skipped:
        st.skip_left -= 1
        st.skipped_epochs += 1
        if st.skip_left == 0:
            st.previous, st.calm = value, 0
        return st
    if value is None or not cfg.skip:
        return st
    if st.previous is not None and abs(value - st.previous) < cfg.threshold and epoch >= cfg.warmup:
        st.calm += 1
    else:
        st.calm = 0
    st.previous = value
    if st.calm >= cfg.patience:
        st.skip_left, st.calm = cfg.window, 0
        st.windows += 1
    return st


def skip_schedule(values: list[float], cfg: WUSConfig) -> list[bool]:
    """Which epochs (0-based) would skip, given the monitored value after each epoch.

    A pure replay of the trigger, for tests and plots: ``values[i]`` is the value after epoch i.
    """
    st, out = TriggerState(), []
    for i, v in enumerate(values):
        skipped = st.skip_left > 0
        out.append(skipped)
        st = trigger_step(st, v, i + 1, skipped, cfg)
    return out
