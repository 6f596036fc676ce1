"""Smoke runs of scripts/bench.py and scripts/bench_studies.py on a tiny model.

The real benchmark (MiniLM-L6, 20,000 SST-2 sentences, ~2 h) is `make bench`; these run
every row for a few steps on a small SST-2-shaped data set so that the scripts cannot rot.
The engine benchmark has its own test (test_bench_engine.py), so the runs here skip it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from tiny import load_script, write_tiny_classifier

from textdistill.bench import plan, recipes, studies
from textdistill.bench.dev_split import VALIDATION_NOTE

SENTENCES = 260  # the students' subset in a smoke run (200) and a complement for the studies
# The transfer section has its own smoke test (test_bench_transfer.py).
SAME_DATA = ["--section", "same-data"]


@pytest.fixture(scope="module")
def smoke(bench_workspace):
    """One smoke run of the benchmark; (argv, runs, docs, the results JSON)."""
    tmp = bench_workspace
    base = write_tiny_classifier(tmp / "base", num_layers=6)
    runs, docs = tmp / "runs", tmp / "docs"
    argv = ["--smoke", "--base-model", str(base), "--runs", str(runs), "--docs", str(docs)]
    assert load_script("bench").main(argv + SAME_DATA + ["--skip-speed"]) == 0
    return argv, runs, docs, json.loads((docs / "benchmarks" / "results.json").read_text())


def test_smoke_run_writes_every_row_and_the_page(smoke):
    _, runs, docs, result = smoke
    teacher = result["teacher"]
    assert 0.0 <= teacher["accuracy"] <= 1.0 and teacher["layers"] == 6
    assert sorted(result["students"]) == list("ABCDE")
    for key, student in result["students"].items():
        assert 0.0 <= student["accuracy_mean"] <= 1.0, key
        # Fidelity: one agreement with the teacher per seed, a share of the eval set.
        assert len(student["teacher_agreements"]) == len(student["seeds"]) == 1
        assert all(0.0 <= a <= 1.0 for a in student["teacher_agreements"])
    assert result["students"]["E"]["params"] < result["students"]["C"]["params"] \
        < teacher["params"]
    assert result["device"] and result["versions"]["torch"] == torch.__version__
    # Both A inits, every B grid point and every C variant ran; D and E follow C's winner.
    assert len(result["variants"]["A"]) == 2
    assert [v["variant"].rsplit("-", 1)[0] for v in result["variants"]["B"]] == \
        [f"T{t:g}-hard{h:g}" for t, h, _ in plan.B_GRID]
    assert len(result["variants"]["C"]) == len(plan.C_VARIANTS)
    # A distillation row marked augN trains on the subset plus N copies of each sentence.
    for variant in result["variants"]["B"]:
        row = json.loads(Path(variant["run_dirs"][0], "results.json").read_text())
        copies = plan.GRID_COPIES if variant["variant"].endswith("-aug3") else 0
        assert row["train_examples"] == (1 + copies) * result["setup"]["train_subset"]
    # Every student row evaluated on the dev split, outside the subset; the JSON reports
    # validation, read once from each row's final model and saved beside it.
    setup = result["setup"]
    assert setup["choice_split"] == "dev" and setup["dev_examples"] == recipes.SMOKE_DEV
    dev_files = set()
    for variants in result["variants"].values():
        for v in variants:
            for run, acc, dev in zip(v["run_dirs"], v["accuracies"], v["dev_accuracies"]):
                saved = json.loads(Path(run, "results.json").read_text())
                dev_files.add(yaml.safe_load(Path(run, "recipe.yaml").read_text())["data"]["eval"])
                assert saved["final_eval"]["accuracy"] == dev
                assert saved["eval_examples"] == recipes.SMOKE_DEV
                note = json.loads(Path(run, VALIDATION_NOTE).read_text())
                assert (note["accuracy"], note["examples"]) == (acc, setup["eval_examples"])
                assert sum(note["correct"]) / len(note["correct"]) == acc
    assert len(dev_files) == 1 and Path(dev_files.pop()).parent.name.startswith(plan.DEV_FOLDER)
    # The reading is the trainer's own final evaluation: on the teacher, whose runs
    # evaluate on validation, both agree.
    from textdistill.bench.dev_split import validation_accuracy

    teacher_run = Path(teacher["run_dir"])
    final = json.loads((teacher_run / "results.json").read_text())
    assert validation_accuracy(teacher_run, runs.parent / "sst2" / "validation.tsv",
                               final["final_step"]) == \
        pytest.approx((teacher["accuracy"], setup["eval_examples"]))
    (teacher_run / VALIDATION_NOTE).unlink()  # the benchmark reads the teacher's otherwise
    page = (docs / "benchmarks.md").read_text()
    assert f"{100 * teacher['accuracy']:.2f}" in page and "not yet measured" in page
    assert "reads the seed-42 rows' accuracy at the end of training on a dev split D" in page
    assert (docs / "benchmarks" / "accuracy.png").stat().st_size > 0
    assert (docs / "benchmarks" / "tradeoff.png").stat().st_size > 0


def test_a_second_run_trains_nothing_and_report_renders_the_saved_json(smoke):
    argv, runs, docs, result = smoke
    bench = load_script("bench")
    stamps = {p: p.stat().st_mtime_ns
              for p in [*runs.glob("*/results.json"), *runs.glob(f"*/{VALIDATION_NOTE}")]}
    assert len(list(runs.glob(f"*/{VALIDATION_NOTE}"))) == 10  # every student row's
    assert bench.main(argv + SAME_DATA + ["--skip-speed"]) == 0
    # Nothing trained again, and validation was not read again.
    assert {p: p.stat().st_mtime_ns
            for p in [*runs.glob("*/results.json"), *runs.glob(f"*/{VALIDATION_NOTE}")]} \
        == stamps
    # The grid and the seeds share one teacher-logit cache: one file per transfer set.
    assert len(list((runs / plan.CACHE_DIR).glob("logits-*.safetensors"))) == 2

    page = docs / "benchmarks.md"
    before = page.read_text()
    page.unlink()
    assert bench.main(argv + SAME_DATA + ["--report"]) == 0
    assert page.read_text() == before


def test_studies_smoke_run(smoke):
    argv, runs, docs, _ = smoke
    assert load_script("bench_studies").main(argv) == 0
    result = json.loads((docs / "benchmarks" / "studies.json").read_text())
    assert set(result["arms"]) == set(studies.ARMS)
    for arm in result["arms"].values():
        assert len(arm["accuracies"]) == 1 and 0.0 <= arm["accuracies"][0] <= 1.0
    assert result["arms"]["room/kd"]["layers"] == list(recipes.TWO_LAYERS)
    assert result["arms"]["heldout/kd"]["layers"] == list(recipes.THREE_LAYERS)
    for teacher in result["teachers"].values():
        stats = teacher["on_student_subset"]
        assert stats["examples"] == recipes.SMOKE_EXAMPLES
        assert 0.0 <= stats["gold_agreement"] <= 1.0 and 0.5 <= stats["mean_confidence"] <= 1.0
    # The held-out teacher learnt exactly the training sentences outside the subset.
    held = json.loads((runs / studies.HELDOUT / "results.json").read_text())
    assert held["train_examples"] == SENTENCES - recipes.SMOKE_EXAMPLES
    from textdistill.data.loading import load_raw_splits
    from textdistill.data.sst2 import sst2_data_config

    subset = load_raw_splits(sst2_data_config(
        runs.parent / "sst2", max_train_samples=recipes.SMOKE_EXAMPLES))["train"]
    complement = (runs / f"{studies.HELDOUT}-data" / "train.tsv").read_text().splitlines()[1:]
    whole = (runs.parent / "sst2" / "train.tsv").read_text().splitlines()[1:]
    assert sorted(complement + [f"{s}\t{y}" for s, y in zip(subset["sentence"],
                                                            subset["label"])]) == sorted(whole)
    assert (docs / "benchmark-studies.md").read_text().count("held-out teacher") >= 2
