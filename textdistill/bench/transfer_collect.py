"""The transfer section of ``make bench``: run it, and its JSON (``results.json``'s
``transfer`` object) from saved rows.

Rows are chosen on D (:mod:`.transfer_plan`); SST-2's validation set is read once per run
of a chosen row, from its ``best/``, and saved beside it (``bench-validation.json``),
with which sentences it got right: accuracy by sentence length (:func:`by_length`) is
computed from those notes.
"""

from __future__ import annotations

import statistics
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import machine, recipes
from . import transfer_plan as tp
from .collect import mean_std
from .dev_split import validation_accuracy, validation_correct
from .latency import SEQ_LEN, alternating
from .sweep import Row, Sweep
from .transfer_data import Split, split_texts, write_split

# The goals of issue 15, checked on the numbers (goals()).
BARS = {"b_over_a_pts_3layer": 3.0, "b_minus_p_pts_3layer": 0.0,
        "b_minus_p_pts_6layer": 0.0, "retention_pct_6layer": 98.0,
        "retention_pct_3layer": 97.0, "speedup_b32_3layer": 8.0}
BUDGET_MINUTES = 180
# Word-count edges of the by-length buckets: <=10, 11-20, 21-30, >30 words. L, D and U
# average about 10 words (setup.mean_words), so the first bucket is the length the rows
# trained on; on SST-2 each bucket holds 105 to 340 of the 872 validation sentences.
LENGTH_EDGES = (10, 20, 30)


def run_section(runs: Path, sst2_dir: Path, budget: tp.TransferBudget, models: tp.Models,
                seeds: tuple[int, ...], with_c: bool,
                wanted: Callable[[Row], bool] = lambda row: True) -> dict:
    """Train what is missing, measure latency, and collect the ``transfer`` object."""
    split = write_split(sst2_dir / "train.tsv", runs, budget.labelled, budget.dev,
                        tp.SPLIT_SEED)
    sweep = Sweep(runs, tp.teacher_dir(runs))
    plan = tp.TransferPlan(sweep, split, budget, models, seeds, with_c)
    teacher = sweep.ensure(plan.teacher_row())
    sweep.run(plan.rows, wanted)
    start = time.perf_counter()
    latency = latencies(plan)
    latency_s = time.perf_counter() - start
    print(f"transfer: latency measured in {latency_s:.0f} s", flush=True)
    result = collect(plan, teacher, latency, sst2_dir / "validation.tsv")
    result["cost"]["latency_s"] = latency_s
    for part, seconds in result["cost"]["rows_s"].items():
        print(f"transfer: {part} rows took {seconds / 60:.1f} min (expected "
              f"{result['setup']['expected_minutes'].get(part, 0):.0f})", flush=True)
    return result


def first_runs(plan: tp.TransferPlan) -> dict[str, Path]:
    """A finished run of each student (its architecture is what latency measures)."""
    out: dict[str, Path] = {}
    for entry in plan.entries():
        if entry.student not in out and plan.sweep.result(entry.row) is not None:
            out[entry.student] = plan.sweep.runs / entry.row.key
    return out


def latencies(plan: tp.TransferPlan) -> dict[str, dict]:
    from ..build import load_classifier

    models = {"teacher": load_classifier(str(plan.sweep.teacher_dir), "teacher")}
    for student, run in first_runs(plan).items():
        models[student] = load_classifier(str(run / "best"), student)
    return alternating(models, plan.budget.smoke)


def setup(plan: tp.TransferPlan, eval_examples: int, validation_file: Path) -> dict:
    """What every row shares, the candidates and bars, and the expected cost."""
    budget, split = plan.budget, plan.split
    return {
        "labelled": budget.labelled, "dev": budget.dev,
        "unlabelled_pool": split.sizes["unlabelled"],
        "unlabelled_samples": budget.unlabelled_samples, "split_seed": tp.SPLIT_SEED,
        "train_size": split.train_size, "duplicates_dropped": split.duplicates_dropped,
        "eval_examples": eval_examples, "seeds": list(plan.seeds),
        "batch_size": recipes.BATCH_SIZE, "lr": recipes.LR, "teacher_lr": tp.TEACHER_LR,
        "teacher_steps": budget.teacher_steps(), "kd_steps": budget.steps(budget.kd_steps),
        "evaluations": tp.EVALUATIONS, "augment_copies": tp.AUG_COPIES,
        "max_length": recipes.MAX_LENGTH, "latency_seq_len": SEQ_LEN,
        "teacher_model": plan.models.teacher, "student_model": plan.models.student,
        "students": {k: (list(v) if v is not None else None) for k, v in tp.STUDENTS.items()},
        "c_student": {"key": tp.C_STUDENT, "layers": list(tp.C_LAYERS)},
        "with_c": plan.with_c, "candidates": tp.CANDIDATES, "bars": dict(BARS),
        "budget_minutes": BUDGET_MINUTES, "smoke": budget.smoke,
        "expected_minutes": tp.expected_minutes(budget, split, len(plan.seeds), plan.with_c),
        "c_expected_minutes": tp.expected_minutes(budget, split, len(plan.seeds), True)["C"],
        "mean_words": mean_words(plan.split, validation_file),
    }


