"""Data: loading and tokenizing text datasets (:mod:`.loading`), batching (:mod:`.batching`).

The loading names are imported on first use, so ``textdistill.data.batching`` (which the
training loop imports) does not pull in ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loading import (
        DataConfig,
        default_sst2_dir,
        infer_label_names,
        load_raw_splits,
        sst2_data_config,
        tokenize_splits,
    )

__all__ = [
    "DataConfig",
    "default_sst2_dir",
    "infer_label_names",
    "load_raw_splits",
    "sst2_data_config",
    "tokenize_splits",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".loading", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
