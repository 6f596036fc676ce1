"""Classification metrics that work offline.

``evaluate.load("accuracy")`` fetches the metric script from the Hub, so it fails with
``HF_HUB_OFFLINE=1`` (the ``evaluate`` package ships no metrics itself). This module puts
scikit-learn behind the same interface:

* :func:`compute_classification_metrics` - accuracy, F1 and MCC in one call.
* :class:`ClassificationMetric` - the ``add`` / ``add_batch`` / ``compute`` flow of
  ``evaluate.EvaluationModule``.
* :func:`load_metric` - a drop-in for the common ``evaluate.load(...)`` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

METRIC_KEYS = ("accuracy", "f1", "mcc")

# GLUE classification tasks and their label counts; stsb is regression, so not here.
GLUE_TASKS = {"sst2": 2, "mrpc": 2, "qqp": 2, "qnli": 2, "rte": 2, "wnli": 2, "cola": 2,
              "mnli": 3, "mnli_matched": 3, "mnli_mismatched": 3, "ax": 3}
_PLAIN_NAMES = ("classification", "accuracy", "f1", "mcc", "matthews_correlation", "glue")


def _as_labels(values: Any, name: str) -> np.ndarray:
    """Turn a list / array / tensor of class ids into a 1-D int64 array of shape (n,)."""
    if hasattr(values, "detach"):  # torch.Tensor without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of class ids, got shape "
                         f"{array.shape}")
    if array.size and array.dtype.kind not in "iub":
        # Floats are accepted only when they hold whole numbers (e.g. labels read from
        # a float column); logits or probabilities must be argmax-ed by the caller.
        if array.dtype.kind != "f" or not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"{name}: expected integer class ids, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(f"{name}: class ids must be >= 0, got {int(array.min())}")
    return array


def _mcc(matrix: np.ndarray) -> float:
    """Matthews correlation from a (k, k) confusion matrix (rows: true, cols: predicted).

    Computed from the matrix rather than with ``sklearn.metrics.matthews_corrcoef`` so
    that the label set is explicit: sklearn warns whenever one class fills a batch.
    """
    matrix = matrix.astype(np.float64)
    t_sum, p_sum = matrix.sum(axis=1), matrix.sum(axis=0)
    n_correct, n = np.trace(matrix), matrix.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        # A constant prediction or reference carries no correlation; sklearn agrees.
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def compute_classification_metrics(
    predictions: Any, references: Any, num_labels: int | None = None
) -> dict[str, float]:
    """Accuracy, F1 and Matthews correlation of predicted class ids.

    Args:
        predictions: predicted class ids, shape (n,) - list, numpy array or tensor.
        references: gold class ids, shape (n,).
        num_labels: number of classes. With 2, ``f1`` is the binary F1 of class 1;
            otherwise it is the macro average over the classes present in either input
            (as ``evaluate``'s f1 does). ``None`` infers it as ``max id + 1``, so pass it
            when a small multi-class batch may only hold ids 0 and 1.

    Returns:
        ``{"accuracy": float, "f1": float, "mcc": float}``.

    Raises:
        ValueError: on empty or mismatched inputs, non-integer ids, or ids outside
            ``[0, num_labels)``.
    """
    preds = _as_labels(predictions, "predictions")
    refs = _as_labels(references, "references")
    if preds.shape != refs.shape:
        raise ValueError(f"predictions and references differ in length: {preds.shape[0]} "
                         f"vs {refs.shape[0]}")
    if preds.size == 0:
        raise ValueError("cannot compute metrics on empty predictions/references")
    largest = int(max(preds.max(), refs.max()))
    if num_labels is None:
        num_labels = max(largest + 1, 2)
    elif num_labels < 2:
        raise ValueError(f"num_labels must be >= 2, got {num_labels}")
    elif largest >= num_labels:
        raise ValueError(f"class id {largest} is out of range for num_labels={num_labels}")

    if num_labels == 2:
        # labels=[0, 1] fixes the label set so a batch of one class is still binary.
        f1 = f1_score(refs, preds, labels=[0, 1], pos_label=1, average="binary",
                      zero_division=0.0)
    else:
        present = np.union1d(refs, preds)
        f1 = f1_score(refs, preds, labels=present, average="macro", zero_division=0.0)
    matrix = confusion_matrix(refs, preds, labels=np.arange(num_labels))
    return {"accuracy": float(accuracy_score(refs, preds)), "f1": float(f1),
            "mcc": _mcc(matrix)}


class ClassificationMetric:
    """Accumulating metric with the interface of ``evaluate.EvaluationModule``.

    ``add`` / ``add_batch`` buffer predictions; ``compute`` scores everything buffered
    plus what it is given, then empties the buffer (as ``evaluate`` does), so one object
    can serve several evaluation rounds.

    Example::

        metric = ClassificationMetric(num_labels=2)
        for batch in loader:
            metric.add_batch(predictions=logits.argmax(-1), references=batch["labels"])
        metric.compute()  # {"accuracy": ..., "f1": ..., "mcc": ...}
    """

    def __init__(self, num_labels: int | None = None) -> None:
        self.num_labels = num_labels
        self.name = "classification"
        self._predictions: list[np.ndarray] = []
        self._references: list[np.ndarray] = []

    def add_batch(self, *, predictions: Any, references: Any) -> None:
        """Buffer a batch of predicted and gold class ids, each of shape (n,)."""
        preds = _as_labels(predictions, "predictions")
        refs = _as_labels(references, "references")
        if preds.shape != refs.shape:
            raise ValueError(f"predictions and references differ in length: "
                             f"{preds.shape[0]} vs {refs.shape[0]}")
        self._predictions.append(preds)
        self._references.append(refs)

    def add(self, *, prediction: Any, reference: Any) -> None:
        """Buffer a single predicted and gold class id."""
        self.add_batch(predictions=[prediction], references=[reference])

    def compute(self, *, predictions: Any = None, references: Any = None) -> dict[str, float]:
        """Score the buffered examples plus ``predictions``/``references``, then reset.

        Returns:
            ``{"accuracy": float, "f1": float, "mcc": float}``.
        """
        if (predictions is None) != (references is None):
            raise ValueError("pass both predictions and references, or neither")
        if predictions is not None:
            self.add_batch(predictions=predictions, references=references)
        try:
            preds = np.concatenate(self._predictions) if self._predictions else np.zeros(0)
            refs = np.concatenate(self._references) if self._references else np.zeros(0)
            return compute_classification_metrics(preds, refs, num_labels=self.num_labels)
        finally:
            self.reset()

    def reset(self) -> None:
        """Drop everything buffered."""
        self._predictions.clear()
        self._references.clear()

    def __len__(self) -> int:
        return sum(len(p) for p in self._predictions)

    def __repr__(self) -> str:
        return (f"ClassificationMetric(num_labels={self.num_labels}, "
                f"buffered={len(self)})")


def _valid_names() -> list[str]:
    return [*_PLAIN_NAMES, *(f"glue-{task}" for task in GLUE_TASKS)]


def load_metric(name: str = "classification",
                num_labels: int | None = None) -> ClassificationMetric:
    """Offline stand-in for ``evaluate.load(name)`` on classification metrics.

    Every accepted name returns a :class:`ClassificationMetric`, which reports accuracy,
    F1 and MCC together (a superset of what each ``evaluate`` metric reports).

    Args:
        name: ``classification``, ``accuracy``, ``f1``, ``mcc``,
            ``matthews_correlation``, ``glue`` or ``glue-<task>`` (also ``glue/<task>``,
            ``glue_<task>``) for a GLUE classification task such as ``sst2`` or ``mnli``.
        num_labels: number of classes; for ``glue-<task>`` it defaults to the task's.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    key = name.strip().lower()
    if key.startswith("glue") and key != "glue":
        task = key[len("glue"):].lstrip("-/_ ")
        if task in GLUE_TASKS:
            metric = ClassificationMetric(num_labels if num_labels is not None
                                          else GLUE_TASKS[task])
            metric.name = f"glue-{task}"
            return metric
    elif key in _PLAIN_NAMES:
        metric = ClassificationMetric(num_labels)
        metric.name = key
        return metric
    raise ValueError(f"unknown metric {name!r}; choose one of {_valid_names()}")
