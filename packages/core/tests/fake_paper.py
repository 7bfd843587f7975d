"""A small FAKE paper, so the core tests need no real paper package.

It is registered with ``repro.papers.add_paper`` by ``conftest.py`` (no entry point, nothing to
install) and exercises what a paper can declare: a gradient baseline, a gradient method with its
own typed hyper-parameters and a fixed switch, experiments at both scales on the core's
workloads, claims of every kind from a ``claims.yaml`` with a template, and a dataset, model and
workload of its own (registered by ``repro.catalog`` only when asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from repro.claims import load_claims
from repro.datasets import DatasetSpec
from repro.hparams import hp
from repro.paper import Experiment, Paper
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method
from repro.workloads import Workload

SLUG = "fake"
PACKAGE_DIR = Path(__file__).resolve().parent / "fake_package"


@dataclass(frozen=True)
class BoostConfig:
    """The boosted method's own hyper-parameters."""

    boost: float = hp(1.0, "learning-rate multiplier applied once at the start", low=0, low_open=True)
    variant: str = hp("plain", "which variant runs (a fixed switch of each method)", choices=("plain", "boosted"))
    warmup: int | None = hp(None, "unused; an optional integer", low=0)


class Boost(Hook):
    """Multiplies every parameter group's learning rate by ``factor`` at fit start."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def fit_start(self, state: TrainState) -> None:
        for group in state.optimizer.param_groups:
            group["lr"] *= self.factor


def _boost_hooks(ctx: Any, own: BoostConfig, gd: GradientConfig) -> list[Hook]:
    return [Boost(own.boost)] if own.variant == "boosted" else []


METHODS = {
    "gd": gradient_method("gd", "Adam, the baseline", is_baseline=True),
    "boosted": gradient_method("boosted", "Adam with its learning rate boosted once", config=BoostConfig,
                               hooks=_boost_hooks, fixed={"variant": "boosted"}),
}

GD = {"optimizer": "adam", "lr": 0.05, "epochs": 3, "batch_size": 50}


def experiments() -> dict[str, dict[str, Experiment]]:
    return {
        "smoke": {
            "sine": Experiment("sine", "sine", {"gd": dict(GD), "boosted": {**GD, "boost": 2.0}},
                               "1-D sine, three epochs"),
            "hat": Experiment("hat", "mexican_hat", {"gd": {**GD, "epochs": 2, "batch_size": 100},
                                                     "boosted": {**GD, "epochs": 2, "batch_size": 100}},
                              "2-D Mexican hat, two epochs"),
        },
        "paper": {
            "sine": Experiment("sine", "sine_wide", {"gd": {**GD, "epochs": 5}, "boosted": {**GD, "epochs": 5}},
                               "wider network"),
            "hat": Experiment("hat", "mexican_hat_wide", {"gd": {**GD, "epochs": 5}, "boosted": {**GD, "epochs": 5}},
                              "wider network"),
        },
    }


# The paper's own contributions to the catalog: a dataset, a model and a workload using them.
def fake_line(params: dict[str, Any], raw_dir: Path) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(int(params["seed"]))
    x_train, x_test = torch.rand(params["n"], 1, generator=g), torch.rand(params["n"], 1, generator=g)
    return {"x_train": x_train, "y_train": 2 * x_train, "x_test": x_test, "y_test": 2 * x_test}


def fake_linear(n_in: int = 1, n_out: int = 1) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))


FAKE_DATASET = DatasetSpec("fake_line", "generated", "regression", fake_line, "y = 2x on [0, 1]",
                           defaults={"n": 20, "seed": 0})
FAKE_WORKLOAD = Workload(name="fake_line", dataset="fake_line", model="fake_linear", model_kwargs={},
                         loss="mse", metrics=("test_rmse",), target=0.01, batch_size=10, max_epochs=5)


def make_paper(slug: str = SLUG, **changes: Any) -> Paper:
    fields: dict[str, Any] = dict(
        slug=slug,
        title=f"A Fake Paper ({slug})",
        authors="A. Tester",
        reference="arXiv 0000.00000",
        url="https://example.org/fake",
        summary="A paper that exists only for the core tests.",
        methods=dict(METHODS),
        experiments=experiments(),
        claims=load_claims(PACKAGE_DIR / "src" / "claims.yaml"),
        package_dir=PACKAGE_DIR,
        datasets=(FAKE_DATASET,),
        workloads=(FAKE_WORKLOAD,),
        models={"fake_linear": fake_linear},
        tiny_hparams={"gd": {"epochs": 1}, "boosted": {"epochs": 1}},
        notes="Nothing here was checked against any paper.",
    )
    fields.update(changes)
    return Paper(**fields)


PAPER = make_paper()
