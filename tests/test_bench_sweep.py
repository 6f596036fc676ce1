"""The benchmarks' sweep (textdistill/bench/sweep.py) and the SST-2 benchmark's plan.

A finished row is reused while its resolved recipe and its teacher are unchanged, and
trained again when either changes; the plan adds rows as the rows they depend on finish.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from tiny import write_sentiment_tsv, write_tiny_classifier

from textdistill.bench import plan, recipes
from textdistill.bench.sweep import Row, Sweep


def _results_stamp(sweep: Sweep, row: Row) -> int:
    return (sweep.runs / row.key / "results.json").stat().st_mtime_ns


def test_a_finished_row_is_reused_until_its_recipe_or_teacher_changes(tmp_path):
    data = tmp_path / "sst2"
    write_sentiment_tsv(data, n_train=48, n_eval=16)
    runs = tmp_path / "runs"
    teacher = write_tiny_classifier(runs / "teacher" / "best", num_layers=6)
    sweep = Sweep(runs, teacher)
    factory = plan.RowFactory(sweep, recipes.Budget(smoke=True, sst2_dir=data), str(teacher))
    row = factory.label_row("A-teacher", "init: teacher layers", str(teacher), 42)
    assert sweep.uses_teacher(row) and sweep.result(row) is None

    sweep.run(lambda: [row])
    trained = _results_stamp(sweep, row)
    assert sweep.result(row)["final_step"] == recipes.SMOKE_STEPS
    sweep.run(lambda: [row])
    assert _results_stamp(sweep, row) == trained

    # A fine-tuning row does not use its distill section: a change there (e.g. of the
    # library's distill defaults) does not make it stale.
    saved_recipe = runs / row.key / "recipe.yaml"
    spec = yaml.safe_load(saved_recipe.read_text())
    spec["distill"]["hard_weight"] = 0.123
    saved_recipe.write_text(yaml.safe_dump(spec))
    assert sweep.result(row) is not None

    # Another learning rate is another row: it trains again, and the old one is stale.
    changed = dataclasses.replace(row, recipe={**row.recipe,
                                               "train": {**row.recipe["train"], "lr": 3e-4}})
    assert sweep.result(changed) is None
    sweep.run(lambda: [changed])
    assert _results_stamp(sweep, changed) != trained
    assert sweep.result(changed) is not None and sweep.result(row) is None

    # The same teacher path, retrained (other weights): rows built on it are stale.
    write_tiny_classifier(teacher, num_layers=6, seed=1)
    assert Sweep(runs, teacher).result(changed) is None


class ScoredSweep(Sweep):
    """A sweep whose rows have the accuracies a test gives them, without training."""

    def __init__(self, runs: Path):
        super().__init__(runs, plan.teacher_dir(runs))
        self.scores: dict[str, float] = {}

    def accuracy(self, row: Row) -> float | None:
        return self.scores.get(row.key)


def test_the_plan_follows_the_best_rows_as_they_finish(tmp_path):
    sweep = ScoredSweep(tmp_path)
    budget = recipes.Budget(sst2_dir=tmp_path)
    bench = plan.BenchmarkPlan(plan.RowFactory(sweep, budget, "base"))

    def keys() -> list[str]:
        return [row.key for row in bench.rows()]

    b_grid = ["B-T2-hard0.5-aug3-s42", "B-T4-hard0.5-aug3-s42", "B-T2-hard0-aug3-s42",
              "B-T2-hard0.5-noaug-s42"]
    assert keys() == ["A-pretrained-s42", "A-teacher-s42", *b_grid]

    # The stronger A init gets the other seeds.
    sweep.scores.update({"A-pretrained-s42": 0.80, "A-teacher-s42": 0.82})
    assert keys()[2:4] == ["A-teacher-s43", "A-teacher-s44"]

    # C starts from B's best: its temperature, hard weight and transfer set.
    sweep.scores.update(dict(zip(b_grid, (0.83, 0.85, 0.84, 0.81))))
    c_rows = {row.key: row for row in bench.rows() if row.student == "C"}
    assert list(c_rows) == ["C-w0.1-anneal-aug3-s42", "C-w1-anneal-aug3-s42"]
    c_distill = c_rows["C-w1-anneal-aug3-s42"].recipe["distill"]
    assert (c_distill["temperature"], c_distill["hard_weight"]) == (4.0, 0.5)
    assert c_distill["intermediate_weight"] == {"start": 1.0, "end": 0.0, "kind": "linear"}
    assert recipes.copies_of(c_rows["C-w1-anneal-aug3-s42"].recipe) == 3

    # D and E take C's best recipe; then the best 3-layer variant gets the other seeds.
    sweep.scores.update({"C-w0.1-anneal-aug3-s42": 0.84, "C-w1-anneal-aug3-s42": 0.86})
    rows = {row.key: row for row in bench.rows()}
    d, e = rows["D-w1-anneal-aug3-s42"], rows["E-w1-anneal-aug3-s42"]
    assert d.recipe["distill"]["logit_loss"] == "dkd"
    assert e.layers == recipes.TWO_LAYERS and e.recipe["distill"] == c_distill
    sweep.scores.update({d.key: 0.85, e.key: 0.80})
    assert keys()[-2:] == ["C-w1-anneal-aug3-s43", "C-w1-anneal-aug3-s44"]

    # KD rows state every weight and schedule: the library's defaults, chosen from this
    # benchmark, can change without changing what a row measured.
    for row in bench.rows():
        if row.mode == "distill":
            assert set(recipes.KD_PINNED) <= set(row.recipe["distill"]), row.key
    # Logit-only rows share one teacher-logit cache; rows with matches need the teacher.
    assert recipes.caches_teacher_logits(rows["B-T4-hard0.5-aug3-s42"].recipe)
    assert not recipes.caches_teacher_logits(d.recipe)


def _finish(sweep: Sweep, row: Row, dev: float, validation: float) -> None:
    """``row`` as if it had run: ``dev`` its final accuracy on its eval file, ``validation``
    its saved validation note (and agreement with the teacher)."""
    import json

    from textdistill.bench.dev_split import VALIDATION_NOTE
    from textdistill.bench.fidelity import AGREEMENT_FILE
    from textdistill.bench.sweep import TEACHER_STAMP

    out = sweep.runs / row.key
    out.mkdir(parents=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(row.recipe))
    (out / "results.json").write_text(json.dumps({
        "final_eval": {"accuracy": dev}, "final_step": 3, "train_time_s": 1.0,
        "train_examples": 10, "wall_time_s": 1.0}))
    (out / VALIDATION_NOTE).write_text(json.dumps({"accuracy": validation, "examples": 16}))
    stamp = {"teacher_fingerprint": sweep.teacher_fingerprint()}
    (out / TEACHER_STAMP).write_text(json.dumps(stamp))
    (out / AGREEMENT_FILE).write_text(json.dumps({**stamp, "agreement": 0.9}))


def test_choices_read_the_dev_split_not_validation(tmp_path):
    """D and validation disagree on A's init: the plan and the results JSON follow D, and
    report the validation figures."""
    from textdistill.bench import collect
    from textdistill.bench.fidelity import Fidelity

    data = tmp_path / "sst2"
    write_sentiment_tsv(data, n_train=260, n_eval=16)
    runs = tmp_path / "runs"
    budget = recipes.Budget(smoke=True, sst2_dir=data)
    dev = plan.write_dev(budget, runs)
    teacher = write_tiny_classifier(runs / "teacher" / "best", num_layers=6)
    sweep = Sweep(runs, teacher)
    bench = plan.BenchmarkPlan(plan.RowFactory(sweep, budget, str(teacher), dev.path))
    pretrained, from_teacher = bench.a_rows()
    assert pretrained.recipe["data"]["eval"] == from_teacher.recipe["data"]["eval"] \
        == str(dev.path)
    _finish(sweep, pretrained, dev=0.90, validation=0.70)
    _finish(sweep, from_teacher, dev=0.80, validation=0.95)

    assert bench.best_variant("A", [pretrained, from_teacher]) == pretrained
    assert [row.key for row in bench.a_rows()[2:]] == ["A-pretrained-s43", "A-pretrained-s44"]
    arch = {"params": 1, "latency_ms_b1": 1.0, "latency_ms_b32": 1.0,
            "samples_per_second_b32": 1.0}
    chosen, variants, _ = collect.students(
        bench, Fidelity(sweep, bench.teacher_row().recipe), {"final_eval": {"accuracy": 0.9}},
        {"3-layer": arch}, data / "validation.tsv")
    assert chosen["A"]["variant"] == pretrained.variant
    assert chosen["A"]["accuracies"] == [0.70] and chosen["A"]["dev_accuracies"] == [0.90]


def test_the_dev_split_is_outside_the_students_subset(tmp_path):
    from textdistill.data.loading import load_raw_splits
    from textdistill.data.sst2 import sst2_data_config

    data = tmp_path / "sst2"
    write_sentiment_tsv(data, n_train=260, n_eval=16)
    budget = recipes.Budget(smoke=True, sst2_dir=data)
    dev = plan.write_dev(budget, tmp_path / "runs")
    assert dev == plan.write_dev(budget, tmp_path / "runs")  # the same file again
    subset = load_raw_splits(sst2_data_config(data, max_train_samples=budget.subset))["train"]
    lines = dev.path.read_text().splitlines()[1:]
    assert len(lines) == dev.size == recipes.SMOKE_DEV
    assert not {line.split("\t")[0] for line in lines} & set(subset["sentence"])
    whole = set((data / "train.tsv").read_text().splitlines()[1:])
    assert set(lines) <= whole  # with their gold labels
    # Too small a pool for D is refused, not silently shrunk.
    write_sentiment_tsv(tmp_path / "small", n_train=230, n_eval=16)
    with pytest.raises(ValueError, match="cannot hold a dev split of 40"):
        plan.write_dev(recipes.Budget(smoke=True, sst2_dir=tmp_path / "small"),
                       tmp_path / "runs")
