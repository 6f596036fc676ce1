"""Offline classification metrics (``evaluate`` modules) against hand counts and sklearn."""

import math
import socket

import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from textdistill.metrics import (
    F1,
    GLUE_TASKS,
    Accuracy,
    Glue,
    MatthewsCorrelation,
    compute_classification_metrics,
    greater_is_better,
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


@pytest.mark.parametrize("num_labels", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_sklearn_on_random_labels(num_labels, seed):
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, num_labels, size=200)
    # Mostly right, so the scores are far from chance and a wrong formula shows.
    preds = np.where(rng.random(200) < 0.7, refs, rng.integers(0, num_labels, size=200))
    if num_labels == 2:
        f1 = f1_score(refs, preds)
    else:
        f1 = f1_score(refs, preds, average="macro")
    expected = {"accuracy": accuracy_score(refs, preds), "f1": f1,
                "mcc": matthews_corrcoef(refs, preds)}
    out = compute_classification_metrics(torch.tensor(preds), refs, num_labels=num_labels)
    assert list(out) == ["accuracy", "f1", "mcc"]
    assert out == pytest.approx(expected, abs=1e-12)
    # The single-score modules agree with the combined call.
    for metric in (Accuracy(), F1(), MatthewsCorrelation()):
        single = metric.compute(predictions=preds, references=refs, num_labels=num_labels)
        assert single == {key: out[key] for key in single}


def test_modules_are_evaluate_metrics_with_add_batch_add_compute():
    expected = compute_classification_metrics(MC_PREDS, MC_REFS, num_labels=3)
    for metric_class in (Accuracy, F1, MatthewsCorrelation):
        metric = metric_class()
        assert isinstance(metric, evaluate.Metric)
        metric.add_batch(predictions=torch.tensor(MC_PREDS[:4]), references=MC_REFS[:4])
        for p, r in zip(MC_PREDS[4:7], MC_REFS[4:7], strict=True):
            metric.add(prediction=p, reference=r)
        assert len(metric) == 7
        out = metric.compute(predictions=MC_PREDS[7:], references=MC_REFS[7:], num_labels=3)
        assert out.items() <= expected.items()
        # compute() empties the buffer, so the same object serves the next round.
        out = metric.compute(predictions=BIN_PREDS, references=BIN_REFS)
        assert out.items() <= compute_classification_metrics(BIN_PREDS, BIN_REFS).items()
    assert [m().name for m in (Accuracy, F1, MatthewsCorrelation)] == \
        ["accuracy", "f1", "matthews_correlation"]


def test_glue_tasks_fix_the_class_count():
    for task, num_labels in GLUE_TASKS.items():
        metric = Glue(task)
        assert metric.name == "glue" and metric.config_name == task
        assert metric.compute(predictions=BIN_PREDS, references=BIN_REFS) == \
            compute_classification_metrics(BIN_PREDS, BIN_REFS, num_labels=num_labels)
    # With 3 classes, F1 is the macro average even when only ids 0 and 1 occur.
    assert Glue("mnli").compute(predictions=BIN_PREDS, references=BIN_REFS)["f1"] == \
        pytest.approx(f1_score(BIN_REFS, BIN_PREDS, average="macro"))
    with pytest.raises(ValueError, match="out of range"):
        Glue("sst2").compute(predictions=[2], references=[0])
    for bad in ("stsb", "nope"):
        with pytest.raises(ValueError, match="choose one of") as info:
            Glue(bad)
        assert "sst2" in str(info.value) and "mnli" in str(info.value)


def test_offline_without_network_or_cache_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "metrics"
    monkeypatch.setattr(evaluate.config, "HF_METRICS_CACHE", cache)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    compute_classification_metrics(MC_PREDS, MC_REFS)
    metric = Glue("sst2")
    metric.add_batch(predictions=BIN_PREDS, references=BIN_REFS)
    metric.compute()
    # evaluate makes <cache>/<name>/<config> (and Arrow files and locks without
    # keep_in_memory) for every metric by default.
    assert not cache.exists()
    assert list(tmp_path.iterdir()) == []


def test_every_process_scores_in_memory_on_its_own():
    # Two ranks on one machine share evaluate's default experiment_id; buffering in memory
    # keeps them apart, and each gets the whole result (evaluate's own multi-process mode
    # answers None on all but process 0).
    rank0, rank1 = Accuracy(), Accuracy()
    rank0.add_batch(predictions=[1, 1], references=[1, 1])
    rank1.add_batch(predictions=[0, 1], references=[1, 0])
    assert rank1.compute() == {"accuracy": 0.0}
    assert rank0.compute() == {"accuracy": 1.0}
    with pytest.raises(TypeError):
        Accuracy(num_process=2, process_id=1)  # gather first, then score everywhere


@pytest.mark.parametrize("name, higher", [
    ("accuracy", True), ("f1", True), ("mcc", True), ("eval/accuracy", True),
    ("eval_f1", True), (" MCC ", True),
    ("loss", False), ("eval/loss", False), ("eval_loss", False), ("loss/kd", False),
    ("hard_loss", False),
])
def test_greater_is_better(name, higher):
    assert greater_is_better(name) is higher


@pytest.mark.parametrize("name", ["bleu", "glossy", "", "matthews"])
def test_greater_is_better_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="choose one of") as info:
        greater_is_better(name)
    assert "accuracy" in str(info.value) and "loss" in str(info.value)


def test_metric_for_best_must_be_a_metric_evaluation_reports():
    from textdistill import TrainingConfig
    from textdistill.errors import ConfigError
    from textdistill.metrics import METRIC_KEYS, check_metric_for_best

    for name in METRIC_KEYS:
        check_metric_for_best(name)
        assert TrainingConfig(metric_for_best=name).metric_for_best == name
    for bad in ("acc", "eval/accuracy", "loss"):
        with pytest.raises(ConfigError, match=rf"train\.metric_for_best: '{bad}' is not a "
                                              r"metric evaluation reports; choose one of "
                                              r"\['accuracy', 'f1', 'mcc'\]"):
            TrainingConfig(metric_for_best=bad)
