"""Schedules over training progress, for the temperature and the loss weights.

A schedule is a pure function ``f(progress, start, end) -> value`` with ``progress`` in
[0, 1] (0 = first step, 1 = last step). ``start`` is the configured value (for example
``DistillationConfig.temperature``) and ``end`` the value reached at the end of
training. Nothing here stores or mutates state: the engine asks for the value at the
current progress on every step.

Teacher annealing, for example, is ``soft_weight=Schedule(1.0, end=0.0)`` and
``hard_weight=Schedule(0.0, end=1.0)``: the student leans on the teacher early and on the gold labels late, so it is
not capped by the teacher's mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import ConfigError
from .schema import check_choice, check_number

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
    """A value that may move over training: ``start`` at progress 0, ``end`` at progress 1.

    A recipe writes a constant as a bare number (``temperature: 2.0``) and a schedule as a
    mapping (``soft_weight: {start: 1.0, end: 0.0}``).
    """

    _section: ClassVar[str] = "schedule"

    start: float = field(metadata={"help": "The value at the first step."})
    end: float | None = field(default=None, metadata={
        "help": "The value at the last step; null keeps `start` throughout."})
    kind: str = field(default="linear", metadata={
        "help": f"How the value moves from `start` to `end`: one of {sorted(SCHEDULES)}."})

    def __post_init__(self) -> None:
        check_choice("schedule.kind", self.kind, sorted(SCHEDULES))
        check_number("schedule.start", self.start, minimum=-math.inf)
        check_number("schedule.end", self.end, minimum=-math.inf)

    @classmethod
    def _from_scalar(cls, value: float) -> Schedule:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"schedule: expected a number or a mapping {{start, end, kind}}, "
                              f"got {value!r}")
        return cls(float(value))

    def _to_plain(self) -> float | dict:
        if self.end is None:
            return self.start
        return {"start": self.start, "end": self.end, "kind": self.kind}

    @property
    def values(self) -> tuple[float, ...]:
        """Every value the schedule takes at its ends (for range checks)."""
        return (self.start,) if self.end is None else (self.start, self.end)

    def value(self, progress: float) -> float:
        """The scheduled value at training ``progress`` in [0, 1]."""
        if self.end is None:
            return self.start
        return SCHEDULES[self.kind](progress, self.start, self.end)


def as_schedule(value: float | Schedule) -> Schedule:
    """``value`` as a :class:`Schedule` (a bare number is a constant)."""
    return value if isinstance(value, Schedule) else Schedule._from_scalar(value)
