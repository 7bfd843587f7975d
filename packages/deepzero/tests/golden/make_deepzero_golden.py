"""Golden tensors from the official DeepZero code, for ``test_deepzero_golden.py``.

Runs small pieces of OPTML-Group/DeepZero (commit 5cf30b1, torch only; read-only, nothing copied)
on fixed inputs in float64 and stores their outputs in ``deepzero_golden.json``:

* ``rge``: ``algorithm.zoo.rge`` on a 6-5-3 MLP (q = 4), its directions recorded;
* ``cge``: ``algorithm.zoo.cge`` on the same MLP (every coordinate);
* ``zo_grasp``: ``algorithm.prune.importance_scores.zoo_grasp_importance_score`` and the layer
  ratios of ``global_prune(..., 'zo_grasp')`` + ``layer_sparsity`` on a conv + MLP net (q = 6,
  3 samples per class), directions recorded — the official function as it is (its accumulating
  queries included, see ``repro_deepzero.zo_grasp``);
* ``resnet20_cge``: ``models.distributed_model.DistributedCGEModel.calculate_grads`` on the
  official ResNet-20 (``models/resnet_s.py``), with and without feature reuse, at three coordinates
  of every parameter tensor, batch of 4 images.

``rge``/``cge`` get *copies* of the parameters: the official ``f()`` leaves the network at the
last query's weights (``state_dict()`` shares storage with the parameters, so its restore is a
no-op), and copies keep queries from accumulating — the semantics the paper states.

Weights and inputs come from :func:`hashed` (a sine hash, no RNG), which the test rebuilds.

Regenerate:
    git clone https://github.com/OPTML-Group/DeepZero /tmp/dzref && git -C /tmp/dzref checkout 5cf30b1
    uv run python packages/deepzero/tests/golden/make_deepzero_golden.py --ref /tmp/dzref
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).parent
MU = 5e-3


def hashed(shape: tuple[int, ...], seed: int, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """Deterministic float64 values offset + scale * h, h in [-1, 1) (sine hash of index and seed)."""
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(1, n + 1, dtype=np.float64)
    h = np.sin(i * 12.9898 + seed * 78.233) * 43758.5453
    h = 2.0 * (h - np.floor(h)) - 1.0
    return torch.from_numpy(offset + scale * h).reshape(shape)


def fill_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter from :func:`hashed`: conv/linear weights ~ Kaiming-uniform scale, BN
    weights around 1, biases and BN shifts small."""
    model.double()
    with torch.no_grad():
        for k, (name, p) in enumerate(model.named_parameters()):
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(hashed(tuple(p.shape), seed + k, math.sqrt(6.0 / fan_in)))
            elif "bn" in name and name.endswith("weight"):
                p.copy_(hashed(tuple(p.shape), seed + k, 0.2, 1.0))
            else:
                p.copy_(hashed(tuple(p.shape), seed + k, 0.1))
    return model


def tiny_mlp() -> nn.Sequential:
    return fill_(nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), seed=1)


def tiny_convnet() -> nn.Sequential:
    return fill_(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5), nn.ReLU(),
                               nn.Linear(5, 3)), seed=2)


def mlp_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return hashed((8, 6), 11), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def grasp_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """3 samples per class, 3 classes, grouped by class (what the official fetch_data returns)."""
    return hashed((9, 1, 4, 4), 12), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])


def resnet_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return hashed((4, 3, 32, 32), 13), torch.tensor([3, 1, 4, 1])


