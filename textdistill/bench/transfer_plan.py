"""The transfer benchmark's rows: few labels, a strong teacher, unlabeled text.

A teacher of its own tokenizer (MPNet-base) is fine-tuned on the labelled set L; the
students, pretrained MiniLM blocks, read the text through theirs:

* **A**      labels of L only;
* **P**      pseudo-labels (``pseudo_ce``) on L + U, plus the hard loss on L;
* **B**      soft KD (``kd_kl``) on L + U, plus the hard loss on L;
* **B_aug**  B's choice, with augmented copies of every training text;
* **C**      (``with_c``) an MPNet student of 4 teacher blocks, same tokenizer, with hidden
  and attention matches on top of B's loss.

Every knob is chosen on the dev set D with the first seed, among ``CANDIDATES``; then the
chosen candidate runs the other seeds, and validation is read once, for those. Every row
evaluates on D ``EVALUATIONS`` times and keeps the best (its steps are chosen on D too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import recipes
from .dev_split import best_index
from .sweep import Row, Sweep
from .transfer_data import Split

SEEDS = (42, 43, 44)
SPLIT_SEED = 42
ROWS = ("A", "P", "B", "B_aug", "C")
# Student key -> the pretrained student's blocks kept (None: all).
STUDENTS: dict[str, tuple[int, ...] | None] = {"minilm3": recipes.THREE_LAYERS, "minilm6": None}
C_STUDENT = "mpnet4"
C_LAYERS = (0, 4, 7, 11)  # 4 of the teacher's 12 blocks, first and last included
# Every choice made on D: per row, candidate name -> its settings. B_aug takes B's choice.
CANDIDATES: dict[str, dict[str, dict[str, float]]] = {
    "A": {"steps250": {"steps": 250}, "steps500": {"steps": 500}},
    "P": {"hard0.5": {"hard_weight": 0.5}},
    "B": {"T1": {"temperature": 1.0, "hard_weight": 0.5},
          "T2": {"temperature": 2.0, "hard_weight": 0.5},
          "T4": {"temperature": 4.0, "hard_weight": 0.5}},
    "C": {"T2-w0.1": {"temperature": 2.0, "hard_weight": 0.5, "intermediate_weight": 0.1}},
}
EVALUATIONS = 4
AUG_COPIES = 1
TEACHER_LR = 3e-5
TEACHER_KEY = "transfer-teacher"
CACHE_DIR = "transfer-cache"
# The cost model of `expected_minutes`: seconds per optimizer step of 32 on 2 CPU cores
# (MiniLM from the same-data benchmark's rows; MPNet-base's training step 5.3x, its
# forward 5.6x MiniLM-L6's, measured for issue 15), teacher-forward sentences per second
# at SST-2's lengths, and what each distillation run spends outside its steps (the
# teacher's evaluation on D and its latency profile).
STEP_SECONDS = {"minilm3": 0.23, "minilm6": 0.385, "teacher": 2.05, C_STUDENT: 1.9}
TEACHER_SENTENCES_PER_S = 28.0
KD_RUN_OVERHEAD_S = 60.0
LATENCY_S = 180.0


@dataclass(frozen=True)
class TransferBudget:
    """What every row of the section shares."""

    labelled: int = 2_000
    dev: int = 1_000
    unlabelled_samples: int | None = 12_000  # of U, seeded; None: all of U
    kd_steps: int = 600
    teacher_epochs: float = 4.0
    steps_cap: int | None = None              # smoke: every run trains this many steps
    smoke: bool = False

    def steps(self, wanted: int) -> int:
        return self.steps_cap if self.steps_cap is not None else wanted

    def teacher_steps(self) -> int:
        return self.steps(math.ceil(self.teacher_epochs * self.labelled / recipes.BATCH_SIZE))


SMOKE_BUDGET = TransferBudget(labelled=40, dev=30, unlabelled_samples=None, steps_cap=2,
                              smoke=True)


@dataclass(frozen=True)
class Models:
    """The section's base models: the teacher's and the students'."""

    teacher: str
    student: str


@dataclass(frozen=True)
class Entry:
    """A row of the section: ``name`` (A..C) of ``student`` with ``candidate``."""

    name: str
    student: str
    candidate: str
    row: Row


