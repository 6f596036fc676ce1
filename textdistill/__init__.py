"""textdistill: knowledge distillation for transformer text classifiers."""

from .config import ConfigError, DistillationConfig, Match, TrainingConfig
from .schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DistillationConfig",
    "Match",
    "Schedule",
    "TrainingConfig",
    "__version__",
]
