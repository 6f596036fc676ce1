"""Schedules over training progress, for the temperature and the loss weights.

A schedule is a pure function ``f(progress, start, end) -> value`` with ``progress`` in
[0, 1] (0 = first step, 1 = last step). ``start`` is the configured value (for example
``DistillationConfig.temperature``) and ``end`` the value reached at the end of
training. Nothing here stores or mutates state: the engine asks for the value at the
current progress on every step.

Teacher annealing, for example, is ``soft_weight=1`` with
``Schedule("linear", end=0.0)`` and ``hard_weight=0`` with ``Schedule("linear",
end=1.0)``: the student leans on the teacher early and on the gold labels late, so it is
not capped by the teacher's mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from .errors import ConfigError

ScheduleFn = Callable[[float, float, float], float]


def _clamp(progress: float) -> float:
    return min(max(float(progress), 0.0), 1.0)


def constant(progress: float, start: float, end: float) -> float:
    """Always ``start``."""
    return start


def linear(progress: float, start: float, end: float) -> float:
    """Straight line from ``start`` at progress 0 to ``end`` at progress 1."""
    p = _clamp(progress)
    return start + (end - start) * p


def cosine(progress: float, start: float, end: float) -> float:
    """Half-cosine from ``start`` to ``end``: flat at both ends, steepest mid-way."""
    p = _clamp(progress)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))


SCHEDULES: dict[str, ScheduleFn] = {"constant": constant, "linear": linear, "cosine": cosine}


@dataclass(frozen=True)
class Schedule:
    """How a configured value moves over training.

    Attributes:
        kind: ``constant``, ``linear`` or ``cosine``.
        end: the value at progress 1; ``None`` keeps the start value (constant).
    """

    _section: ClassVar[str] = "schedule"

    kind: str = "constant"
    end: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(
                f"schedule.kind: {self.kind!r} is not valid; choose one of {sorted(SCHEDULES)}"
            )

    def value(self, start: float, progress: float) -> float:
        """The scheduled value at ``progress`` for a configured ``start`` value."""
        end = start if self.end is None else self.end
        return SCHEDULES[self.kind](progress, start, end)
