"""The suite datasets and workloads: layout, determinism, nested training sets, exact counts after
the workload's split, targets equal to the functions'."""

from __future__ import annotations

import pytest
import torch

from repro import catalog
from repro.datasets import TensorData
from repro.errors import ReproError

from repro_sobolev.data import (DATASETS, SCALING_GRID, SIZES, VAL_POINTS, WORKLOADS, build_suite, has_input_gradients,
                                problem_columns, problem_names, suite_problems, suite_sizes)
from repro_sobolev.functions import FUNCTION_NAMES, get_function, scaling, standardised
from repro_sobolev.sobolev import observed

PARAMS = {"seed": 0, "grid": 12}


@pytest.fixture(scope="module")
def suite():
    return build_suite(FUNCTION_NAMES, SIZES, PARAMS)


def _as_data(t: dict) -> TensorData:
    return TensorData("sobolev_suite", "regression", t["x_train"], t["y_train"], t["x_test"], t["y_test"])


def test_layout(suite):
    n_rows, f, p = max(SIZES) + VAL_POINTS, len(FUNCTION_NAMES), len(FUNCTION_NAMES) * len(SIZES)
    assert suite["x_train"].shape == (n_rows, f, 2) and suite["y_train"].shape == (n_rows, p, 3)
    assert suite["x_test"].shape == (12 * 12, f, 2) and suite["y_test"].shape == (144, p, 3)
    assert all(v.dtype == torch.float32 for v in suite.values())
    assert problem_names(FUNCTION_NAMES, SIZES)[0] == "ackley_20" and problem_columns(FUNCTION_NAMES, SIZES)[7] == 0


def test_deterministic_from_the_seed(suite):
    again = build_suite(FUNCTION_NAMES, SIZES, PARAMS)
    assert all(torch.equal(torch.nan_to_num(suite[k]), torch.nan_to_num(again[k])) for k in suite)
    other = build_suite(FUNCTION_NAMES, SIZES, {**PARAMS, "seed": 1})
    assert not torch.equal(other["x_train"], suite["x_train"])
    assert torch.equal(other["x_test"], suite["x_test"])  # the grid does not depend on the seed


def test_points_lie_in_each_domain(suite):
    for j, name in enumerate(FUNCTION_NAMES):
        for i, (lo, hi) in enumerate(get_function(name).domain):
            for split in ("x_train", "x_test"):
                col = suite[split][:, j, i]
                assert float(col.min()) >= lo - 1e-5 and float(col.max()) <= hi + 1e-5


def test_after_the_workloads_split_each_problem_has_exactly_its_points(suite):
    wl = WORKLOADS[0]
    data = wl.split(_as_data(suite))
    names, sizes = suite_problems(wl), suite_sizes(wl)
    counts = observed(data.y_train).sum(dim=0).tolist()
    assert {n: int(c) for n, c in zip(names, counts)} == sizes
    assert len(data.x_val) == VAL_POINTS and bool(observed(data.y_val).all()) and bool(observed(data.y_test).all())
    # nested: the 20-point set is the first 20 training points of the 100-point one, same inputs
    small, large = names.index("beale_20"), names.index("beale_100")
    seen = observed(data.y_train)
    assert torch.equal(seen[:20, small], torch.ones(20)) and float(seen[20:, small].sum()) == 0
    assert torch.equal(data.y_train[:20, small], data.y_train[:20, large])


def test_targets_are_the_standardised_function(suite):
    for j, name in enumerate(FUNCTION_NAMES):
        fn = get_function(name)
        value, grad = standardised(fn, suite["x_test"][:, j].double(), scaling(fn, SCALING_GRID))
        for p in (j, j + len(FUNCTION_NAMES)):  # both sizes share the grid
            assert torch.allclose(suite["y_test"][:, p, 0], value.float(), rtol=1e-4, atol=1e-4)
            assert torch.allclose(suite["y_test"][:, p, 1:], grad.float(), rtol=1e-4, atol=1e-4)


def test_registered_datasets_and_workloads_resolve():
    names = {d.name for d in DATASETS}
    assert {"sobolev_suite", *(f"sobolev_{f}" for f in FUNCTION_NAMES)} <= names
    for wl in WORKLOADS:
        assert catalog.get_workload(wl.name) is not None and catalog.get_dataset(wl.dataset).name == wl.dataset
        assert has_input_gradients(wl)
        assert len(wl.model_kwargs["columns"]) == len(suite_problems(wl))
    assert not has_input_gradients(catalog.get_workload("digits_mlp"))
    assert not has_input_gradients(catalog.get_workload("sine"))


def test_bad_grid_is_refused():
    with pytest.raises(ReproError, match="grid"):
        build_suite(("booth",), SIZES, {"seed": 0, "grid": 1})