def resnet_coordinates(named_shapes: list[tuple[str, tuple[int, ...]]]) -> list[tuple[int, int]]:
    """(tensor id, flat index): the first, middle and last coordinate of every parameter tensor."""
    out = []
    for t, (_, shape) in enumerate(named_shapes):
        n = int(np.prod(shape))
        for i in sorted({0, n // 2, n - 1}):
            out.append((t, i))
    return out


class _Recorder:
    """Wraps torch.randn_like to record every direction the official rge() draws."""

    def __init__(self) -> None:
        self.draws: list[torch.Tensor] = []
        self._orig = torch.randn_like

    def __enter__(self):
        def rec(t, *a, **k):
            v = self._orig(t, *a, **k)
            self.draws.append(v.clone())
            return v
        torch.randn_like = rec
        return self

    def __exit__(self, *exc):
        torch.randn_like = self._orig


class _RRef:
    def __init__(self, value):
        self.value = value

    def to_here(self):
        return self.value


def _tensors(d: dict[str, torch.Tensor]) -> dict[str, list]:
    return {k: v.detach().double().flatten().tolist() for k, v in d.items()}


def _directions(draws: list[torch.Tensor], names: list[str], q: int) -> dict[str, list]:
    """Recorded raw draws (sample-major, tensor-minor) -> name -> (q, n) unnormalised lists."""
    out = {n: [] for n in names}
    for j in range(q):
        for t, n in enumerate(names):
            out[n].append(draws[j * len(names) + t].flatten().tolist())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="checkout of OPTML-Group/DeepZero")
    ap.add_argument("--out", default=str(HERE / "deepzero_golden.json"))
    args = ap.parse_args()
    sys.path.insert(0, args.ref)
    from algorithm.prune import global_prune, layer_sparsity  # noqa: E402  (official code)
    from algorithm.prune.importance_scores import zoo_grasp_importance_score  # noqa: E402
    from algorithm.zoo import cge, f, rge  # noqa: E402
    from models.distributed_model import DistributedCGEModel  # noqa: E402
    from models.resnet_s import param_name_to_module_id_rn20, resnet20  # noqa: E402
    from functools import partial

    # float64 everywhere, also for the official code's own buffers (calculate_grads stores the
    # losses in torch.zeros(...), which would otherwise round them to float32)
    torch.set_default_dtype(torch.float64)
    loss = nn.functional.cross_entropy
    doc: dict = {"source": "OPTML-Group/DeepZero@5cf30b1", "mu": MU}

    # -- rge / cge on the MLP (parameter copies: no accumulation) --
    net = tiny_mlp()
    x, y = mlp_batch()
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    func = partial(f, network=net, x=x, y=y, loss_func=loss)
    torch.manual_seed(7)
    with _Recorder() as rec:
        g = rge(func, params, 4, MU)
    doc["rge"] = {"q": 4, "grads": _tensors(g), "directions": _directions(rec.draws, list(params), 4)}
    net = tiny_mlp()
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    func = partial(f, network=net, x=x, y=y, loss_func=loss)
    doc["cge"] = {"grads": _tensors(cge(func, params, {}, MU))}

    # -- ZO-GraSP, the official function as it is --
    xg, yg = grasp_batch()
    # fetch_data stops once it sees a sample of a class it has filled: one extra sample per class
    extra_x, extra_y = hashed((3, 1, 4, 4), 14), torch.tensor([0, 1, 2])
    dataset = torch.utils.data.TensorDataset(torch.cat([xg, extra_x]), torch.cat([yg, extra_y]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=12, shuffle=False)
    net = tiny_convnet()
    names = [f"{n}.weight" for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    torch.manual_seed(5)
    with _Recorder() as rec:
        scores = zoo_grasp_importance_score(net, loader, 3, 3, 6, MU)
    by_name = {f"{n}.weight": s for n, m in net.named_modules() for (mm, _), s in scores.items() if mm is m}
    draws = rec.draws
    u0 = _directions(draws[:6 * len(names)], names, 6)
    u1 = _directions(draws[6 * len(names):], names, 6)
    net = tiny_convnet()
    torch.manual_seed(5)
    global_prune(net, 0.5, "zo_grasp", 3, loader, sample_per_classes=3, zoo_sample_size=6, zoo_step_size=MU)
    ratios = {f"{k}.weight": v for k, v in layer_sparsity(net).items()}
    doc["zo_grasp"] = {"q": 6, "sparsity": 0.5, "scores": _tensors(by_name), "directions": [u0, u1],
                       "layer_sparsity": ratios}

    # -- distributed CGE on ResNet-20, with and without feature reuse --
    xr, yr = resnet_batch()
    cases = {}
    for reuse in (True, False):
        dcm = DistributedCGEModel("cpu", resnet20, loss, param_name_to_module_id_rn20, None, False, reuse)
        fill_(dcm.network, seed=100)
        named = [(n, tuple(p.shape)) for n, p in dcm.network.named_parameters()]
        coords = resnet_coordinates(named)
        dcm.set_params_to_be_perturbed(_RRef(torch.tensor(coords, dtype=torch.float64)), [n for n, _ in named])
        out = dcm.calculate_grads(_RRef(xr), _RRef(yr), MU)
        cases["reuse" if reuse else "naive"] = out[:, 2].tolist()
    doc["resnet20_cge"] = {"names": [n for n, _ in named], "coordinates": coords, **cases}
    Path(args.out).write_text(json.dumps(doc) + "\n")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
