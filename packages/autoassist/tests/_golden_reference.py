"""Golden values for ``test_reference_golden.py``: a straightforward NumPy (float64) re-implementation
of the reference code's formulas, written from reading ``zhangjiong724/autoassist-exp`` (commit
9007a14, directory ``image_classification/``), independent of this package's torch code:

* ``reference_train_step`` — ``assistant.py``, ``AssistantModelBinary.train_step`` (method "mean"):
  ``lr = self.lr / Y.shape[0]`` (the learning rate divided by the batch size),
  ``label = 1[loss > mean]``, ``prob = sigmoid(X·W + U[Y])`` (parameters before the update),
  ``grad = prob − label``; then a Python loop ``for i in range(batch_size):
  U[Y[i]] −= lr·(grad[i] + lam·U[Y[i]])`` (sequential: it sees the U already updated for earlier
  i), then ``W −= lr·(grad·X + lam·W)``. Defaults ``self.lr = 0.01``, ``self.lam = 1e-3``.
* ``reference_loss_mean`` — ``train_autoassist.py``, ``main()``'s Boss loop: with α = 0.75,
  ``total_instances ← α·total_instances + (1 − α)·B``, ``loss_sum ← α·loss_sum + (1 − α)·Σℓ``,
  ``loss_mean = loss_sum / total_instances`` (both start at 0; updated with the current batch
  *before* it is reported to the Assistant).
* ``reference_accept`` — ``assistant.py``, ``AssistantSampler.__iter__``: ``coin ~ U(0, 1)``; if
  ``coin < base_prob`` the index is yielded, else ``coin ← (coin − b)/(1 − b)`` and the index is
  yielded if ``coin < sigmoid(W·x + U[y])`` (``get_importance``). P(yield) = b + (1 − b)·p.
* ``reference_batches`` — ``train_autoassist.py``, ``BQ_feeder``: ``DataLoader(train_data,
  batch_size=B, sampler=AssistantSampler)``. The sampler is an endless generator, so the loader's
  batch sampler cuts the stream of *yielded* indices into consecutive groups of exactly B; no
  group is flushed early at the end of a pass over the data (the sampler's index just wraps
  around). Every Boss step (``main()``: ``boss_queue.get``) trains on one such group.

Regenerate ``golden_reference.json`` (next to this file) with::

    uv run --frozen python packages/autoassist/tests/_golden_reference.py --write

Inputs are drawn from ``numpy.random.default_rng(20190503)`` and rounded to float32 so the float32
torch code and this float64 code see identical inputs. The test also re-runs ``build()`` and checks
that it reproduces the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("golden_reference.json")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def reference_loss_mean(total: float, loss_sum: float, losses: np.ndarray, alpha: float) -> tuple[float, float, float]:
    total = alpha * total + (1.0 - alpha) * len(losses)
    loss_sum = alpha * loss_sum + (1.0 - alpha) * float(losses.sum())
    return total, loss_sum, loss_sum / total


def reference_train_step(W: np.ndarray, U: np.ndarray, X: np.ndarray, Y: np.ndarray, loss: np.ndarray, mean: float,
                         lr: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    W, U = W.astype(np.float64).copy(), U.astype(np.float64).copy()
    batch = len(Y)
    step = lr / batch
    label = (loss > mean).astype(np.float64)
    prob = sigmoid(X @ W + U[Y])
    grad = prob - label
    for i in range(batch):
        U[Y[i]] -= step * (grad[i] + lam * U[Y[i]])
    W -= step * (grad @ X + lam * W)
    return W, U


def reference_accept(coin: float, p: float, base_prob: float) -> bool:
    if coin < base_prob:
        return True
    return (coin - base_prob) / (1.0 - base_prob) < p


def reference_batches(accepted_stream: list[int], batch: int) -> list[list[int]]:
    """Consecutive groups of exactly *batch* accepted indices (a trailing partial group is not a batch)."""
    full = len(accepted_stream) // batch
    return [accepted_stream[k * batch:(k + 1) * batch] for k in range(full)]


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64)


def _learning_case(rng: np.random.Generator, name: str, dim: int, classes: int, batch: int, steps: int, lr: float,
                   lam: float, alpha: float) -> dict:
    W0 = _f32(0.001 * rng.standard_normal(dim) * 100)  # larger than the reference's 0.001 init: visible steps
    U0 = _f32(0.1 * rng.standard_normal(classes))
    W, U = W0.copy(), U0.copy()
    total = loss_sum = 0.0
    xs, ys, ls, means, ws, us, probs = [], [], [], [], [], [], []
    for _ in range(steps):
        X = _f32(rng.uniform(0.0, 1.0, (batch, dim)))
        Y = rng.integers(0, classes, batch)
        L = _f32(rng.exponential(1.0, batch))
        total, loss_sum, mean = reference_loss_mean(total, loss_sum, L, alpha)
        probs.append(sigmoid(X @ W + U[Y]).tolist())
        W, U = reference_train_step(W, U, X, Y, L, mean, lr, lam)
        xs.append(X.tolist()), ys.append(Y.tolist()), ls.append(L.tolist()), means.append(mean)
        ws.append(W.tolist()), us.append(U.tolist())
    return {"name": name, "dim": dim, "classes": classes, "batch": batch, "lr": lr, "l2": lam, "alpha": alpha,
            "w0": W0.tolist(), "u0": U0.tolist(), "x": xs, "y": ys, "losses": ls,
            "expected": {"loss_mean": means, "prob_before": probs, "w": ws, "u": us}}


def _stream_case(rng: np.random.Generator, W: np.ndarray, U: np.ndarray, n_per_epoch: int, batch: int, epochs: int,
                 base_prob: float) -> dict:
    dim, classes = len(W), len(U)
    X = _f32(rng.uniform(0.0, 1.0, (n_per_epoch, dim)))
    Y = rng.integers(0, classes, n_per_epoch)
    # the Trainer's candidate batches: each epoch visits a fixed permutation in slices of `batch`
    order = [int(i) for _ in range(epochs) for i in rng.permutation(n_per_epoch)]
    cand_sizes = [min(batch, n_per_epoch - s) for _ in range(epochs) for s in range(0, n_per_epoch, batch)]
    coins = _f32(rng.uniform(0.0, 1.0, len(order)))
    p = sigmoid(X @ W + U[Y])
    stream_pos = 0
    accepted, thin_sizes, fill_sizes, fill_batches = [], [], [], []
    emitted = 0
    for size in cand_sizes:
        kept = [stream_pos + j for j in range(size)
                if reference_accept(float(coins[stream_pos + j]), float(p[order[stream_pos + j]]), base_prob)]
        stream_pos += size
        accepted += kept
        thin_sizes.append(len(kept))
        groups = reference_batches(accepted, batch)
        new = groups[emitted:]  # at most one: a candidate batch adds at most `batch` instances
        assert len(new) <= 1
        fill_sizes.append(len(new[0]) if new else 0)
        fill_batches += new
        emitted = len(groups)
    return {"n_per_epoch": n_per_epoch, "batch": batch, "epochs": epochs, "base_prob": base_prob,
            "w": W.tolist(), "u": U.tolist(), "x": X.tolist(), "y": Y.tolist(), "order": order,
            "candidate_sizes": cand_sizes, "coins": coins.tolist(),
            "expected": {"keep_prob": p.tolist(), "accept_prob": (base_prob + (1 - base_prob) * p).tolist(),
                         "accepted_positions": accepted, "thin_sizes": thin_sizes, "fill_sizes": fill_sizes,
                         "fill_batches_positions": fill_batches,
                         "fill_leftover": len(accepted) - batch * len(fill_batches)}}


def build() -> dict:
    rng = np.random.default_rng(20190503)
    cases = [
        # the reference's defaults (lr 0.01, lam 1e-3, alpha 0.75): the step is lr / B
        _learning_case(rng, "reference_defaults", dim=6, classes=3, batch=5, steps=4, lr=0.01, lam=1e-3, alpha=0.75),
        # exaggerated lr and lam so that the sequential per-instance update of U is visible
        _learning_case(rng, "large_step", dim=6, classes=3, batch=8, steps=3, lr=2.0, lam=0.5, alpha=0.75),
    ]
    W = _f32(0.5 * rng.standard_normal(6))
    U = _f32(0.5 * rng.standard_normal(3))
    stream = _stream_case(rng, W, U, n_per_epoch=13, batch=5, epochs=3, base_prob=0.3)
    return {"source": "zhangjiong724/autoassist-exp@9007a14 image_classification/{assistant.py,train_autoassist.py}",
            "generator": "packages/autoassist/tests/_golden_reference.py", "learning": cases, "stream": stream}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {GOLDEN.name}")
    args = ap.parse_args()
    data = build()
    text = json.dumps(data, indent=1) + "\n"
    if args.write:
        GOLDEN.write_text(text)
        print(f"wrote {GOLDEN} ({len(text)} bytes)")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
