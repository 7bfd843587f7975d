"""Everything that can be named in an experiment: the core's datasets, workloads and models plus
those the installed paper packages declare (``Paper.datasets`` / ``workloads`` / ``models``).

The core registries (``repro.datasets.DATASETS``, ``repro.workloads.WORKLOADS``,
``repro.models.MODELS``) are plain data. A name found there is returned without importing any
paper; only a name the core does not have, or a full listing, loads the paper packages and
registers what they declare.
"""

from __future__ import annotations

import functools

from repro.datasets import DATASETS, DatasetSpec
from repro.models import MODELS
from repro.papers import get_paper, paper_slugs
from repro.workloads import WORKLOADS, Workload


def _add(slug: str) -> None:
    paper = get_paper(slug)
    for spec in paper.datasets:
        DATASETS.register(spec.name, spec)
    for name, builder in paper.models.items():
        MODELS.register(name, builder)
    for w in paper.workloads:
        WORKLOADS.register(w.name, w)


@functools.cache
def _load_all() -> None:
    for slug in paper_slugs():
        _add(slug)


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        _load_all()
    return DATASETS.get(name)


def get_workload(name: str) -> Workload:
    if name not in WORKLOADS:
        _load_all()
    return WORKLOADS.get(name)


def dataset_names() -> list[str]:
    _load_all()
    return DATASETS.names()


def workload_names() -> list[str]:
    _load_all()
    return WORKLOADS.names()
