"""Where a training run stands, and the hooks that can stop it (callbacks, Ctrl-C)."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

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
        """Plain JSON data (checkpoints store it as JSON, never as a pickle)."""
        return {"step": self.step, "best_metric": self.best_metric, "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement,
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.best_metric = state["best_metric"]
        self.best_step = state["best_step"]
        self.evals_without_improvement = int(state["evals_without_improvement"])
        history = state["history"]
        # Older checkpoints (custom_checkpoint_*.pkl) kept the history as a JSON string.
        self.history = json.loads(history) if isinstance(history, str) else history


class StepCallback:
    """Hook into the loop. Return ``True`` from :meth:`on_step_end` to stop training
    (after that step's logging, evaluation and checkpoint)."""

    def on_step_end(self, distiller: Distiller, state: TrainState) -> bool:
        return False


class DeferredInterrupt:
    """Ctrl-C (SIGINT) while the loop runs: note it, so the loop can stop after the step
    it is in and checkpoint that step. A second Ctrl-C interrupts at once, as usual.

    Only the main thread can take signals; elsewhere, and where SIGINT is ignored, this
    changes nothing and :attr:`requested` stays False.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            # None: a handler not installed from Python; Python's own is the fallback.
            self._previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler
            signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


__all__ = ["DeferredInterrupt", "StepCallback", "TrainState"]
