"""Workloads: the validation split (stratified, disjoint, seed-independent), scoring per split,
and the checks a workload passes when it is registered."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from repro.datasets import TensorData
from repro.errors import ReproError
from repro.workloads import Workload, get_workload, register_workload


def numbered(n: int, task: str, labels: torch.Tensor | None = None) -> TensorData:
    """Training samples whose single feature is their index, so the split can be traced."""
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    y = labels if labels is not None else torch.randn(n, 1)
    return TensorData(name="t", task=task, x_train=x, y_train=y, x_test=x[:5] + 1000, y_test=y[:5],
                      num_classes=int(y.max()) + 1 if task == "classification" else 0)


def ids(t: torch.Tensor) -> set[int]:
    return {int(v) for v in t.flatten().tolist()}


def classification_workload(**kw) -> Workload:
    return dataclasses.replace(get_workload("digits_mlp"), **kw)


# Imbalanced classes: 50, 30, 20 samples in a shuffled order.
LABELS = torch.cat([torch.zeros(50), torch.ones(30), torch.full((20,), 2.0)]).long()[torch.randperm(
    100, generator=torch.Generator().manual_seed(7))]


def test_classification_split_is_stratified_and_disjoint():
    data = numbered(100, "classification", LABELS)
    split = classification_workload(val_fraction=0.2).split(data)
    val, train = ids(split.x_val), ids(split.x_train)
    assert val.isdisjoint(train) and val | train == set(range(100))  # disjoint, nothing lost
    assert torch.bincount(split.y_val, minlength=3).tolist() == [10, 6, 4]  # 20% of each class
    assert torch.bincount(split.y_train, minlength=3).tolist() == [40, 24, 16]
    for x, y in ((split.x_val, split.y_val), (split.x_train, split.y_train)):  # labels travel with samples
        assert torch.equal(LABELS[x.flatten().long()], y)
    assert torch.equal(split.x_test, data.x_test)  # the test split is untouched


def test_regression_split_is_random_and_sized():
    data = numbered(200, "regression")
    split = get_workload("sine").split(data)  # val_fraction 0.1 by default
    val, train = ids(split.x_val), ids(split.x_train)
    assert len(val) == 20 and len(train) == 180 and val.isdisjoint(train)
    assert val != set(range(20))  # not simply the first samples
    assert torch.equal(data.y_train[split.x_val.flatten().long()], split.y_val)


def test_split_does_not_depend_on_the_trial_seed():
    data = numbered(100, "classification", LABELS)
    wl = classification_workload()
    torch.manual_seed(0)
    a = wl.split(data)
    torch.manual_seed(12345)
    torch.rand(10)
    b = wl.split(data)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    c = dataclasses.replace(wl, split_seed=1).split(data)  # the workload's own seed moves it
    assert not torch.equal(a.x_val, c.x_val)


def test_split_of_real_digits(project):
    from repro.datasets import DATASETS, load_prepared, prepare

    prepare(DATASETS.get("digits"))
    data = load_prepared("digits")
    split = get_workload("digits_mlp").split(data)
    counts, val_counts = torch.bincount(data.y_train, minlength=10), torch.bincount(split.y_val, minlength=10)
    assert (val_counts - 0.1 * counts).abs().max() <= 0.5  # every class is held out in proportion
    assert len(split.x_val) + len(split.x_train) == len(data.x_train)


def test_too_small_a_split_is_refused():
    tiny = numbered(3, "classification", torch.tensor([0, 1, 2]))
    with pytest.raises(ReproError, match=r"val_fraction 0.1 leaves an empty split of the 3 training samples"):
        classification_workload().split(tiny)


@pytest.mark.parametrize("fraction", [0.0, 0.51, -0.1])
def test_val_fraction_out_of_range_is_refused(fraction):
    bad = dataclasses.replace(get_workload("sine"), name="bad_fraction", val_fraction=fraction)
    with pytest.raises(ReproError, match=r"'bad_fraction': val_fraction must be in \(0, 0.5\]"):
        register_workload(bad)


def test_metric_names_and_evaluate_per_split():
    wl = get_workload("sine")
    assert wl.quality_metric == "test_rmse" and wl.target_metric == "val_rmse"
    assert wl.metric_names == ("rmse", "r2") and not wl.higher_is_better
    assert wl.reached(0.1) and not wl.reached(0.11)
    data = wl.split(numbered(50, "regression"))
    zero = lambda x: torch.zeros(len(x), 1)  # noqa: E731
    assert set(wl.evaluate(zero, data, "val")) == {"val_rmse", "val_r2"}
    test = wl.evaluate(zero, data)  # the test split by default
    assert set(test) == {"test_rmse", "test_r2"}
    assert test["test_rmse"] == pytest.approx(float(data.y_test.pow(2).mean().sqrt()))
    unsplit = numbered(50, "regression")
    with pytest.raises(ReproError, match="has no validation split; use workload.split"):
        wl.evaluate(zero, unsplit, "val")


def test_generic_registry():
    from repro.registry import Registry

    def check(name, item):
        if item < 0:
            raise ReproError(f"{name}: negative")

    reg: Registry[int] = Registry("number", check)
    assert reg.register("one", 1) == 1 and reg.register("one", 1) == 1  # the same item again: harmless
    reg.register("two", 2)
    assert reg.names() == ["one", "two"] == list(reg) and len(reg) == 2
    assert "one" in reg and "three" not in reg and reg.get("two") == 2
    with pytest.raises(ReproError, match="number 'one' is registered twice with different definitions"):
        reg.register("one", 11)
    with pytest.raises(ReproError, match="minus: negative"):
        reg.register("minus", -1)
    assert "minus" not in reg
    with pytest.raises(ReproError, match=r"unknown number 'three'; valid choices: one, two"):
        reg.get("three")
    assert Registry("thing").names() == []
    with pytest.raises(ReproError, match=r"unknown thing 'x'; valid choices: \(none registered\)"):
        Registry("thing").get("x")


def test_model_registry():
    from repro.models import MODELS, build_model, register_model

    assert {"mlp", "small_cnn", "resnet18_cifar", "wrn28_10_cifar"} <= set(MODELS.names())
    net = build_model("mlp", sizes=[2, 3, 1])
    assert net(torch.zeros(4, 2)).shape == (4, 1)
    with pytest.raises(ReproError, match=r"model 'mlp': bad arguments \{'size': \[2, 1\]\}"):
        build_model("mlp", size=[2, 1])
    with pytest.raises(ReproError, match=r"unknown model 'nope'; valid choices: .*mlp"):
        build_model("nope")
    with pytest.raises(ReproError, match="registered twice"):
        register_model("mlp", lambda: None)