def mean_words(split: Split, validation_file: Path) -> dict[str, float]:
    """Mean words per text of L, D, U and validation: SST-2's training rows include the
    phrases of its parse trees, its validation rows are whole sentences."""
    texts = split_texts(split)
    texts["validation"] = validation_texts(validation_file)
    return {part: statistics.fmean(len(t.split()) for t in rows) for part, rows in texts.items()}


def validation_texts(validation_file: Path) -> list[str]:
    """The sentences of a GLUE TSV, in file order (the library reads it unquoted, in the
    same order)."""
    return [line.split("\t")[0] for line in
            validation_file.read_text(encoding="utf-8").splitlines()[1:]]


def length_buckets() -> list[str]:
    """The names of the buckets of :data:`LENGTH_EDGES`, shortest first."""
    spans = zip(LENGTH_EDGES, LENGTH_EDGES[1:])
    return [f"<={LENGTH_EDGES[0]}", *(f"{low + 1}-{high}" for low, high in spans),
            f">{LENGTH_EDGES[-1]}"]


def by_length(rows: dict, teacher_run: Path, validation_file: Path) -> dict:
    """Validation accuracy per bucket of sentence length (words as :func:`mean_words` counts
    them) of the teacher and of every chosen row (the mean over its seeds' runs), read
    from the runs' validation notes; None for a bucket without sentences."""
    buckets = [bisect_left(LENGTH_EDGES, len(text.split()))
               for text in validation_texts(validation_file)]
    sentences = [buckets.count(b) for b in range(len(LENGTH_EDGES) + 1)]

    def accuracies(runs: list[Path]) -> list[float | None]:
        right = []
        for run in runs:
            correct = validation_correct(run, validation_file)
            if len(correct) != len(buckets):
                raise RuntimeError(f"{run}: its validation note has {len(correct)} sentences, "
                                   f"{validation_file} {len(buckets)}")
            right.append([sum(c for c, b in zip(correct, buckets) if b == bucket)
                          for bucket in range(len(sentences))])
        return [statistics.fmean(hits[bucket] / count for hits in right) if count else None
                for bucket, count in enumerate(sentences)]

    return {"buckets": length_buckets(), "sentences": sentences,
            "teacher": accuracies([teacher_run]),
            "rows": {name: {student: accuracies([Path(d) for d in row["run_dirs"]])
                            for student, row in students.items()}
                     for name, students in rows.items()}}


def summarize(plan: tp.TransferPlan, entries: list[tp.Entry], teacher: dict,
              arch: dict, validation_file: Path) -> dict:
    """A chosen candidate over its finished seeds."""
    runs = [plan.sweep.runs / e.row.key for e in entries]
    results = [plan.sweep.result(e.row) for e in entries]
    accs = [validation_accuracy(run, validation_file)[0] for run in runs]
    mean, std = mean_std(accs)
    return {
        "candidate": entries[0].candidate, "seeds": [e.row.seed for e in entries],
        "accuracies": accs, "accuracy_mean": mean, "accuracy_std": std,
        "dev_accuracies": [r["best_eval"]["accuracy"] for r in results],
        "retention_pct": 100 * mean / teacher["accuracy"], "params": arch["params"],
        "latency_ms_b1": arch["latency_ms_b1"], "latency_ms_b32": arch["latency_ms_b32"],
        "speedup_b32": teacher["latency_ms_b32"] / arch["latency_ms_b32"],
        "train_time_s": statistics.fmean(r["train_time_s"] for r in results),
        "wall_time_s": statistics.fmean(r["wall_time_s"] for r in results),
        "train_steps": results[0]["final_step"], "best_steps": [r["best_step"] for r in results],
        "train_examples_by_source": results[0]["train_examples_by_source"],
        "layers": list(entries[0].row.layers), "run_dirs": [str(run) for run in runs],
    }