class TransferPlan:
    """The section's rows in ``sweep``'s folder, on ``split``."""

    def __init__(self, sweep: Sweep, split: Split, budget: TransferBudget, models: Models,
                 seeds: tuple[int, ...] = SEEDS, with_c: bool = False):
        self.sweep, self.split, self.budget, self.models = sweep, split, budget, models
        self.seeds, self.with_c = seeds, with_c

    def teacher_row(self) -> Row:
        data = recipes.transfer_data(self.split.labelled, self.split.dev)
        recipe = recipes.transfer_teacher_recipe(
            self.models.teacher, data, self.budget.teacher_steps(), EVALUATIONS, TEACHER_LR,
            self.sweep.teacher_dir.parent)
        return Row(TEACHER_KEY, "teacher", "fine-tuned on L", "finetune", recipe, SEEDS[0])

    def entries(self) -> list[Entry]:
        """Every row whose recipe is known now: candidates first, then the chosen ones'
        other seeds (and B_aug once B is chosen)."""
        out: list[Entry] = []
        for student in STUDENTS:
            for name in ("A", "P", "B"):
                out += self._chosen_and_seeds(name, student)
            chosen_b = self.choice("B", student, out)
            if chosen_b is not None:
                out += [self.entry("B_aug", student, chosen_b, seed) for seed in self.seeds]
        if self.with_c:
            out += self._chosen_and_seeds("C", C_STUDENT)
        return out

    def rows(self) -> list[Row]:
        return [entry.row for entry in self.entries()]

    def _chosen_and_seeds(self, name: str, student: str) -> list[Entry]:
        first = [self.entry(name, student, candidate, self.seeds[0])
                 for candidate in CANDIDATES[name]]
        chosen = self.choice(name, student, first)
        if chosen is None:
            return first
        return first + [self.entry(name, student, chosen, seed) for seed in self.seeds[1:]]

    def dev_accuracy(self, entry: Entry) -> float | None:
        """The best of ``entry``'s evaluations on D; None until it ran."""
        result = self.sweep.result(entry.row)
        return None if result is None else result["best_eval"]["accuracy"]

    def choice(self, name: str, student: str, entries: list[Entry]) -> str | None:
        """The candidate of row ``name`` with the best dev accuracy on the first seed (the
        first in table order on a tie); None until every candidate ran."""
        mine = [e for e in entries if e.name == name and e.student == student
                and e.row.seed == self.seeds[0]]
        best = best_index([self.dev_accuracy(e) for e in mine])
        return None if best is None else mine[best].candidate

    def entry(self, name: str, student: str, candidate: str, seed: int) -> Entry:
        key = f"transfer-{name}-{student}-{candidate}-s{seed}"
        out = self.sweep.runs / key
        knobs = CANDIDATES["B" if name == "B_aug" else name][candidate]
        if name == "A":
            recipe = recipes.transfer_label_recipe(
                self.student_spec(student), recipes.transfer_data(self.split.labelled,
                                                                  self.split.dev),
                self.budget.steps(int(knobs["steps"])), EVALUATIONS, seed, out)
            return Entry(name, student, candidate, Row(key, name, candidate, "finetune",
                                                       recipe, seed, self.layers(student)))
        recipe = recipes.transfer_kd_recipe(
            str(self.sweep.teacher_dir), self.student_spec(student),
            recipes.transfer_data(self.split.labelled, self.split.dev,
                                  unlabelled=self.split.unlabelled,
                                  unlabelled_samples=self.budget.unlabelled_samples,
                                  copies=AUG_COPIES if name == "B_aug" else 0),
            self.distill(name, knobs), self.budget.steps(self.budget.kd_steps), EVALUATIONS,
            seed, out, self.sweep.runs / CACHE_DIR)
        return Entry(name, student, candidate, Row(key, name, candidate, "distill", recipe,
                                                   seed, self.layers(student)))

    @staticmethod
    def distill(name: str, knobs: dict[str, float]) -> dict[str, Any]:
        if name == "P":
            return recipes.pseudo_labels(knobs["hard_weight"])
        kd = recipes.logit_kd(knobs["temperature"], knobs["hard_weight"])
        if name == "C":
            return recipes.with_intermediate(kd, knobs["intermediate_weight"], 0.0)
        return kd

    def student_spec(self, student: str) -> dict[str, Any]:
        if student == C_STUDENT:
            return {"from_teacher": list(C_LAYERS)}
        return recipes.pretrained_student(self.models.student, STUDENTS[student])

    @staticmethod
    def layers(student: str) -> tuple[int, ...]:
        return C_LAYERS if student == C_STUDENT else STUDENTS[student] or ()


def teacher_dir(runs: Path) -> Path:
    return runs / TEACHER_KEY / "best"


def expected_minutes(budget: TransferBudget, split: Split, seeds: int,
                     with_c: bool) -> dict[str, float]:
    """What each part of the section should cost on 2 CPU cores (``STEP_SECONDS``)."""
    pool = split.sizes["unlabelled"]
    transfer = min(pool, budget.unlabelled_samples or pool) + budget.labelled
    forward = (EVALUATIONS + 1) * (budget.dev + 872) / TEACHER_SENTENCES_PER_S
    kd_steps = budget.steps(budget.kd_steps)
    seconds = {
        "teacher": budget.teacher_steps() * STEP_SECONDS["teacher"] + forward,
        # One cache for P and B, one for B_aug's (1 + copies) times larger set.
        "teacher_logits": (2 + AUG_COPIES) * transfer / TEACHER_SENTENCES_PER_S,
        "latency": LATENCY_S,
    }
    for name in ("A", "P", "B", "B_aug"):
        runs = _runs_of(name, seeds)
        for student in STUDENTS:
            steps = [budget.steps(int(k["steps"])) for k in CANDIDATES["A"].values()] \
                if name == "A" else [kd_steps] * runs
            if name == "A":  # the candidates, then the longest on the other seeds
                steps += [max(steps)] * (seeds - 1)
            overhead = 0.0 if name == "A" else KD_RUN_OVERHEAD_S * runs
            seconds[name] = seconds.get(name, 0.0) + sum(steps) * STEP_SECONDS[student] \
                + overhead
    if with_c:
        seconds["C"] = _runs_of("C", seeds) * (kd_steps * STEP_SECONDS[C_STUDENT]
                                                + KD_RUN_OVERHEAD_S)
    return {part: value / 60 for part, value in seconds.items()}


def _runs_of(name: str, seeds: int) -> int:
    """Training runs of a row per student: its candidates, then its other seeds."""
    return seeds if name == "B_aug" else len(CANDIDATES[name]) + seeds - 1
