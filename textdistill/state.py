"""Where a training run stands, and the hook that can stop it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .distiller import Distiller


@dataclass
class TrainState:
    """Where training stands; checkpointed with the rest of the state.

    ``step`` counts optimizer steps; the data position follows from it and the batch
    plan (epoch = step // steps_per_epoch), so it is all a resume needs.
    """

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: dict = field(default_factory=dict)

    def record_eval(self, value: float, greater_is_better: bool) -> bool:
        """Track the metric that picks ``best/``; return whether ``value`` is a new best."""
        best = self.best_metric
        improved = best is None or (value > best if greater_is_better else value < best)
        if improved:
            self.best_metric, self.best_step = value, self.step
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        return improved

    def state_dict(self) -> dict:
        return {"step": self.step, "best_metric": self.best_metric, "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement,
                "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.best_metric = state["best_metric"]
        self.best_step = state["best_step"]
        self.evals_without_improvement = int(state["evals_without_improvement"])
        self.history = json.loads(state["history"])


class StepCallback:
    """Hook into the loop. Return ``True`` from :meth:`on_step_end` to stop training
    (after that step's logging, evaluation and checkpoint)."""

    def on_step_end(self, distiller: Distiller, state: TrainState) -> bool:
        return False


__all__ = ["StepCallback", "TrainState"]
