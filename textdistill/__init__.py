"""textdistill: knowledge distillation for transformer text classifiers.

The pipeline, one module each: ``data`` (loading, batching) -> ``models`` (adaptors,
layer mappings, projections, students) -> ``losses`` -> ``objective`` and ``distiller``
(the one training loop) -> ``export``.

A notebook needs only this namespace, one call per step::

    tokenizer = load_tokenizer(ref, "teacher")              # load
    teacher = load_classifier(ref, "teacher")
    student = student_from_teacher(teacher, [0, 2, 4])      # or student_from_config
    data = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)  # cfg: DataConfig
    distiller = Distiller(teacher, student, DistillationConfig(), TrainingConfig())
    distiller.train(data["train"], data["eval"])            # distil
    distiller.evaluate(data["eval"], model="best")          # evaluate
    export_model(distiller.load_best(), tokenizer, "hub")   # export

The loading and export names are imported on first use, so ``import textdistill``
does not pull in ``datasets`` or the recipe code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import DistillationConfig, Match, TrainingConfig
from .distiller import Distiller, StepCallback
from .errors import ConfigError
from .history import History
from .losses import available_losses, get_loss, register_loss
from .models import load_pretrained_student, student_from_config, student_from_teacher
from .schedules import Schedule
from .version import __version__

if TYPE_CHECKING:
    from .build import load_classifier, load_tokenizer
    from .data import DataConfig, load_raw_splits, sst2_data_config, tokenize_splits
    from .export import export_model
    from .model_card import build_model_card

__all__ = [
    "ConfigError",
    "DataConfig",
    "DistillationConfig",
    "Distiller",
    "History",
    "Match",
    "Schedule",
    "StepCallback",
    "TrainingConfig",
    "__version__",
    "available_losses",
    "build_model_card",
    "export_model",
    "get_loss",
    "load_classifier",
    "load_pretrained_student",
    "load_raw_splits",
    "load_tokenizer",
    "register_loss",
    "sst2_data_config",
    "student_from_config",
    "student_from_teacher",
    "tokenize_splits",
]
_LAZY = {
    **dict.fromkeys(("load_classifier", "load_tokenizer"), ".build"),
    **dict.fromkeys(("DataConfig", "load_raw_splits", "sst2_data_config", "tokenize_splits"),
                    ".data"),
    "build_model_card": ".model_card",
    "export_model": ".export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
