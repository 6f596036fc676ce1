"""textdistill: knowledge distillation for transformer text classifiers.

The pipeline, one module each: ``data`` (loading, batching) -> ``models`` (adaptors,
layer mappings, projections, students) -> ``losses`` -> ``objective`` and ``distiller``
(the one training loop) -> ``export``.
"""

from .config import DistillationConfig, Match, TrainingConfig
from .distiller import Distiller, StepCallback
from .errors import ConfigError
from .history import History
from .losses import available_losses, get_loss, register_loss
from .schedules import Schedule
from .version import __version__

__all__ = [
    "ConfigError",
    "DistillationConfig",
    "Distiller",
    "History",
    "Match",
    "Schedule",
    "StepCallback",
    "TrainingConfig",
    "__version__",
    "available_losses",
    "get_loss",
    "register_loss",
]
