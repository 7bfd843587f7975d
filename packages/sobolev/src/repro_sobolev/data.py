"""Datasets and workloads of the regression experiment: the seven SFU functions, training sets of
20 and 100 points, a dense test grid, values *and* input gradients.

Layout (``repro_sobolev.sobolev`` reads it): rows x (N, F, 2) hold one point per test function
(F functions, each in its own domain coordinates), targets y (N, P, 3) the value and the two input
derivatives of each of P *problems*: problem (function f, size n) = fit f from its first n
training points. Problems of one function share their inputs: the 20-point training set is the first 20 points of the 100-point one
(nested, as when a data set grows), and the target of a problem is NaN ("not observed") on the
training rows beyond its size. Validation rows (the workload's split, 25 more uniform points per
function) and the test grid (G x G over the domain, default 100 x 100 = 10,000 points) are
observed by every problem.

The training rows are drawn uniformly from each function's domain with the dataset's seed; the
validation rows are the rows ``Workload.split`` holds out (the builder asks it, so a problem has
exactly n training points after the split; the method hook checks it). Everything is
deterministic from the seed. Values and derivatives are computed in float64 and stored in
float32, standardised as ``repro_sobolev.functions`` explains (values / σ_f, derivatives
w.r.t. the domain coordinates / σ_f).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repro.datasets import DatasetSpec, TensorData
from repro.errors import ReproError
from repro.workloads import Workload

from repro_sobolev.functions import FUNCTION_NAMES, get_function, grid, scaling, standardised

SIZES = (20, 100)  # training points per problem (the paper's two settings)
VAL_POINTS = 25  # validation points per function (ours; the split the workload holds out)
SPLIT_SEED = 0
SCALING_GRID = 100  # μ_f, σ_f over this G x G grid of the domain (a constant of each function)


def problem_names(functions: tuple[str, ...], sizes: tuple[int, ...]) -> list[str]:
    """Problem p's name, ``<function>_<size>``, in the order of the model's outputs (size-major)."""
    return [f"{f}_{n}" for n in sizes for f in functions]


def problem_columns(functions: tuple[str, ...], sizes: tuple[int, ...]) -> list[int]:
    """The input column (function index) each problem reads."""
    return [i for _ in sizes for i in range(len(functions))]


def val_fraction(sizes: tuple[int, ...] = SIZES, val_points: int = VAL_POINTS) -> float:
    return val_points / (max(sizes) + val_points)


def held_out_rows(n_rows: int, fraction: float, split_seed: int) -> torch.Tensor:
    """The row indices ``Workload.split`` holds out as validation from *n_rows* training rows (the
    core's own split, applied to row numbers)."""
    probe = Workload(name="_rows", dataset="_rows", model="_", model_kwargs={}, loss="mse", metrics=("test_mse",),
                     target=0.0, val_fraction=fraction, split_seed=split_seed)
    rows = torch.arange(n_rows, dtype=torch.float64).unsqueeze(1)
    empty = torch.zeros(0, 1)
    split = probe.split(TensorData("_rows", "regression", rows, rows, empty, empty))
    return split.x_val[:, 0].long()


def build_suite(functions: tuple[str, ...], sizes: tuple[int, ...], params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The four split tensors of a suite (see the module docstring). *params*: seed, grid."""
    seed, side = int(params["seed"]), int(params["grid"])
    if side < 2:
        raise ReproError(f"sobolev dataset: grid must be >= 2 points per side, got {side}")
    fns = [get_function(f) for f in functions]
    n_rows = max(sizes) + VAL_POINTS
    val_rows = held_out_rows(n_rows, val_fraction(sizes), SPLIT_SEED)
    is_train = torch.ones(n_rows, dtype=torch.bool)
    is_train[val_rows] = False
    train_rank = torch.cumsum(is_train.long(), 0) - 1  # position among the training rows
    g = torch.Generator().manual_seed(seed)
    u_train = 2 * torch.rand(n_rows, len(fns), 2, generator=g, dtype=torch.float64) - 1
    u_test = grid(side).unsqueeze(1).expand(side * side, len(fns), 2)
    x_train, x_test = torch.empty_like(u_train), torch.empty(side * side, len(fns), 2, dtype=torch.float64)
    y_train = torch.empty(n_rows, len(sizes) * len(fns), 3, dtype=torch.float64)
    y_test = torch.empty(side * side, len(sizes) * len(fns), 3, dtype=torch.float64)
    for j, fn in enumerate(fns):
        scale = scaling(fn, SCALING_GRID)
        x_train[:, j], x_test[:, j] = fn.to_domain(u_train[:, j]), fn.to_domain(u_test[:, j])
        v_tr, g_tr = standardised(fn, x_train[:, j], scale)
        v_te, g_te = standardised(fn, x_test[:, j], scale)
        for s, n in enumerate(sizes):
            p = s * len(fns) + j
            y_train[:, p, 0], y_train[:, p, 1:] = v_tr, g_tr
            y_test[:, p, 0], y_test[:, p, 1:] = v_te, g_te
            unobserved = is_train & (train_rank >= n)
            y_train[unobserved, p] = float("nan")
    return {"x_train": x_train.float(), "y_train": y_train.float(), "x_test": x_test.float(), "y_test": y_test.float()}


def suite_builder(functions: tuple[str, ...], sizes: tuple[int, ...] = SIZES):
    def build(params: dict[str, Any], raw_dir: Path) -> dict[str, torch.Tensor]:
        return build_suite(functions, sizes, params)

    return build


DEFAULTS = {"seed": 0, "grid": 100}

SUITE = "sobolev_suite"
DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(SUITE, "generated", "regression", suite_builder(FUNCTION_NAMES),
                "the seven SFU test functions (Ackley, Beale, Booth, Bukin N.6, McCormick, Rosenbrock, "
                "Styblinski–Tang) on their SFU domains, values standardised: 20- and 100-point training sets, "
                "25 validation points, a 100x100 test grid; values and input gradients", defaults=dict(DEFAULTS)),
    *(DatasetSpec(f"sobolev_{f}", "generated", "regression", suite_builder((f,)),
                  f"{get_function(f).title} on its SFU domain, values standardised: 20- and 100-point training "
                  f"sets, 25 validation points, a 100x100 test grid; values and input gradients",
                  defaults=dict(DEFAULTS))
      for f in FUNCTION_NAMES),
)


def _workload(name: str, dataset: str, functions: tuple[str, ...], hidden: tuple[int, ...], epochs: int,
              description: str) -> Workload:
    return Workload(
        name=name, dataset=dataset, model="sobolev_net",
        model_kwargs={"columns": problem_columns(functions, SIZES), "hidden": list(hidden),
                      "domains": [[list(b) for b in get_function(f).domain] for f in functions],
                      "activation": ACTIVATION},
        # The core scores the whole (N, P, 3) prediction: the mean squared error of values and
        # derivatives together (a Sobolev error). The per-problem value and gradient errors the
        # claims read are added by the methods' hook (``repro_sobolev.methods``).
        loss="mse", metrics=("test_mse",), target=0.05, batch_size=max(SIZES), max_epochs=epochs,
        val_fraction=val_fraction(), split_seed=SPLIT_SEED, description=description,
        tags={"functions": ",".join(functions), "sizes": ",".join(map(str, SIZES))},
    )


ACTIVATION = "relu"
HIDDEN_SMOKE = (64, 64)
HIDDEN_PAPER = (256, 256)

WORKLOADS: tuple[Workload, ...] = (
    _workload("sobolev_suite", SUITE, FUNCTION_NAMES, HIDDEN_SMOKE, 1000,
              "7 SFU functions x {20, 100} training points, one 2-64-64-1 ReLU MLP per problem, full batch"),
    _workload("sobolev_suite_256", SUITE, FUNCTION_NAMES, HIDDEN_PAPER, 20000,
              "7 SFU functions x {20, 100} training points, one 2-256-256-1 ReLU MLP per problem, full batch"),
    *(_workload(f"sobolev_{f}", f"sobolev_{f}", (f,), HIDDEN_PAPER, 20000,
                f"{get_function(f).title} x {{20, 100}} training points, 2-256-256-1 ReLU MLPs, full batch")
      for f in FUNCTION_NAMES),
)


def suite_problems(workload: Workload) -> list[str]:
    """The problem names of one of this package's workloads (from its tags)."""
    functions = tuple(workload.tags["functions"].split(","))
    sizes = tuple(int(s) for s in workload.tags["sizes"].split(","))
    return problem_names(functions, sizes)


def suite_sizes(workload: Workload) -> dict[str, int]:
    """Problem name -> its number of training points."""
    functions = tuple(workload.tags["functions"].split(","))
    sizes = tuple(int(s) for s in workload.tags["sizes"].split(","))
    return {f"{f}_{n}": n for n in sizes for f in functions}


def has_input_gradients(data_or_workload: Any) -> bool:
    """Whether a workload is one of ours (targets with input derivatives)."""
    tags = getattr(data_or_workload, "tags", {}) or {}
    return "functions" in tags and "sizes" in tags

