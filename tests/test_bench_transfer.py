"""Smoke run of the transfer section of scripts/bench.py on tiny models.

The real section (MPNet-base teacher, MiniLM students, SST-2, ~3 h) is
`python scripts/bench.py --section transfer`; this runs every row, C included, for one
seed and two steps, with a teacher whose tokenizer differs from the students'.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny import (
    SENTIMENT_LABELS,
    TEXT_VOCAB,
    load_script,
    write_tiny_classifier,
)
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from textdistill.bench import report, transfer_collect, transfer_plan, transfer_report
from textdistill.bench.findings import pct
from textdistill.bench.transfer_data import Split, check_split, split_texts, write_split
from textdistill.data.transfer import text_key

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = 120
# The teacher's vocabulary: the students' words in another order, [PAD] at 1.
OTHER_VOCAB = ("[UNK]", "[PAD]", "[SEP]", "[CLS]", "[MASK]",
               *sorted(set(TEXT_VOCAB) - {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"},
                       reverse=True))


def write_other_base(directory: Path) -> Path:
    """A tiny 12-block BERT (C keeps 4 of its blocks) reading text through its own
    tokenizer."""
    directory.mkdir(parents=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(OTHER_VOCAB) + "\n", encoding="utf-8")
    BertTokenizer(vocab=str(vocab), pad_token="[PAD]").save_pretrained(directory)
    torch.manual_seed(5)
    names = list(SENTIMENT_LABELS)
    config = BertConfig(vocab_size=len(OTHER_VOCAB), hidden_size=16, num_hidden_layers=12,
                        num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=128, num_labels=2, pad_token_id=1,
                        id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def smoke(bench_workspace):
    """One smoke run of the section; (argv, runs, docs, sst2 dir, the transfer object)."""
    tmp = bench_workspace
    teacher = write_other_base(tmp / "teacher-base")
    student = write_tiny_classifier(tmp / "student-base", num_layers=6)
    runs, docs = tmp / "runs", tmp / "docs"
    argv = ["--smoke", "--section", "transfer", "--with-c", "--transfer-teacher", str(teacher),
            "--transfer-student", str(student), "--runs", str(runs), "--docs", str(docs)]
    assert load_script("bench").main(argv) == 0
    result = json.loads((docs / "benchmarks" / "results.json").read_text())
    return argv, runs, docs, tmp / "sst2", result["transfer"]


def test_the_split_is_disjoint_and_covers_the_training_set(smoke, tmp_path):
    _, runs, _, sst2, transfer = smoke
    (written,) = runs.glob("transfer-data-*")
    folder = shutil.copytree(written, tmp_path / written.name)
    split = Split(folder / "labelled.tsv", folder / "dev.tsv", folder / "unlabelled.tsv",
                  {"labelled": 40, "dev": 30,
                   "unlabelled": transfer["setup"]["unlabelled_pool"]}, SENTENCES, 0)
    texts = split_texts(split)
    keys = {name: {text_key([t]) for t in part} for name, part in texts.items()}
    assert sum(len(k) for k in keys.values()) == len(set().union(*keys.values()))
    whole = [line.split("\t")[0] for line in
             (sst2 / "train.tsv").read_text().splitlines()[1:]]
    assert set().union(*keys.values()) == {text_key([t]) for t in whole}
    assert transfer["setup"]["train_size"] == SENTENCES
    assert transfer["setup"]["duplicates_dropped"] == SENTENCES - len(set().union(*keys.values()))
    assert (folder / "unlabelled.tsv").read_text().splitlines()[0] == "sentence"
    # The same call makes the same files; a corrupted split is refused.
    assert write_split(sst2 / "train.tsv", tmp_path, 40, 30, transfer_plan.SPLIT_SEED).sizes \
        == split.sizes
    check_split(split, sst2 / "train.tsv")
    split.labelled.write_text(split.labelled.read_text() + f"{texts['dev'][0]}\t1\n")
    with pytest.raises(RuntimeError, match="transfer split"):
        check_split(split, sst2 / "train.tsv")


def test_the_transfer_object_has_every_row_and_figure(smoke):
    transfer = smoke[-1]
    teacher = transfer["teacher"]
    for key in ("accuracy", "latency_ms_b1", "latency_ms_b32"):
        assert isinstance(teacher[key], float), key
    assert isinstance(teacher["params"], int) and 0.0 <= teacher["accuracy"] <= 1.0
    assert transfer["labelled"] == 40
    assert transfer["unlabelled"] == transfer["setup"]["unlabelled_pool"] > 0
    assert set(transfer["rows"]) == set(transfer_plan.ROWS)
    for name, students in transfer["rows"].items():
        assert set(students) == ({"mpnet4"} if name == "C" else {"minilm3", "minilm6"}), name
        for row in students.values():
            assert 0.0 <= row["accuracy_mean"] <= 1.0 and row["accuracy_std"] == 0.0
            assert row["seeds"] == [42] and len(row["dev_accuracies"]) == 1
            for key in ("retention_pct", "latency_ms_b32", "speedup_b32"):
                assert isinstance(row[key], float), key
    minilm3 = transfer["rows"]["B"]["minilm3"]
    assert minilm3["params"] < transfer["rows"]["B"]["minilm6"]["params"]
    assert minilm3["layers"] == [0, 2, 4]
    # P and B read L + U; B_aug also one augmented copy of each of them; A only L.
    pool = transfer["setup"]["unlabelled_pool"]
    assert minilm3["train_examples_by_source"] == {"labelled": 40, "transfer": pool,
                                                   "augmented": 0}
    aug = transfer["rows"]["B_aug"]["minilm3"]["train_examples_by_source"]
    assert aug["augmented"] == 40 + pool
    assert transfer["rows"]["A"]["minilm3"]["train_examples_by_source"]["transfer"] == 0
    # Each choice is the best candidate on D, the first on a tie.
    for students in transfer["choices"].values():
        for choice in students.values():
            dev = choice["dev_accuracy"]
            assert choice["chosen"] == max(dev, key=lambda c: (dev[c], -list(dev).index(c)))
    assert set(transfer["choices"]["B"]["minilm3"]["dev_accuracy"]) == \
        set(transfer_plan.CANDIDATES["B"])
    assert set(transfer["goals"]) == set(transfer_collect.BARS)
    assert all(isinstance(g["met"], bool) for g in transfer["goals"].values())


def test_the_page_shows_the_numbers_of_the_json(smoke):
    _, _, docs, _, transfer = smoke
    page = (docs / "benchmarks.md").read_text()
    assert page == transfer_report.page(transfer)
    assert f"| {pct(transfer['teacher']['accuracy'])} | 100% |" in page
    for students in transfer["rows"].values():
        for row in students.values():
            assert f"| {pct(row['accuracy_mean'])} | {row['retention_pct']:.1f}% |" in page
    speed = transfer["goals"]["speedup_b32_3layer"]
    assert f"| >= {speed['bar']:g}x | {speed['measured']:.2f}x |" in page
    assert "Smoke run" in page and "was not run" not in page


def test_the_readme_block_is_the_transfer_headline_of_a_real_run(smoke):
    import copy

    transfer = smoke[4]
    readme = ("intro\n" + report.TRANSFER_START + "\nNot yet measured.\n"
              + report.TRANSFER_END + "\nrest\n")
    # A smoke run checks the script, not the method: README keeps what it had.
    assert report.with_readme_block(readme, {"transfer": transfer}) == readme
    real = copy.deepcopy(transfer)
    real["setup"]["smoke"] = False
    written = report.with_readme_block(readme, {"transfer": real})
    assert written.startswith("intro\n") and written.endswith("\nrest\n")
    assert "Not yet measured" not in written
    for students in real["rows"].values():
        for row in students.values():
            assert f"| {pct(row['accuracy_mean'])}" in written
            assert f"| {row['speedup_b32']:.2f}x |" in written


def test_a_second_run_trains_nothing(smoke):
    argv, runs, docs, _, transfer = smoke
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    assert len(stamps) == transfer["cost"]["runs"]
    assert load_script("bench").main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")} == stamps
    # P and B share one teacher-logit cache, B_aug has its own; C runs the live teacher.
    assert len(list((runs / transfer_plan.CACHE_DIR).glob("logits-*.safetensors"))) == 2


def test_without_a_transfer_object_the_section_is_not_yet_measured():
    assert "Not yet measured" in "\n".join(transfer_report.section(None))
    committed = json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text())
    if "transfer" not in committed:
        assert "Not yet measured" in report.markdown(committed, "benchmark-studies.md")


def test_the_full_section_is_planned_within_its_budget():
    split = Split(Path("L"), Path("D"), Path("U"),
                  {"labelled": 2_000, "dev": 1_000, "unlabelled": 63_978}, 67_349, 371)
    expected = transfer_plan.expected_minutes(transfer_plan.TransferBudget(), split, 3, False)
    assert set(expected) == {"teacher", "teacher_logits", "latency", "A", "P", "B", "B_aug"}
    assert sum(expected.values()) <= transfer_collect.BUDGET_MINUTES


class _SavedScores:
    """A sweep whose saved rows are ``scores`` (row key -> dev accuracy)."""

    def __init__(self, runs: Path):
        self.runs, self.teacher_dir = runs, transfer_plan.teacher_dir(runs)
        self.scores: dict[str, float] = {}

    def result(self, row):
        score = self.scores.get(row.key)
        return None if score is None else {"best_eval": {"accuracy": score}}


def test_choices_on_the_first_seed_then_the_other_seeds(tmp_path):
    sweep = _SavedScores(tmp_path)
    split = Split(tmp_path / "L.tsv", tmp_path / "D.tsv", tmp_path / "U.tsv",
                  {"labelled": 40, "dev": 30, "unlabelled": 50}, 120, 0)
    plan = transfer_plan.TransferPlan(sweep, split, transfer_plan.TransferBudget(),
                                      transfer_plan.Models("teacher", "student"))
    first = plan.entries()
    assert {e.row.seed for e in first} == {42} and "B_aug" not in {e.name for e in first}
    for entry in first:  # A ties (the first candidate wins), B's best is T2
        sweep.scores[entry.row.key] = 0.9 if entry.candidate == "T2" else 0.8
    later = [e for e in plan.entries() if e not in first]
    chosen = {(e.name, e.student, e.candidate) for e in later}
    assert chosen == {(name, student, candidate) for student in transfer_plan.STUDENTS
                      for name, candidate in (("A", "steps250"), ("P", "hard0.5"),
                                              ("B", "T2"), ("B_aug", "T2"))}
    assert sorted({e.row.seed for e in later}) == [42, 43, 44]
    aug = next(e for e in later if e.name == "B_aug")
    assert aug.row.recipe["data"]["augment"]["copies"] == transfer_plan.AUG_COPIES
    assert aug.row.recipe["distill"]["temperature"] == 2.0
    assert aug.row.recipe["teacher"] == {"model": str(sweep.teacher_dir), "tokenizer": "own"}


def test_a_partial_section_says_which_students_have_not_run(smoke):
    import copy

    partial = copy.deepcopy(smoke[4])
    for students in partial["rows"].values():
        students.pop("minilm6", None)
    page = "\n".join(transfer_report.section(partial))
    assert "Not yet run: every row of MiniLM, 6 blocks (`minilm6`)" in page
    assert "for the rows that ran (minilm6 not yet)" in page
    assert "Not yet run" not in "\n".join(transfer_report.section(smoke[4]))
    words = partial["setup"]["mean_words"]
    assert f"average {words['labelled']:.1f}" in page
    assert "Not yet run: every row of MiniLM, 6 blocks" in "\n".join(
        transfer_report.headline(partial))


def _weighted(lengths: dict, accuracies: list) -> float:
    """The accuracy over all sentences, from per-bucket accuracies weighted by counts."""
    pairs = [(n, a) for n, a in zip(lengths["sentences"], accuracies) if n]
    return sum(n * a for n, a in pairs) / sum(n for n, _ in pairs)


def test_accuracy_by_length_adds_up_to_each_rows_validation_accuracy(smoke):
    _, _, docs, _, transfer = smoke
    lengths = transfer["by_length"]
    assert lengths["buckets"] == transfer_collect.length_buckets()
    assert sum(lengths["sentences"]) == transfer["setup"]["eval_examples"]
    assert _weighted(lengths, lengths["teacher"]) == pytest.approx(
        transfer["teacher"]["accuracy"], abs=1e-9)
    assert {name: set(s) for name, s in lengths["rows"].items()} == \
        {name: set(s) for name, s in transfer["rows"].items()}
    for name, students in transfer["rows"].items():
        for student, row in students.items():
            assert _weighted(lengths, lengths["rows"][name][student]) == pytest.approx(
                row["accuracy_mean"], abs=1e-9), (name, student)
    # The tiny sentences are all short: the longer buckets are empty, shown as n/a.
    assert [n > 0 for n in lengths["sentences"]] == [True, False, False, False]
    page = (docs / "benchmarks.md").read_text()
    assert "### Validation accuracy by sentence length" in page
    assert f"| teacher | {pct(lengths['teacher'][0])} | n/a | n/a | n/a |" in page


def test_accuracy_by_length_buckets_the_saved_notes_by_words(tmp_path):
    from textdistill.bench.dev_split import VALIDATION_NOTE

    validation = tmp_path / "validation.tsv"
    sentences = [" ".join(["w"] * n) for n in (3, 10, 11, 20, 25, 31, 40)]
    validation.write_text("sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in sentences))

    def run(name: str, correct: list[int]) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / VALIDATION_NOTE).write_text(json.dumps(
            {"accuracy": sum(correct) / len(correct), "examples": 7, "correct": correct}))
        return str(tmp_path / name)

    teacher = run("teacher", [1, 1, 1, 0, 1, 1, 0])
    rows = {"B": {"minilm3": {"run_dirs": [run("s42", [1, 0, 1, 1, 0, 0, 0]),
                                           run("s43", [1, 1, 0, 1, 1, 1, 0])]}}}
    lengths = transfer_collect.by_length(rows, Path(teacher), validation)
    assert lengths == {"buckets": ["<=10", "11-20", "21-30", ">30"],
                       "sentences": [2, 2, 1, 2], "teacher": [1.0, 0.5, 1.0, 0.5],
                       "rows": {"B": {"minilm3": [0.75, 0.75, 0.5, 0.25]}}}


def test_a_note_without_the_sentences_is_evaluated_once_then_keeps_them(smoke, tmp_path,
                                                                       monkeypatch):
    from textdistill.bench import dev_split

    _, _, _, sst2, transfer = smoke
    validation = sst2 / "validation.tsv"
    saved_run = Path(transfer["rows"]["B"]["minilm3"]["run_dirs"][0])
    run = tmp_path / "run"
    shutil.copytree(saved_run / "best", run / "best")
    full = json.loads((saved_run / dev_split.VALIDATION_NOTE).read_text())
    note = run / dev_split.VALIDATION_NOTE
    note.write_text(json.dumps({"accuracy": full["accuracy"], "examples": full["examples"]}))
    calls = []
    real = dev_split.run_model
    monkeypatch.setattr(dev_split, "run_model", lambda *args: calls.append(args) or real(*args))
    # The accuracy alone is read from the older note as it is.
    assert dev_split.validation_accuracy(run, validation) == (full["accuracy"],
                                                              full["examples"])
    assert calls == []
    first = dev_split.validation_correct(run, validation)
    assert dev_split.validation_correct(run, validation) == first == full["correct"]
    assert len(calls) == 1
    assert json.loads(note.read_text()) == full


def test_the_length_table_renders_from_the_json_and_nothing_without_it(smoke):
    import copy

    transfer = copy.deepcopy(smoke[4])
    transfer["by_length"] = {
        "buckets": ["<=10", "11-20", "21-30", ">30"], "sentences": [150, 340, 275, 107],
        "teacher": [0.96, 0.92, 0.9, 0.88],
        "rows": {"A": {"minilm3": [0.8, 0.7, 0.6, 0.5]},
                 "B": {"minilm3": [0.912, 0.828, 0.765, 0.704],
                       "minilm6": [0.864, 0.874, 0.9, 0.88]}}}
    page = "\n".join(transfer_report.section(transfer))
    assert ("| model | <=10 words (150) | 11-20 words (340) | 21-30 words (275) "
            "| >30 words (107) |") in page
    assert "| teacher | 96.00 | 92.00 | 90.00 | 88.00 |" in page
    assert "| A: labels of L only (MiniLM, 3 blocks) | 80.00 | 70.00 | 60.00 | 50.00 |" in page
    assert "| B's retention of the teacher (MiniLM, 3 blocks) | 95.0% | 90.0% | 85.0% | " \
        "80.0% |" in page
    assert "| B's retention of the teacher (MiniLM, 6 blocks) | 90.0% | 95.0% | 100.0% | " \
        "100.0% |" in page
    words = transfer["setup"]["mean_words"]
    assert f"L, D and U average {words['labelled']:.1f}" in page
    assert ("B's retention of the teacher is 95.0% on sentences of <=10 words and 80.0% on "
            ">30 (MiniLM, 3 blocks); 90.0% on sentences of <=10 words and 100.0% on >30 "
            "(MiniLM, 6 blocks): the gap to the teacher grows with length for MiniLM, "
            "3 blocks only.") in page
    transfer["by_length"]["rows"]["B"].pop("minilm6")
    assert "the gap to the teacher grows with length." in "\n".join(
        transfer_report.section(transfer))
    # Older JSON has no by_length: no table, the rest as before.
    del transfer["by_length"]
    assert "by sentence length" not in "\n".join(transfer_report.section(transfer))
