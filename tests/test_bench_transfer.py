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
