"""Classification metrics as ``evaluate`` modules defined in code, so they work offline.

``evaluate.load("accuracy")`` fetches the metric script from the Hub (the ``evaluate``
package ships no metrics itself), so it fails with ``HF_HUB_OFFLINE=1``. The metrics here
subclass :class:`evaluate.Metric` directly and need no download:

* :class:`Accuracy`, :class:`F1`, :class:`MatthewsCorrelation` - one score each
  (``accuracy``, ``f1``, ``mcc``), with ``add`` / ``add_batch`` / ``compute`` as usual;
* :class:`Glue` - accuracy, F1 and MCC of a GLUE classification task, e.g. ``Glue("mnli")``;
* :func:`compute_classification_metrics` - all three in one call; what evaluation uses;
* :func:`greater_is_better` - whether a metric (or loss) name improves upward;
* :func:`check_metric_for_best` - whether a name is one evaluation reports
  (:data:`METRIC_KEYS`), checked when a training config is made.

The ``evaluate`` modules are built on first use: importing ``evaluate`` pulls in
``transformers.pipelines`` (seconds), which a config check or a run that never evaluates
should not pay.

Every metric is kept in memory and computed by the process that calls it. ``evaluate``
can gather predictions across processes itself (``num_process`` / ``process_id``, through
Arrow files and locks in ``cache_dir``), but then only process 0 gets a result; textdistill
gathers the logits with Accelerate first (``Distiller.predict``), so every process scores
the whole evaluation set and all of them see the same numbers, which they need to agree
on the best checkpoint.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import numpy as np

from .errors import ConfigError

# The keys of compute_classification_metrics, in order; each is better when higher.
METRIC_KEYS = ("accuracy", "f1", "mcc")
# The metric classes, built on first use (see the module docstring).
EVALUATE_MODULES = ("Accuracy", "F1", "MatthewsCorrelation", "Glue")

# GLUE classification tasks and their label counts; stsb is regression, so not here.
GLUE_TASKS = {"sst2": 2, "mrpc": 2, "qqp": 2, "qnli": 2, "rte": 2, "wnli": 2, "cola": 2,
              "mnli": 3, "mnli_matched": 3, "mnli_mismatched": 3, "ax": 3}

_INPUTS = """
Args:
    predictions: predicted class ids, shape (n,) - list, numpy array or tensor.
    references: gold class ids, shape (n,).
    num_labels: number of classes; ``None`` infers ``max id + 1`` (at least 2).
"""


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


def _checked(predictions: Any, references: Any,
             num_labels: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated ``(predictions, references, num_labels)``; ``num_labels`` resolved."""
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
    return preds, refs, num_labels


def _accuracy(preds: np.ndarray, refs: np.ndarray) -> float:
    return float(np.mean(preds == refs))


def _f1(preds: np.ndarray, refs: np.ndarray, num_labels: int) -> float:
    from sklearn.metrics import f1_score

    if num_labels == 2:
        # labels=[0, 1] fixes the label set so a batch of one class is still binary.
        return float(f1_score(refs, preds, labels=[0, 1], pos_label=1, average="binary",
                              zero_division=0.0))
    present = np.union1d(refs, preds)
    return float(f1_score(refs, preds, labels=present, average="macro", zero_division=0.0))


def _mcc(preds: np.ndarray, refs: np.ndarray, num_labels: int) -> float:
    """Matthews correlation from the (k, k) confusion matrix (rows: true, cols: predicted).

    Computed from the matrix rather than with ``sklearn.metrics.matthews_corrcoef`` so
    that the label set is explicit: sklearn warns whenever one class fills a batch.
    """
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(refs, preds, labels=np.arange(num_labels)).astype(np.float64)
    t_sum, p_sum = matrix.sum(axis=1), matrix.sum(axis=0)
    n_correct, n = np.trace(matrix), matrix.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        # A constant prediction or reference carries no correlation; sklearn agrees.
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def _all_scores(preds: np.ndarray, refs: np.ndarray, num_labels: int) -> dict[str, float]:
    return {"accuracy": _accuracy(preds, refs), "f1": _f1(preds, refs, num_labels),
            "mcc": _mcc(preds, refs, num_labels)}


