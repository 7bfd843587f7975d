"""Named datasets: generated (synthetic functions), embedded (bundled with a wheel) or downloaded.

Every dataset is *prepared* once into ``data/prepared/<name>.pt`` (a dict of tensors saved
with ``torch.save``) plus a ``.sha256`` sidecar. Loading verifies the sidecar before reading,
and reads with ``weights_only=True``: a corrupted file is refused, never unpickled.
"""

from __future__ import annotations

from repro.datasets.registry import (
    DatasetSpec,
    TensorData,
    dataset_names,
    get_dataset,
    load_prepared,
    prepare,
    register_dataset,
)

__all__ = [
    "DatasetSpec",
    "TensorData",
    "dataset_names",
    "get_dataset",
    "load_prepared",
    "prepare",
    "register_dataset",
]
