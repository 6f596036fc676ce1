"""Bad data and bad config: one line, exit 2, nothing written, and `check` says it too.

Every case runs through each verb that reads what is bad (distill, finetune, evaluate,
check) on tiny models, and each output directory must stay absent.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
import yaml
from tiny import (
    SENTIMENT_LABELS,
    TEXT_VOCAB,
    text_tokenizer,
    write_sentiment_tsv,
    write_tiny_classifier,
)
from transformers import BertConfig, BertForSequenceClassification

from textdistill.cli import main

TRAIN = {"max_steps": 1, "batch_size": 8, "report_to": [], "progress_bar": False}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, quiet_datasets):
    """A tiny teacher, a tiny base model, good tsv files and one bad file per case."""
    root = tmp_path_factory.mktemp("bad-input")
    train, dev = write_sentiment_tsv(root / "sst", n_train=24, n_eval=12)
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.tsv").write_text("", encoding="utf-8")
    (bad / "header-only.tsv").write_text("sentence\tlabel\n", encoding="utf-8")
    (bad / "latin1.tsv").write_bytes("sentence\tlabel\ngood movie\t1\ncaf\xe9 was bad\t0\n"
                                     .encode("latin-1"))
    (bad / "no-header.tsv").write_text("the movie was good\tpositive\nbad film\tnegative\n",
                                       encoding="utf-8")
    (bad / "empty-label.tsv").write_text("sentence\tlabel\ngood movie\t1\nbad film\t\n",
                                         encoding="utf-8")
    small = root / "small-vocab"  # its embedding has fewer rows than its tokenizer
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        vocab_size=10, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=2,
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={n: i for i, n in enumerate(SENTIMENT_LABELS)})).save_pretrained(small)
    text_tokenizer(small)
    return types.SimpleNamespace(
        root=root, train=train, dev=dev, bad=bad, small=small, cache=root / "cache",
        teacher=write_tiny_classifier(root / "teacher", seed=1),
        base=write_tiny_classifier(root / "base", labels=None, seed=0))


def _recipe(ws, path: Path, *, data=None, distill=None, train=None, teacher=None,
            student=None) -> tuple[str, Path]:
    out = path.parent / "run"
    recipe = {
        "teacher": {"model": str(teacher or ws.teacher)},
        "student": student or {"from_teacher": [0]},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": list(SENTIMENT_LABELS), "max_length": 32,
                 "cache_dir": str(ws.cache), **(data or {})},
        "distill": distill or {},
        "train": {**TRAIN, **(train or {})},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return str(path), out


def _argv(verb: str, recipe: str, ws) -> list[str]:
    if verb == "evaluate":
        return ["evaluate", str(ws.teacher), "--data", recipe, "--no-latency"]
    return [verb, recipe]


def _table_row(stdout: str, first: str) -> list[str]:
    """The cells of the printed table row that starts with ``first``."""
    return next(line.split() for line in stdout.splitlines() if line.startswith(first + " "))


def _fails_cleanly(capsys, argv: list[str], out: Path, *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("textdistill: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


DATA_CASES = {
    "empty": ("empty.tsv", ["empty.tsv is empty"]),
    "header_only": ("header-only.tsv", ["header-only.tsv has a header row but no data rows"]),
    "not_utf8": ("latin1.tsv", ["latin1.tsv is not UTF-8 text: byte 0xe9 at offset 31 "
                                "(line 3)"]),
    "no_header": ("no-header.tsv", ["its columns are ['the movie was good', 'positive']",
                                    "first row looks like data, not a header",
                                    "data.column_names"]),
    "empty_label": ("empty-label.tsv", ["data.label_column: the 'label' cell is empty at "
                                        "line 3 of", "every row needs a label"]),
}


@pytest.mark.parametrize("verb", ["distill", "finetune", "evaluate", "check"])
@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file_is_one_line_under_every_verb(case, verb, ws, tmp_path, capsys):
    name, fragments = DATA_CASES[case]
    bad = str(ws.bad / name)
    # The same file as both splits: evaluate reads only the eval split.
    recipe, out = _recipe(ws, tmp_path / "r.yaml", data={"train": bad, "eval": bad},
                          student={"pretrained": str(ws.base)} if verb == "finetune" else None)
    _fails_cleanly(capsys, _argv(verb, recipe, ws), out, *fragments)


def test_header_less_files_read_with_column_names(ws, tmp_path, capsys):
    headerless = str(ws.bad / "no-header.tsv")
    recipe, _ = _recipe(ws, tmp_path / "r.yaml", data={
        "train": headerless, "eval": headerless, "column_names": ["sentence", "label"]})
    capsys.readouterr()
    assert main(["check", recipe]) == 0
    assert _table_row(capsys.readouterr().out, "train") == ["train", "2", "1", "1"]
    # A file that has a header after all is named, not read as a row of labels.
    recipe, out = _recipe(ws, tmp_path / "r.yaml", data={
        "train": headerless, "eval": str(ws.dev), "column_names": ["sentence", "label"]})
    _fails_cleanly(capsys, ["check", recipe], out, "data.column_names: the first row of",
                   "is a header naming those very columns")


CONFIG_CASES = {
    "unknown_loss_option": (
        {"distill": {"logit_loss_options": {"alpha": 1.0}}}, ["distill", "check"],
        "distill.logit_loss_options.alpha: kd_kl has no option 'alpha'; it takes no options"),
    "loss_for_another_feature": (
        {"distill": {"matches": [{"feature": "hidden", "student_layer": 1, "teacher_layer": 1,
                                  "loss": "attention_kl"}]}}, ["distill", "check"],
        "distill.matches[0].loss: 'attention_kl' compares attention maps, but this hidden "
        "match compares hidden states; the losses for hidden states are ['hidden_cos', "
        "'hidden_mmd', 'hidden_mse', 'pkd']"),
    "unknown_metric": (
        {"train": {"metric_for_best": "acc"}}, ["distill", "finetune", "check"],
        "train.metric_for_best: 'acc' is not a metric evaluation reports; choose one of "
        "['accuracy', 'f1', 'mcc']"),
    "small_teacher_embedding": (
        {"teacher": "small"}, ["distill", "check"],
        f"teacher.model: the model's input embedding has 10 rows but the tokenizer it reads "
        f"has {len(TEXT_VOCAB)} tokens (ids 10..{len(TEXT_VOCAB) - 1} have no row)"),
    "small_student_embedding": (
        {"student": "small"}, ["finetune", "check --finetune"],
        "student.pretrained: the model's input embedding has 10 rows"),
}


@pytest.mark.parametrize(("case", "verb"), [(case, verb) for case, (_, verbs, _) in
                                            sorted(CONFIG_CASES.items()) for verb in verbs])
def test_bad_config_is_one_line_before_training(case, verb, ws, tmp_path, capsys):
    sections, _, message = CONFIG_CASES[case]
    if sections.get("teacher") == "small":
        sections = {"teacher": ws.small}
    elif sections.get("student") == "small":
        sections = {"student": {"pretrained": str(ws.small)}}
    recipe, out = _recipe(ws, tmp_path / "r.yaml", **sections)
    _fails_cleanly(capsys, [*verb.split()[:1], recipe, *verb.split()[1:]], out, message)


def test_check_reports_rows_and_labels_per_split_and_drops_empty_texts(ws, tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood movie\t1\n \t0\nbad film\t0\nawful\t0\n",
                     encoding="utf-8")
    recipe, out = _recipe(ws, tmp_path / "r.yaml", data={"train": str(train)})
    capsys.readouterr()
    assert main(["check", recipe]) == 0
    stdout = capsys.readouterr().out
    assert _table_row(stdout, "data") == ["data", "split", "rows", "negative", "positive"]
    assert _table_row(stdout, "train") == ["train", "3", "2", "1"]
    assert _table_row(stdout, "eval")[:2] == ["eval", "12"]
    assert "note: data.train: dropped 1 of 4 rows with an empty text (sentence)" in stdout
    assert not out.exists()


def test_head_averaging_is_said_by_check_and_at_the_start_of_the_run(ws, tmp_path, capsys):
    recipe, out = _recipe(ws, tmp_path / "r.yaml", student={"config": {
        "num_layers": 1, "hidden_size": 32, "num_heads": 4, "intermediate_size": 64}},
        distill={"matches": [{"feature": "attention", "student_layer": 1,
                              "teacher_layer": 2}]})
    note = ("note: distill.matches[0]: the student has 4 attention heads and teacher 0 2; "
            "attention_mse compares their head-averaged maps")
    capsys.readouterr()
    assert main(["check", recipe]) == 0
    assert note in capsys.readouterr().out
    assert main(["distill", recipe]) == 0
    stdout = capsys.readouterr().out
    assert note in stdout
    assert stdout.index(note) < stdout.index("distill: ")  # before training starts
    assert (out / "results.json").is_file()


def test_evaluate_refuses_a_model_whose_embedding_misses_tokenizer_ids(ws, tmp_path, capsys):
    recipe, out = _recipe(ws, tmp_path / "r.yaml")
    capsys.readouterr()
    assert main(["evaluate", str(ws.small), "--data", recipe, "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "IndexError" not in err, err
    assert "MODEL_DIR: the model's input embedding has 10 rows" in err
