"""What :meth:`Distiller.train` returns: the logged curves of one run.

:class:`History` holds three lists of flat records, appended as training goes:

* ``train`` - ``{"step", "epoch", "lr", "loss", "loss/<component>", ...}`` per log window,
  where each ``loss/<component>`` (``loss/kd``, ``loss/hard``, ``loss/hidden_s1_t2``, ...)
  is one term before its weight is applied, and ``loss`` is the weighted total, so the
  components need not add up to ``loss``.
* ``eval`` - ``{"step", "epoch", "accuracy", "f1", "mcc", ...}`` per evaluation.
* ``throughput`` - ``{"step", "samples_per_second", "steps_per_second"}`` per log window.

It round-trips through JSON (``history.json`` in the output directory) and draws its
curves to a PNG, or to a figure a notebook shows inline, without touching pyplot's global
state.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SOURCES = ("train", "eval", "throughput")
_DPI = 100
# Keys of an eval record that index it rather than measure the model.
_EVAL_INDEX_KEYS = ("step", "epoch")


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class LossWindow:
    """Loss components summed since the last log line. They stay tensors, so a training
    step costs no device sync; the log line averages them."""

    sums: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    samples: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, out: Any, micro_batches: int, samples: int) -> None:
        """Add one micro-batch's ``LossOutput`` (each of ``micro_batches`` counts
        1/``micro_batches`` of a step)."""
        for name, value in out.components.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach() / micro_batches
        self.sums["total"] = self.sums.get("total", 0.0) + out.total.detach() / micro_batches
        self.samples += samples

    def reset(self) -> None:
        self.sums, self.steps, self.samples = {}, 0, 0
        self.start = time.perf_counter()

    def records(self, step: int, steps_per_epoch: int, lr: float, processes: int,
                mean_over_processes: Callable[[Any], Any]) -> tuple[dict, dict]:
        """The train record (averaged losses, averaged over processes too) and the
        throughput record of this window, for :meth:`History.log_train` /
        :meth:`History.log_throughput`."""
        import torch

        seconds = max(time.perf_counter() - self.start, 1e-9)
        names = sorted(self.sums)
        values = torch.stack([torch.as_tensor(self.sums[n], dtype=torch.float32)
                              for n in names]) / self.steps
        values = mean_over_processes(values).tolist()
        record = {"step": step, "epoch": step / steps_per_epoch, "lr": lr}
        for name, value in zip(names, values):
            record["loss" if name == "total" else f"loss/{name}"] = value
        throughput = {"step": step, "samples_per_second": self.samples * processes / seconds,
                      "steps_per_second": self.steps / seconds}
        return record, throughput


@dataclass
class History:
    """Curves and summary of one training run.

    Attributes:
        train: training log records (see module docstring).
        eval: evaluation records.
        throughput: speed records.
        best_metric: best value of ``metric_for_best`` seen in ``eval``, or ``None``.
        best_step: step at which ``best_metric`` was reached.
        metric_for_best: the eval key that selects the best checkpoint.
        wall_time_s: wall-clock seconds of the whole ``train()`` call.
    """

    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    metric_for_best: str = "accuracy"
    wall_time_s: float | None = None

    # ------------------------------------------------------------------- logging

    def log_train(self, record: dict[str, Any]) -> None:
        """Append a copy of a training record (the caller may reuse its dict)."""
        self.train.append(dict(record))

    def log_eval(self, record: dict[str, Any]) -> None:
        """Append a copy of an evaluation record."""
        self.eval.append(dict(record))

    def log_throughput(self, record: dict[str, Any]) -> None:
        """Append a copy of a throughput record."""
        self.throughput.append(dict(record))

    # ------------------------------------------------------------------- queries

    def loss_components(self) -> list[str]:
        """The ``loss/<component>`` keys of the train records, in first-logged order.

        Full keys (``"loss/kd"``) are returned so they can go straight to :meth:`series`;
        the total ``"loss"`` is not a component.
        """
        seen: dict[str, None] = {}
        for record in self.train:
            for key in record:
                if key.startswith("loss/"):
                    seen.setdefault(key, None)
        return list(seen)

    def eval_metrics(self) -> list[str]:
        """Numeric keys of the eval records other than ``step``/``epoch``, first-seen order."""
        seen: dict[str, None] = {}
        for record in self.eval:
            for key, value in record.items():
                if key not in _EVAL_INDEX_KEYS and _is_number(value):
                    seen.setdefault(key, None)
        return list(seen)

    def series(self, key: str, source: str = "train") -> tuple[list[int], list[float]]:
        """Steps and values of ``key`` in the ``source`` records that have it.

        Args:
            key: record key, e.g. ``"loss"``, ``"loss/kd"``, ``"accuracy"``.
            source: ``"train"``, ``"eval"`` or ``"throughput"``.

        Returns:
            ``(steps, values)``, two lists of equal length (empty if ``key`` never appears).
        """
        if source not in SOURCES:
            raise ValueError(f"source {source!r} is not valid; choose one of {list(SOURCES)}")
        steps: list[int] = []
        values: list[float] = []
        for record in getattr(self, source):
            value = record.get(key)
            if value is not None and "step" in record:
                steps.append(int(record["step"]))
                values.append(float(value))
        return steps, values

    def last_eval(self) -> dict[str, Any] | None:
        """A copy of the latest eval record, or ``None`` before the first evaluation."""
        return dict(self.eval[-1]) if self.eval else None

    @property
    def final_step(self) -> int | None:
        """The highest step logged anywhere, or ``None`` for an empty history."""
        steps = [r["step"] for source in SOURCES for r in getattr(self, source) if "step" in r]
        return int(max(steps)) if steps else None

    @property
    def final_loss(self) -> float | None:
        """Total training loss of the last train record that has one."""
        _, values = self.series("loss")
        return values[-1] if values else None

    # ------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """A deep-copied, JSON-ready dict of every field."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`; unknown keys are rejected with the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown History keys {unknown}; valid keys are {names}")
        return cls(**copy.deepcopy(dict(data)))

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (parents created); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read a history written by :meth:`save_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ plotting

    @overload
    def plot(self, path: None = None, *, title: str | None = None) -> Figure: ...

    @overload
    def plot(self, path: str | Path, *, title: str | None = None) -> Path: ...

    def plot(self, path: str | Path | None = None, *,
             title: str | None = None) -> Figure | Path:
        """Draw the run's curves: to a PNG at ``path`` (returns the path), or, without a
        path, as a matplotlib ``Figure`` (returns it).

        The figure renders itself as a PNG in Jupyter, so a notebook cell that ends in
        ``history.plot()`` shows the curves inline, whatever the matplotlib backend;
        ``IPython.display.display(fig)`` shows it from anywhere in a cell. No window is
        opened and ``pyplot.show`` is never called (a headless backend cannot show).

        Left panel: total loss and every loss component against step (log y-axis when
        every value is positive), plus the eval loss if evaluation logged one. Right
        panel: every other eval metric against step, or a note that there were none.

        Uses ``Figure`` + ``FigureCanvasAgg`` directly rather than pyplot, so nothing
        global changes: safe inside notebooks, threads and headless servers.

        Raises:
            ImportError: if matplotlib is not installed.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as err:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from err

        fig = Figure(figsize=(11, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        loss_ax, eval_ax = fig.subplots(1, 2)

        plotted: list[float] = []
        for key in ["loss", *self.loss_components()]:
            steps, values = self.series(key)
            if steps:
                loss_ax.plot(steps, values, label=key, linewidth=2.0 if key == "loss" else 1.2)
                plotted.extend(values)
        # The eval loss shares the loss panel's scale, not the metrics' [0, 1] range.
        eval_metrics = self.eval_metrics()
        if "loss" in eval_metrics:
            eval_metrics.remove("loss")
            steps, values = self.series("loss", source="eval")
            loss_ax.plot(steps, values, "--o", label="eval loss", markersize=3)
            plotted.extend(values)
        finite = [v for v in plotted if math.isfinite(v)]
        if finite and all(v > 0 for v in finite):
            loss_ax.set_yscale("log")
        if plotted:
            loss_ax.legend(fontsize="small")
        else:
            loss_ax.text(0.5, 0.5, "no training records", ha="center", va="center",
                         transform=loss_ax.transAxes)
        loss_ax.set_xlabel("step")
        loss_ax.set_ylabel("loss")
        loss_ax.set_title("training loss")
        loss_ax.grid(True, alpha=0.3)

        for key in eval_metrics:
            steps, values = self.series(key, source="eval")
            eval_ax.plot(steps, values, "-o", label=key, markersize=3)
        if self.best_step is not None and self.best_metric is not None and eval_metrics:
            eval_ax.axvline(self.best_step, color="grey", linestyle=":",
                            label=f"best {self.metric_for_best}={self.best_metric:.4g}")
        if eval_metrics:
            eval_ax.legend(fontsize="small")
        else:
            eval_ax.text(0.5, 0.5, "no evaluation records", ha="center", va="center",
                         transform=eval_ax.transAxes)
        eval_ax.set_xlabel("step")
        eval_ax.set_title("evaluation")
        eval_ax.grid(True, alpha=0.3)

        if title:
            fig.suptitle(title)
        if path is None:
            # Jupyter's display hook renders any object with _repr_png_; a figure made
            # without pyplot has none unless pyplot's inline backend registered one.
            fig._repr_png_ = lambda: _png_bytes(fig)
            return fig
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=_DPI)
        return path

    # ------------------------------------------------------------------- display

    def _summary(self) -> dict[str, str]:
        best = "-"
        if self.best_metric is not None:
            best = f"{self.metric_for_best}={_fmt(self.best_metric)} @ step {self.best_step}"
        wall = "-" if self.wall_time_s is None else f"{self.wall_time_s:.1f}s"
        return {"steps": _fmt(self.final_step), "final loss": _fmt(self.final_loss),
                "best": best, "evals": str(len(self.eval)), "wall time": wall}

    def __repr__(self) -> str:
        summary = self._summary()
        return (f"History(steps={summary['steps']}, final_loss={summary['final loss']}, "
                f"best={summary['best']}, evals={summary['evals']}, "
                f"wall_time={summary['wall time']})")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self._summary().items())
        last = self.last_eval()
        if last is not None:
            metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in last.items()
                                if k not in _EVAL_INDEX_KEYS)
            rows += (f"<tr><th style='text-align:left'>last eval</th>"
                     f"<td>{html.escape(metrics)}</td></tr>")
        components = ", ".join(self.loss_components()) or "-"
        rows += (f"<tr><th style='text-align:left'>loss components</th>"
                 f"<td>{html.escape(components)}</td></tr>")
        return f"<table><caption>History</caption>{rows}</table>"
