"""NaN and infinity in training: skipped steps, a run that stops, no NaN best/ or export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from tiny import one_line_error, tiny_bert, tiny_dataset, write_sentiment_tsv, write_tiny_classifier
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textdistill import Distiller, TrainingConfig
from textdistill.cli import main
from textdistill.distiller import StepCallback
from textdistill.errors import ConfigError, NonFiniteError
from textdistill.nonfinite import NonFiniteGuard, nonfinite_tensors

# ---------------------------------------------------------------- the CLI, end to end


@pytest.mark.parametrize("verb", ["finetune", "distill"])
def test_a_diverging_run_exits_2_naming_the_loss_and_step_and_saves_no_nan_best(
        verb, tmp_path, capsys):
    # lr=1e4 makes the tiny model's loss NaN within a few steps (before the guard: exit 0,
    # every tensor of best/ NaN, and results.json with a best accuracy).
    train, dev = write_sentiment_tsv(tmp_path / "sst", n_train=64, n_eval=16)
    run = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    if verb == "finetune":
        models = {"student": {"pretrained": str(write_tiny_classifier(tmp_path / "base",
                                                                      labels=None))}}
    else:
        models = {"teacher": {"model": str(write_tiny_classifier(tmp_path / "teacher"))},
                  "student": {"from_teacher": [0]}}
    recipe.write_text(yaml.safe_dump({
        **models,
        "data": {"train": str(train), "eval": str(dev), "max_length": 32,
                 "label_names": ["negative", "positive"], "cache_dir": str(tmp_path / "c")},
        "train": {"max_steps": 20, "batch_size": 8, "warmup": 0.0, "logging_steps": 2,
                  "eval_steps": 4, "save_steps": 1000, "report_to": [],
                  "progress_bar": False},
        "output": {"dir": str(run)}}), encoding="utf-8")
    assert main([verb, str(recipe), "--set", "train.lr=1e4"]) == 2
    line = one_line_error(capsys, "training diverged: loss/", "NaN or infinite",
                          "10 steps in a row", "train.max_nonfinite_steps", "train.lr")
    assert 2 <= int(line.split("at step ")[1].split()[0]) <= 10, line
    assert not (run / "results.json").exists()
    # The history up to the stop is kept: it is where the user sees the divergence.
    history = json.loads((run / "history.json").read_text())
    assert sum(r["nonfinite_steps"] for r in history["train"]) >= 2
    if (run / "best").exists():  # an earlier evaluation's best, which must be finite
        best = AutoModelForSequenceClassification.from_pretrained(run / "best")
        assert nonfinite_tensors(best)[0] == []


def _nan_run(tmp_path, seed: int = 0) -> Path:
    """A run directory whose best/ holds a NaN weight."""
    run = tmp_path / f"nan-run-{seed}"
    best = write_tiny_classifier(run / "best", seed=seed)
    model = AutoModelForSequenceClassification.from_pretrained(best)
    with torch.no_grad():
        model.classifier.weight[0, 0] = math.nan
    model.save_pretrained(best)
    return run


def test_export_refuses_a_model_with_non_finite_weights(tmp_path, capsys):
    hub = tmp_path / "hub"
    assert main(["export", str(_nan_run(tmp_path)), str(hub)]) == 2
    one_line_error(capsys, "refusing to export", "1 of", "NaN or infinite",
                    "classifier.weight")
    assert not hub.exists() and not list(tmp_path.glob(".hub*"))


def test_push_offline_hint_works_the_retry_pushes_the_complete_export(tmp_path, capsys):
    run = tmp_path / "run"
    write_tiny_classifier(run / "best", seed=0)
    hub = tmp_path / "hub"
    push = ["export", str(run), str(hub), "--push", "someone/tiny"]
    assert main(push) == 2
    one_line_error(capsys, "offline", f"`hf upload someone/tiny {hub}`",
                    "run the same `textdistill export` again")
    weights = (hub / "model.safetensors").read_bytes()
    # The retry the hint suggests reaches the push (here: offline again), instead of
    # refusing the directory as not empty; the export stays as it was.
    assert main(push) == 2
    one_line_error(capsys, "cannot push to the Hub", "offline")
    assert (hub / "model.safetensors").read_bytes() == weights
    assert "someone/tiny" in (hub / "README.md").read_text(encoding="utf-8")
    # Another model's export in the way is still refused, not pushed.
    other = tmp_path / "other"
    write_tiny_classifier(other / "best", seed=1)
    assert main(["export", str(other), str(hub), "--push", "someone/tiny"]) == 2
    one_line_error(capsys, "not empty", "--overwrite")
    assert (hub / "model.safetensors").read_bytes() == weights
    AutoModelForSequenceClassification.from_pretrained(hub)
    AutoTokenizer.from_pretrained(hub)


# ------------------------------------------------------------------ the training loop


def _nan_loss(out, student) -> None:
    # Through the graph, so that the gradients are NaN too.
    out.components["hard"] = out.components["hard"] * math.nan
    out.total = out.total * math.nan


def _nan_gradient(out, student) -> None:
    # sqrt at 0: the value stays finite (0), the gradient is 0 * inf = NaN.
    out.total = out.total + (student.logits * 0).sum().abs().sqrt()


class _PoisonSteps:
    """Wraps an Objective: ``poison`` the loss of the given (1-based) steps."""

    def __init__(self, distiller: Distiller, steps: set[int], poison):
        self.inner, self.distiller, self.steps = distiller.objective, distiller, steps
        self.poison = poison

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, student, *args, **kwargs):
        out = self.inner(student, *args, **kwargs)
        if self.distiller.state.step + 1 in self.steps:
            self.poison(out, student)
        return out


class _Snapshots(StepCallback):
    """Parameters and the learning rate after every step."""

    def __init__(self):
        self.params: dict[int, list[torch.Tensor]] = {}
        self.lrs: dict[int, float] = {}

    def on_step_end(self, distiller, state):
        self.params[state.step] = [p.detach().clone() for p in distiller.student.parameters()]
        self.lrs[state.step] = distiller._scheduler.get_last_lr()[0]
        return False


@pytest.fixture(params=["per_step", "on_device"])
def check_mode(request, monkeypatch):
    """Both skips: the per-step host check (CPU) and the device-side ``found_inf`` skip
    that GPUs use, which the fused AdamW supports on CPU too."""
    if request.param == "on_device":
        make = NonFiniteGuard.for_run.__func__

        def on_device(cls, accelerator, optimizer, limit):
            guard = make(cls, accelerator, optimizer, limit)
            guard.on_device = True
            return guard

        monkeypatch.setattr(NonFiniteGuard, "for_run", classmethod(on_device))
    return request.param


def _distiller(tmp_path, steps: int, poisoned: set[int], poison=_nan_loss,
               **train) -> Distiller:
    cfg = TrainingConfig(**{"output_dir": str(tmp_path / "run"), "batch_size": 8, "lr": 5e-3,
                            "max_steps": steps, "warmup": 0.0, "logging_steps": 1,
                            "report_to": [], "progress_bar": False, "save_steps": 1000,
                            **train})
    distiller = Distiller(None, tiny_bert(seed=3), training_config=cfg)
    distiller.objective = _PoisonSteps(distiller, poisoned, poison)
    return distiller


def test_a_non_finite_step_changes_no_weight_optimizer_state_or_schedule(tmp_path, check_mode):
    snapshots = _Snapshots()
    distiller = _distiller(tmp_path, 4, {3})
    history = distiller.train(tiny_dataset(32), callbacks=[snapshots])
    unchanged = [torch.equal(a, b) for a, b in zip(snapshots.params[2], snapshots.params[3])]
    assert all(unchanged)
    assert not all(torch.equal(a, b)
                   for a, b in zip(snapshots.params[3], snapshots.params[4]))
    optimizer = distiller.accelerator._optimizers[-1]
    assert {float(s["step"]) for s in optimizer.state.values()} == {3.0}  # 4 steps, 1 skipped
    if check_mode == "per_step":  # on a GPU the host-side schedule still advances
        assert snapshots.lrs[3] == snapshots.lrs[2]
    skipped = {r["step"]: r["nonfinite_steps"] for r in history.train}
    assert skipped == {1: 0, 2: 0, 3: 1, 4: 0}
    # The skipped step's NaN stays out of the logged losses.
    assert all(math.isfinite(r["loss"]) or r["step"] == 3 for r in history.train)
    assert nonfinite_tensors(distiller.student)[0] == []


def test_the_consecutive_count_resets_after_a_good_step(tmp_path, check_mode):
    # Two bad steps at a time with a limit of 3: never 3 in a row, so the run finishes.
    history = _distiller(tmp_path, 9, {2, 3, 5, 6, 8, 9},
                         max_nonfinite_steps=3).train(tiny_dataset(32))
    assert sum(r["nonfinite_steps"] for r in history.train) == 6
    # Three in a row stop it, naming the loss and the step the streak began at.
    distiller = _distiller(tmp_path / "b", 9, {2, 4, 5, 6}, max_nonfinite_steps=3)
    with pytest.raises(NonFiniteError, match=r"loss/hard went NaN or infinite at step 4 "
                                             r"and stayed so for 3 steps in a row"):
        distiller.train(tiny_dataset(32))
    assert distiller.state.step == 6  # the third in a row (on GPU: its log line)


def test_a_non_finite_gradient_with_a_finite_loss_is_skipped_too(tmp_path):
    distiller = _distiller(tmp_path, 3, {1, 2, 3}, _nan_gradient, max_nonfinite_steps=2)
    with pytest.raises(NonFiniteError, match="the gradient norm went NaN or infinite at "
                                             "step 1"):
        distiller.train(tiny_dataset(32))
    assert nonfinite_tensors(distiller.student)[0] == []


def test_best_is_never_saved_from_non_finite_weights(tmp_path):
    student = tiny_bert(seed=3)
    with torch.no_grad():
        student.classifier.bias[0] = math.inf
    cfg = TrainingConfig(output_dir=str(tmp_path / "run"), batch_size=8, max_steps=1,
                         report_to=[], progress_bar=False)
    distiller = Distiller(None, student, training_config=cfg)
    with pytest.raises(NonFiniteError, match=r"refusing to save best/ at step 1: 1 of \d+ "
                                             r"weight tensors .*classifier.bias"):
        distiller.train(tiny_dataset(16), tiny_dataset(8, seed=1))
    assert not (tmp_path / "run" / "best").exists()


def test_history_json_counts_the_skipped_steps(tmp_path):
    distiller = _distiller(tmp_path, 3, {2})
    distiller.train(tiny_dataset(32))
    saved = json.loads((tmp_path / "run" / "history.json").read_text(encoding="utf-8"))
    assert [r["nonfinite_steps"] for r in saved["train"]] == [0, 1, 0]


def test_a_log_line_averages_the_steps_that_counted(tmp_path):
    first = _distiller(tmp_path / "a", 1, set()).train(tiny_dataset(32)).train[0]["loss"]
    # Step 2 is skipped: the window of steps 1-2 logs step 1's loss, not half of it.
    window = _distiller(tmp_path / "b", 2, {2}, logging_steps=2).train(tiny_dataset(32))
    assert window.train[0]["loss"] == pytest.approx(first)
    assert window.train[0]["nonfinite_steps"] == 1


@pytest.mark.parametrize("value", [0, -1])
def test_the_limit_must_be_positive(value):
    with pytest.raises(ConfigError, match=r"^train.max_nonfinite_steps: must be > 0"):
        TrainingConfig(max_nonfinite_steps=value)
