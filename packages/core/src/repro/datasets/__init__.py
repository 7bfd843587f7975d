"""Named datasets: generated (synthetic functions), embedded (bundled with a wheel) or downloaded.

Every dataset is *prepared* once into ``data/prepared/<name>.pt`` (a dict of tensors saved
with ``torch.save``) plus a ``.sha256`` sidecar. Loading verifies the sidecar before reading,
and reads with ``weights_only=True``: a corrupted file is refused, never unpickled.

This package holds the core's own datasets; ``repro.catalog`` adds those paper packages declare.
Importing it imports no paper package.
"""

from __future__ import annotations

from repro.datasets import downloaded, embedded, generated  # noqa: F401  (register the built-ins)
from repro.datasets.registry import (
    DATASETS,
    DatasetSpec,
    TensorData,
    load_prepared,
    prepare,
    register_dataset,
)


def dataset_names() -> list[str]:
    """The core's datasets (``repro.catalog.dataset_names`` adds the papers')."""
    return DATASETS.names()


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "TensorData",
    "dataset_names",
    "load_prepared",
    "prepare",
    "register_dataset",
]
