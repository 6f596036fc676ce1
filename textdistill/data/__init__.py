"""Data: the data section (:mod:`.config`), loading and tokenizing text datasets
(:mod:`.loading`), transfer-set augmentation (:mod:`.augment`), unlabeled transfer texts
(:mod:`.transfer`), GLUE SST-2 (:mod:`.sst2`), batching (:mod:`.batching`).

The loading and augmentation names are imported on first use, so
``textdistill.data.batching`` (which the training loop imports) does not pull in
``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .augment import AUGMENTED_COLUMN, AugmentConfig, augment_dataset, neighbour_table
    from .config import DataConfig
    from .loading import add_teacher_columns, infer_label_names, load_raw_splits, tokenize_splits
    from .sst2 import default_sst2_dir, sst2_data_config
    from .transfer import TRANSFER_COLUMN, TransferConfig, load_transfer, train_sources

__all__ = [
    "AUGMENTED_COLUMN",
    "TRANSFER_COLUMN",
    "AugmentConfig",
    "DataConfig",
    "TransferConfig",
    "add_teacher_columns",
    "augment_dataset",
    "default_sst2_dir",
    "infer_label_names",
    "load_raw_splits",
    "load_transfer",
    "neighbour_table",
    "sst2_data_config",
    "tokenize_splits",
    "train_sources",
]
_MODULES = {
    **dict.fromkeys(("AUGMENTED_COLUMN", "AugmentConfig", "augment_dataset", "neighbour_table"),
                    ".augment"),
    **dict.fromkeys(("TRANSFER_COLUMN", "TransferConfig", "load_transfer", "train_sources"),
                    ".transfer"),
    **dict.fromkeys(("default_sst2_dir", "sst2_data_config"), ".sst2"),
    "DataConfig": ".config",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = _MODULES.get(name, ".loading")
        return getattr(importlib.import_module(module, __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
