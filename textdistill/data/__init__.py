"""Data: loading and tokenizing text datasets (:mod:`.loading`), transfer-set augmentation
(:mod:`.augment`), batching (:mod:`.batching`).

The loading and augmentation names are imported on first use, so
``textdistill.data.batching`` (which the training loop imports) does not pull in
``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .augment import AUGMENTED_COLUMN, AugmentConfig, augment_dataset, neighbour_table
    from .loading import (
        DataConfig,
        default_sst2_dir,
        infer_label_names,
        load_raw_splits,
        sst2_data_config,
        tokenize_splits,
    )

__all__ = [
    "AUGMENTED_COLUMN",
    "AugmentConfig",
    "DataConfig",
    "augment_dataset",
    "default_sst2_dir",
    "infer_label_names",
    "load_raw_splits",
    "neighbour_table",
    "sst2_data_config",
    "tokenize_splits",
]
_AUGMENT_NAMES = ("AUGMENTED_COLUMN", "AugmentConfig", "augment_dataset", "neighbour_table")


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = ".augment" if name in _AUGMENT_NAMES else ".loading"
        return getattr(importlib.import_module(module, __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
