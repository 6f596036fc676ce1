"""What a new user trips over first (issue 18 §3): the notebook API's names, evaluation
that shows progress and its metrics, the best model, inline plots, wording of finetune
output, what a model card says it measured and runs on, layer numbering, docs agreeing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from tiny import (
    text_tokenizer,
    tiny_bert,
    tiny_dataset,
    write_sentiment_tsv,
    write_tiny_classifier,
)

import textdistill
from textdistill import Distiller, History, TrainingConfig
from textdistill.cli import main
from textdistill.cli_output import results_table
from textdistill.model_card import _card_inputs, build_model_card
from textdistill.runner import _eval_example

ROOT = Path(__file__).resolve().parents[1]
EVAL_LINE = re.compile(r"^eval step \d+: accuracy \d\.\d{4} f1 \d\.\d{4} mcc -?\d\.\d{4}"
                       r"( \(best\))?$", re.MULTILINE)


# ------------------------------------------------------------------------ 1. the API


def test_every_public_name_resolves_and_the_student_builders_are_exported():
    for name in textdistill.__all__:
        assert getattr(textdistill, name) is not None, name
    from textdistill.models import student_from_config, student_from_teacher
    from textdistill.models.student import student_from_config as owner

    assert textdistill.student_from_config is student_from_config is owner
    assert textdistill.student_from_teacher is student_from_teacher
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        textdistill.no_such_name  # noqa: B018


# ------------------------------------------------------- 2. evaluation shows progress


def _distiller(tmp_path, progress_bar: bool, **train) -> Distiller:
    config = TrainingConfig(output_dir=str(tmp_path / "run"), epochs=2, batch_size=16,
                            lr=3e-3, eval_steps=2, report_to=[], progress_bar=progress_bar,
                            **train)
    return Distiller(tiny_bert(seed=1), tiny_bert(num_layers=1, seed=2),
                     training_config=config)


def test_training_prints_one_line_per_evaluation_and_shows_an_eval_bar(tmp_path, capsys):
    distiller = _distiller(tmp_path, progress_bar=True)
    history = distiller.train(tiny_dataset(64), tiny_dataset(24, seed=1))
    captured = capsys.readouterr()
    lines = [m.group(0) for m in EVAL_LINE.finditer(captured.out)]
    assert len(lines) == len(history.eval) == 4, captured.out
    assert lines[0].startswith("eval step 2: ") and lines[0].endswith("(best)")
    assert sum(line.endswith("(best)") for line in lines) == sum(
        1 for i, r in enumerate(history.eval)
        if r["accuracy"] > max((e["accuracy"] for e in history.eval[:i]), default=-1))
    assert "evaluating" in captured.err


def test_no_eval_lines_or_bars_without_progress_bar(tmp_path, capsys):
    _distiller(tmp_path, progress_bar=False).train(tiny_dataset(64), tiny_dataset(24, seed=1))
    captured = capsys.readouterr()
    assert "eval step" not in captured.out and "evaluating" not in captured.err


def test_textdistill_evaluate_shows_a_bar(tmp_path, capsys):
    model = write_tiny_classifier(tmp_path / "model")
    _, dev = write_sentiment_tsv(tmp_path / "data", n_train=8, n_eval=24)
    assert main(["evaluate", str(model), "--data", str(dev), "--no-latency"]) == 0
    assert "evaluating" in capsys.readouterr().err


# ----------------------------------------------------------------- 3. the best model


def test_evaluate_best_scores_best_dir_not_the_last_step(tmp_path):
    distiller = _distiller(tmp_path, progress_bar=False)
    data = tiny_dataset(24, seed=1)
    with pytest.raises(FileNotFoundError, match="no best model in .*best"):
        distiller.load_best()
    distiller.train(tiny_dataset(64), data)
    best = distiller.load_best()
    saved = type(best).from_pretrained(distiller.run_dir.best).state_dict()
    assert all(torch.equal(best.state_dict()[k], v) for k, v in saved.items())
    assert distiller.evaluate(data, model="best") == distiller.evaluate(data, best)
    # Steps after the best one change the student, not best/.
    with torch.no_grad():
        distiller.student.classifier.weight.neg_()
    assert distiller.evaluate(data, model="best") == distiller.evaluate(data, best)
    assert not torch.equal(distiller.student.classifier.weight, best.classifier.weight)
    with pytest.raises(ValueError, match="'last' is not a model"):
        distiller.evaluate(data, model="last")


# --------------------------------------------------------------------- 4. inline plot


def test_plot_without_a_path_returns_a_figure_that_renders_itself(monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    from matplotlib.figure import Figure

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show called"))
    history = History()
    history.log_train({"step": 1, "loss": 0.7})
    history.log_eval({"step": 1, "accuracy": 0.5})
    before = plt.get_fignums()
    fig = history.plot(title="run")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # what Jupyter displays
    assert plt.get_fignums() == before


# ------------------------------------------------------------- 5. finetune wording


def test_finetune_results_call_the_trained_model_a_model():
    results = {"mode": "finetune", "best_eval": {"accuracy": 0.9}, "final_eval": {}}
    table = results_table(results)
    assert "model (best)" in table and "model (final)" in table and "student" not in table
    assert "student (best)" in results_table({**results, "mode": "distill"})
    card = build_model_card(model_name="m", **_card_inputs(
        {**results, "eval_examples": 10}, {"data": {"eval": "dev.tsv"}}))
    assert "| this model |" in card.text and "student" not in card.text


# ------------------------------------------------------------------ 6. model card


def test_card_says_what_was_evaluated_and_runs_on_the_models_own_text():
    results = {"mode": "distill", "teacher": ["someone/teacher"], "eval_examples": 2000,
               "best_step": 120, "final_step": 500, "best_eval": {"accuracy": 0.9},
               "teacher_eval": {"accuracy": 0.92},
               "latency": {"seq_len": 128, "device": "cpu"},
               "eval_example": {"text": "Stocks fell as oil prices rose."}}
    recipe = {"data": {"dataset": "fancyzhx/ag_news", "eval": "test",
                       "max_eval_samples": 2000}}
    text = build_model_card(model_name="news", **_card_inputs(results, recipe)).text
    assert ("measured on 2,000 examples of the `test` split of `fancyzhx/ag_news` (a seeded "
            "random subset, `data.max_eval_samples: 2000`): the teacher before training, this "
            "model at its best evaluation (step 120 of 500)") in text
    assert "print(classifier('Stocks fell as oil prices rose.'))" in text
    assert "movie" not in text
    # The whole split: "all"; an older results.json without the text: a placeholder.
    results = {**results, "eval_examples": 872, "eval_example": None}
    text = build_model_card(model_name="sst", **_card_inputs(
        results, {"data": {"eval": "/data/validation.tsv"}})).text
    assert "measured on all 872 examples of `validation.tsv`" in text
    assert "Replace me by any text" in text and "movie" not in text


def test_card_usage_for_sentence_pairs_and_onnx():
    pair = {"text": "a man sleeps", "text_pair": "nobody sleeps"}
    text = build_model_card(model_name="nli", teacher_name=None, dataset_name=None,
                            metrics={}, results_table=[], distill_config={},
                            example=pair).text
    assert "classifier({'text': 'a man sleeps', 'text_pair': 'nobody sleeps'})" in text
    onnx = build_model_card(model_name="nli", teacher_name=None, dataset_name=None,
                            metrics={}, results_table=[], distill_config={}, example=pair,
                            onnx_graph="int8").text
    assert "tokenizer(['a man sleeps'], ['nobody sleeps'], return_tensors=\"np\")" in onnx


def test_eval_example_is_decoded_from_the_eval_split(tmp_path):
    tokenizer = text_tokenizer(tmp_path / "tok")
    single = tokenizer(["the movie was great ."])
    rows = [{"input_ids": ids} for ids in single["input_ids"]]
    assert _eval_example(rows, tokenizer, 1) == {"text": "the movie was great."}
    pair = tokenizer(["the cat sat"], ["it was fun"])
    rows = [{"input_ids": ids} for ids in pair["input_ids"]]
    assert _eval_example(rows, tokenizer, 2) == {"text": "the cat sat", "text_pair": "it was fun"}
    assert _eval_example([], tokenizer, 1) is None


def test_a_run_stores_its_eval_example_and_the_export_card_uses_it(tmp_path):
    base = write_tiny_classifier(tmp_path / "base", labels=None)
    train, dev = write_sentiment_tsv(tmp_path / "data", n_train=32, n_eval=12)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "student": {"pretrained": str(base)},
        "data": {"train": str(train), "eval": str(dev), "label_names": ["negative", "positive"],
                 "max_eval_samples": 10},
        "train": {"epochs": 1, "batch_size": 16, "report_to": [], "progress_bar": False},
        "output": {"dir": str(tmp_path / "run")}}), encoding="utf-8")
    assert main(["finetune", str(recipe)]) == 0
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "hub")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    example = results["eval_example"]["text"]
    assert example and example.split()[0] in dev.read_text(encoding="utf-8")
    card = (tmp_path / "hub" / "README.md").read_text(encoding="utf-8")
    assert f"print(classifier({example!r}))" in card
    assert "10 examples of `validation.tsv` (a seeded random subset" in card


# ------------------------------------------------------- 7. docs agree on the quickstart


def test_quickstart_docs_agree_and_the_readme_has_the_busy_machine_advice():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    script = (ROOT / "scripts" / "quickstart.py").read_text(encoding="utf-8")
    assert "in about 7 minutes" in readme and "about 7 minutes" in script
    assert "OMP_WAIT_POLICY=PASSIVE" in readme
    assert not re.search(r"\b8 minutes|quarter of an hour", readme + script)


# ------------------------------------------------------------- 8. layer numbering


def test_check_labels_block_indices_and_hidden_state_numbers(tmp_path, capsys):
    teacher = tiny_bert(num_layers=6)
    teacher.config.id2label = {0: "negative", 1: "positive"}
    teacher.config.label2id = {"negative": 0, "positive": 1}
    teacher.save_pretrained(tmp_path / "teacher")
    text_tokenizer(tmp_path / "teacher")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": {"model": str(tmp_path / "teacher")},
        "student": {"from_teacher": [0, 2, 4]},
        "data": {"train": "train.tsv", "eval": "dev.tsv", "max_length": 32,
                 "label_names": ["negative", "positive"]},
        "distill": {"matches": "uniform"}}), encoding="utf-8")
    assert main(["check", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert ("from_teacher: teacher blocks [0, 2, 4] (0-based block indices; their outputs are "
            "hidden states [1, 3, 5])") in out
    assert ("layer mapping, in hidden-state numbers (0 = embeddings, i = output of the i-th "
            "block = 0-based block i - 1):") in out



def test_models_load_from_a_path_object_as_from_pretrained_does(tmp_path):
    # The notebook's default passes get_model_path()'s Path; the loaders used to call
    # str methods on it (AttributeError: 'PosixPath' object has no attribute 'startswith').
    from tiny import write_tiny_classifier

    from textdistill import load_classifier, load_tokenizer

    directory = write_tiny_classifier(tmp_path / "model")
    assert load_tokenizer(Path(directory)).pad_token_id == \
        load_tokenizer(str(directory)).pad_token_id
    assert load_classifier(Path(directory)).config.num_labels == 2