def chosen_rows(plan: tp.TransferPlan, teacher: dict, latency: dict,
                validation_file: Path) -> tuple[dict, dict]:
    """(rows.<name>.<student> of the chosen candidates, choices.<name>.<student>)."""
    entries = plan.entries()
    rows: dict[str, dict] = {}
    choices: dict[str, dict] = {}
    for name in tp.ROWS:
        for student in {e.student: None for e in entries if e.name == name}:
            chosen = plan.choice(name, student, entries)
            if chosen is None:
                continue
            mine = [e for e in entries if e.name == name and e.student == student]
            choices.setdefault(name, {})[student] = {"chosen": chosen, "dev_accuracy": {
                e.candidate: plan.dev_accuracy(e) for e in mine if e.row.seed == plan.seeds[0]}}
            done = [e for e in mine if e.candidate == chosen
                    and plan.sweep.result(e.row) is not None]
            rows.setdefault(name, {})[student] = summarize(plan, done, teacher,
                                                           latency[student], validation_file)
    return rows, choices


def collect(plan: tp.TransferPlan, teacher_result: dict, latency: dict,
            validation_file: Path) -> dict:
    """The ``transfer`` object, from saved rows only."""
    teacher_run = plan.sweep.teacher_dir.parent
    accuracy, examples = validation_accuracy(teacher_run, validation_file)
    t_lat = latency["teacher"]
    teacher = {"accuracy": accuracy, "dev_accuracy": teacher_result["best_eval"]["accuracy"],
               "params": t_lat["params"], "layers": t_lat["layers"],
               "latency_ms_b1": t_lat["latency_ms_b1"], "latency_ms_b32": t_lat["latency_ms_b32"],
               "train_time_s": teacher_result["train_time_s"],
               "train_steps": teacher_result["final_step"],
               "best_step": teacher_result["best_step"], "run_dir": str(teacher_run)}
    rows, choices = chosen_rows(plan, teacher, latency, validation_file)
    sources = next((row["train_examples_by_source"] for row in rows.get("B", {}).values()),
                   {"labelled": plan.budget.labelled, "transfer": None})
    saved = [r for r in (plan.sweep.result(e.row) for e in plan.entries()) if r is not None]
    rows_s: dict[str, float] = {}
    for entry in plan.entries():
        result = plan.sweep.result(entry.row)
        if result is not None:
            rows_s[entry.name] = rows_s.get(entry.name, 0.0) + result["wall_time_s"]
    out: dict[str, Any] = {
        "command": "python scripts/bench.py --section transfer",
        "setup": setup(plan, examples, validation_file), "teacher": teacher,
        "labelled": sources["labelled"], "unlabelled": sources["transfer"],
        "rows": rows, "choices": choices, "latency": latency,
        "by_length": by_length(rows, teacher_run, validation_file),
        "cost": {"teacher_s": teacher_result["wall_time_s"], "rows_s": rows_s,
                 "runs": len(saved) + 1},
        "device": machine.device(), "versions": machine.versions(),
    }
    out["goals"] = goals(out)
    return out


def goals(result: dict) -> dict[str, dict]:
    """Each bar of ``setup.bars`` with its measured value (None while a row is missing)."""
    rows, bars = result["rows"], result["setup"]["bars"]

    def mean(name: str, student: str) -> float | None:
        row = rows.get(name, {}).get(student)
        return None if row is None else row["accuracy_mean"]

    def gap(a: str, b: str, student: str) -> float | None:
        first, second = mean(a, student), mean(b, student)
        return None if first is None or second is None else 100 * (first - second)

    b3, b6 = rows.get("B", {}).get("minilm3"), rows.get("B", {}).get("minilm6")
    measured = {
        "b_over_a_pts_3layer": gap("B", "A", "minilm3"),
        "b_minus_p_pts_3layer": gap("B", "P", "minilm3"),
        "b_minus_p_pts_6layer": gap("B", "P", "minilm6"),
        "retention_pct_6layer": b6["retention_pct"] if b6 else None,
        "retention_pct_3layer": b3["retention_pct"] if b3 else None,
        "speedup_b32_3layer": b3["speedup_b32"] if b3 else None,
    }
    return {key: {"bar": bars[key], "measured": value,
                  "met": None if value is None else value >= bars[key]}
            for key, value in measured.items()}