@functools.cache
def _evaluate_modules() -> dict[str, type]:
    """The ``evaluate`` metric classes by name, defined on the first call."""
    import datasets
    import evaluate

    features = datasets.Features({"predictions": datasets.Value("int64"),
                                  "references": datasets.Value("int64")})

    class _InMemoryMetric(evaluate.Metric):
        """An ``evaluate`` metric that buffers in memory and scores in the calling process.

        The constructor takes no ``num_process`` / ``process_id`` / ``cache_dir`` /
        ``experiment_id``: gather predictions before scoring (see the module docstring).
        """

        def __init__(self, config_name: str | None = None) -> None:
            super().__init__(config_name=config_name, keep_in_memory=True)

        def _build_data_dir(self) -> str:
            # evaluate creates <cache_dir>/<name>/<config> for every metric, although an
            # in-memory one never reads or writes there; leave the user's cache untouched.
            return os.path.join(self._data_dir_root, self.name, self.config_name)

        def _metric_info(self, description: str) -> evaluate.MetricInfo:
            return evaluate.MetricInfo(description=description, citation="",
                                       inputs_description=_INPUTS, features=features,
                                       format="numpy")

    class Accuracy(_InMemoryMetric):
        """``{"accuracy": fraction of predictions equal to the reference}``."""

        def _info(self) -> evaluate.MetricInfo:
            return self._metric_info("Fraction of predicted class ids equal to the gold ones.")

        def _compute(self, predictions: Any, references: Any,
                     num_labels: int | None = None) -> dict[str, float]:
            preds, refs, _ = _checked(predictions, references, num_labels)
            return {"accuracy": _accuracy(preds, refs)}

    class F1(_InMemoryMetric):
        """``{"f1": ...}``: with 2 classes the binary F1 of class 1, otherwise the macro
        average over the classes present in predictions or references (as the Hub's ``f1``
        with ``average="macro"`` does)."""

        def _info(self) -> evaluate.MetricInfo:
            return self._metric_info("Binary F1 of class 1 with two classes, macro F1 with more.")

        def _compute(self, predictions: Any, references: Any,
                     num_labels: int | None = None) -> dict[str, float]:
            preds, refs, num_labels = _checked(predictions, references, num_labels)
            return {"f1": _f1(preds, refs, num_labels)}

    class MatthewsCorrelation(_InMemoryMetric):
        """``{"mcc": ...}``: the (multi-class) Matthews correlation coefficient, 0 when the
        predictions or the references are constant."""

        def _info(self) -> evaluate.MetricInfo:
            return self._metric_info("Matthews correlation coefficient of the class ids.")

        def _compute(self, predictions: Any, references: Any,
                     num_labels: int | None = None) -> dict[str, float]:
            preds, refs, num_labels = _checked(predictions, references, num_labels)
            return {"mcc": _mcc(preds, refs, num_labels)}

    class Glue(_InMemoryMetric):
        """Accuracy, F1 and MCC on a GLUE classification task: ``Glue("sst2")``.

        The task fixes the number of classes (3 for the MNLI family and ``ax``, else 2).
        All three scores are reported for every task, a superset of each task's official one.

        Raises:
            ValueError: for a task that is not a GLUE classification task (``stsb`` is
                regression); the message lists the valid ones.
        """

        def _info(self) -> evaluate.MetricInfo:
            if self.config_name not in GLUE_TASKS:
                raise ValueError(f"unknown GLUE classification task {self.config_name!r}; "
                                 f"choose one of {sorted(GLUE_TASKS)}")
            return self._metric_info(f"Accuracy, F1 and MCC on GLUE {self.config_name}.")

        def _compute(self, predictions: Any, references: Any) -> dict[str, float]:
            num_labels = GLUE_TASKS[self.config_name]
            return _all_scores(*_checked(predictions, references, num_labels))

    classes = {"Accuracy": Accuracy, "F1": F1, "MatthewsCorrelation": MatthewsCorrelation,
               "Glue": Glue}
    for cls in classes.values():
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
    return classes


def __getattr__(name: str) -> Any:
    if name in EVALUATE_MODULES:
        return _evaluate_modules()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compute_classification_metrics(
    predictions: Any, references: Any, num_labels: int | None = None
) -> dict[str, float]:
    """Accuracy, F1 and Matthews correlation of predicted class ids.

    Scores with :class:`Accuracy`, :class:`F1` and :class:`MatthewsCorrelation` combined.

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
    # Checked here first so that bad ids fail with these messages, not Arrow's cast errors.
    import evaluate

    preds, refs, num_labels = _checked(predictions, references, num_labels)
    modules = _evaluate_modules()
    combined = evaluate.combine([modules[name]() for name in ("Accuracy", "F1",
                                                              "MatthewsCorrelation")])
    return combined.compute(predictions=preds, references=refs, num_labels=num_labels)


def greater_is_better(metric_name: str) -> bool:
    """Whether a larger value of ``metric_name`` is the better one.

    The scores of :data:`METRIC_KEYS` (also as ``eval/<name>`` or ``eval_<name>``) are
    better when higher; a loss (any name with ``loss`` as a word: ``loss``,
    ``eval/loss``, ``loss/kd``, ``hard_loss``) is better when lower.

    Raises:
        ValueError: for any other name; the message lists the known ones.
    """
    name = metric_name.strip().lower()
    words = re.split(r"[/_.\-\s]+", name)
    if "loss" in words:
        return False
    if re.sub(r"^eval[/_]", "", name) in METRIC_KEYS:
        return True
    raise ValueError(f"cannot tell whether {metric_name!r} is better higher or lower; "
                     f"choose one of {list(METRIC_KEYS)} or a loss")


def check_metric_for_best(name: Any) -> None:
    """Refuse a ``train.metric_for_best`` that evaluation does not report, before a run
    trains to its first evaluation and fails there.

    Raises:
        ConfigError: ``name`` is not one of :data:`METRIC_KEYS`.
    """
    if name not in METRIC_KEYS:
        raise ConfigError(f"train.metric_for_best: {name!r} is not a metric evaluation "
                          f"reports; choose one of {list(METRIC_KEYS)}")
