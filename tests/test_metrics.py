"""Offline classification metrics against hand-computed values."""

import math
import os

import numpy as np
import pytest
import torch

from textdistill.metrics import (
    ClassificationMetric,
    compute_classification_metrics,
    load_metric,
)

# Binary case: refs/preds chosen so every confusion cell is non-zero.
BIN_REFS = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
BIN_PREDS = [1, 0, 0, 1, 1, 0, 1, 0, 0, 1]
# 3-class case.
MC_REFS = [0, 1, 2, 2, 1, 0, 2, 1, 0, 2]
MC_PREDS = [0, 2, 2, 1, 1, 0, 2, 0, 1, 2]


def _f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def test_binary_against_hand_counts():
    tp = fp = fn = tn = 0
    for r, p in zip(BIN_REFS, BIN_PREDS, strict=True):
        tp += r == 1 and p == 1
        tn += r == 0 and p == 0
        fp += r == 0 and p == 1
        fn += r == 1 and p == 0
    assert (tp, tn, fp, fn) == (4, 3, 1, 2)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    out = compute_classification_metrics(BIN_PREDS, BIN_REFS)
    assert set(out) == {"accuracy", "f1", "mcc"}
    assert out["accuracy"] == pytest.approx(7 / 10)
    assert out["f1"] == pytest.approx(_f1(tp, fp, fn)) == pytest.approx(8 / 11)
    assert out["mcc"] == pytest.approx(mcc) == pytest.approx(10 / math.sqrt(5 * 6 * 4 * 5))
    assert all(isinstance(v, float) for v in out.values())


def test_three_class_macro_f1_and_mcc_by_hand():
    k = 3
    cm = np.zeros((k, k))
    for r, p in zip(MC_REFS, MC_PREDS, strict=True):
        cm[r, p] += 1
    f1s = [_f1(cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]) for c in range(k)]
    # Gorodkin's multi-class MCC: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    c, s = np.trace(cm), cm.sum()
    t, p = cm.sum(1), cm.sum(0)
    mcc = (c * s - t @ p) / math.sqrt((s * s - p @ p) * (s * s - t @ t))
    out = compute_classification_metrics(np.array(MC_PREDS), torch.tensor(MC_REFS), num_labels=3)
    assert out["accuracy"] == pytest.approx(6 / 10)
    assert out["f1"] == pytest.approx(sum(f1s) / 3)
    assert out["mcc"] == pytest.approx(mcc)
    # num_labels is inferred as max id + 1 -> macro as well.
    assert compute_classification_metrics(MC_PREDS, MC_REFS) == out


def test_perfect_and_constant_predictions():
    perfect = compute_classification_metrics([0, 1, 1], [0, 1, 1])
    assert perfect == {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}
    # One class only: binary F1 of class 1 is 0 with no positives; MCC is 0, no crash.
    constant = compute_classification_metrics([0, 0, 0], [0, 0, 0], num_labels=2)
    assert constant == {"accuracy": 1.0, "f1": 0.0, "mcc": 0.0}
    inverted = compute_classification_metrics([1, 0, 1, 0], [0, 1, 0, 1])
    assert inverted["mcc"] == pytest.approx(-1.0) and inverted["accuracy"] == 0.0


@pytest.mark.parametrize("preds, refs, kw, match", [
    ([], [], {}, "empty"),
    ([0, 1], [0], {}, "length"),
    ([0.5, 1.0], [0, 1], {}, "integer"),
    ([[0, 1]], [[0, 1]], {}, "1-D"),
    ([0, 3], [0, 1], {"num_labels": 2}, "out of range"),
    ([-1, 0], [0, 1], {}, ">= 0"),
])
def test_bad_inputs_raise(preds, refs, kw, match):
    with pytest.raises(ValueError, match=match):
        compute_classification_metrics(preds, refs, **kw)


def test_float_whole_numbers_and_tensors_are_accepted():
    out = compute_classification_metrics(torch.tensor([1.0, 0.0]), np.array([1, 0]))
    assert out["accuracy"] == 1.0


def test_metric_add_batch_add_compute_matches_function_and_resets():
    expected = compute_classification_metrics(MC_PREDS, MC_REFS, num_labels=3)
    metric = ClassificationMetric(num_labels=3)
    metric.add_batch(predictions=torch.tensor(MC_PREDS[:4]), references=MC_REFS[:4])
    for p, r in zip(MC_PREDS[4:7], MC_REFS[4:7], strict=True):
        metric.add(prediction=p, reference=r)
    assert len(metric) == 7
    assert metric.compute(predictions=MC_PREDS[7:], references=MC_REFS[7:]) == expected
    assert len(metric) == 0  # compute() empties the buffer, like evaluate
    with pytest.raises(ValueError, match="empty"):
        metric.compute()
    # Reusable for a second round, and compute() alone with arguments works too.
    metric.add_batch(predictions=BIN_PREDS, references=BIN_REFS)
    assert metric.compute() == compute_classification_metrics(BIN_PREDS, BIN_REFS, num_labels=3)
    assert metric.compute(predictions=MC_PREDS, references=MC_REFS) == expected
    with pytest.raises(ValueError, match="both"):
        metric.compute(predictions=MC_PREDS)


def test_load_metric_names_and_errors(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for name in ("classification", "accuracy", "f1", "mcc", "matthews_correlation", "glue",
                 "glue-sst2", "glue/mrpc", "GLUE_cola"):
        metric = load_metric(name)
        assert isinstance(metric, ClassificationMetric)
        assert metric.compute(predictions=BIN_PREDS, references=BIN_REFS) == \
            compute_classification_metrics(BIN_PREDS, BIN_REFS)
    assert load_metric("glue-mnli").num_labels == 3
    assert load_metric("glue-sst2").num_labels == 2
    assert load_metric("accuracy", num_labels=4).num_labels == 4
    for bad in ("bleu", "glue-stsb", "glue-nope"):
        with pytest.raises(ValueError, match="choose one of") as info:
            load_metric(bad)
        assert "accuracy" in str(info.value) and "glue-sst2" in str(info.value)
