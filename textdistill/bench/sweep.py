"""A sweep: recipe rows run through :func:`textdistill.runner.run_recipe`, with reuse.

Each row trains in ``<runs>/<row.key>``. A finished row is reused while what it trains
is unchanged: its saved, resolved ``recipe.yaml`` trains the same as the row's recipe
resolved now (output section aside), and, for a row built on the sweep's teacher, that
teacher has the same fingerprint as when the row ran. So an interrupted sweep resumes,
and a changed recipe, library default or retrained teacher reruns exactly the rows it
touches.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import recipes

# Files the benchmarks write next to a row's run (its teacher's fingerprint, its
# agreement with the teacher): they describe that run, so a rerun deletes them.
NOTE_PREFIX = "bench-"
TEACHER_STAMP = NOTE_PREFIX + "teacher.json"


@dataclass
class Row:
    """One training run of a benchmark."""

    key: str           # its run directory under the sweep's runs folder
    student: str       # the student it measures (A..E, or a study's name)
    variant: str       # what distinguishes it within its student
    mode: str          # finetune | distill
    recipe: dict[str, Any]
    seed: int
    layers: tuple[int, ...] = recipes.THREE_LAYERS


def _resolved(recipe: dict[str, Any], source: str):
    from ..recipe import recipe_from_dict

    return recipe_from_dict(recipe, source=source)


def trained(recipe: dict[str, Any], mode: str, source: str) -> dict[str, Any]:
    """What ``recipe`` trains once resolved (defaults filled in), local files by their
    real path."""
    spec = recipes.trained_part(_resolved(recipe, source).to_dict(), mode)
    data = spec.get("data") or {}
    for key, value in data.items():
        if isinstance(value, str) and os.path.isfile(value):
            data[key] = os.path.realpath(value)
    return spec


class Sweep:
    """Rows trained in ``runs``; ``teacher_dir`` is the fine-tuned teacher rows build on."""

    def __init__(self, runs: Path, teacher_dir: Path):
        self.runs = runs
        self.teacher_dir = teacher_dir
        self.timings: dict[str, float] = {}
        self._fingerprint: str | None = None

    def teacher_fingerprint(self) -> str:
        """The teacher-logit cache's fingerprint of the teacher (no data): a retrained
        teacher at the same path gets another one."""
        if self._fingerprint is None:
            from ..build import load_classifier
            from ..teacher_cache import teacher_fingerprint

            model = load_classifier(str(self.teacher_dir), "teacher")
            # No data and no padding: the teacher's part of the fingerprint alone.
            self._fingerprint = teacher_fingerprint([model], "", None)
        return self._fingerprint

    def uses_teacher(self, row: Row) -> bool:
        return recipes.teacher_of(row.recipe) == str(self.teacher_dir)

    def result(self, row: Row) -> dict | None:
        """The saved results of ``row``, if what was trained is what ``row`` asks for."""
        from ..recipe import read_recipe_file

        out = self.runs / row.key
        results, saved_recipe = out / "results.json", out / "recipe.yaml"
        if not (results.is_file() and saved_recipe.is_file()):
            return None
        saved = trained(read_recipe_file(saved_recipe), row.mode, str(saved_recipe))
        if saved != trained(row.recipe, row.mode, f"bench:{row.key}"):
            return None
        if self.uses_teacher(row):
            stamp = out / TEACHER_STAMP
            if not stamp.is_file() or json.loads(stamp.read_text()).get(
                    "teacher_fingerprint") != self.teacher_fingerprint():
                return None
        return json.loads(results.read_text())

    def accuracy(self, row: Row) -> float | None:
        result = self.result(row)
        return None if result is None else result["final_eval"]["accuracy"]

    def execute(self, row: Row) -> dict:
        """Train ``row`` (whatever was saved) and stamp it with its teacher."""
        from ..runner import run_recipe

        print(f"\n=== {row.key}: {row.student} ({row.variant}), {row.mode}", flush=True)
        out = self.runs / row.key
        for note in out.glob(NOTE_PREFIX + "*"):
            note.unlink()
        if row.key == self.teacher_dir.parent.name:
            self._fingerprint = None  # this run replaces the teacher's weights
        start = time.perf_counter()
        results = run_recipe(_resolved(row.recipe, f"bench:{row.key}"), row.mode)
        self.timings[row.key] = time.perf_counter() - start
        if self.uses_teacher(row):
            (out / TEACHER_STAMP).write_text(
                json.dumps({"teacher_fingerprint": self.teacher_fingerprint()}) + "\n")
        print(f"=== {row.key}: accuracy {results['final_eval']['accuracy']:.4f} "
              f"({self.timings[row.key]:.0f} s)", flush=True)
        return results

    def ensure(self, row: Row) -> dict:
        """``row``'s results: saved ones when still valid, else from a new run."""
        saved = self.result(row)
        if saved is not None:
            print(f"{row.key}: reusing {self.runs / row.key}", flush=True)
            return saved
        return self.execute(row)

    def run(self, plan: Callable[[], list[Row]],
            wanted: Callable[[Row], bool] = lambda row: True) -> None:
        """Run every wanted row of ``plan()`` that has no valid saved result. The plan is
        asked again after each run: later rows may depend on finished ones."""
        done: set[str] = set()
        while True:
            pending = [row for row in plan() if row.key not in done and wanted(row)
                       and self.result(row) is None]
            if not pending:
                return
            self.execute(pending[0])
            done.add(pending[0].key)
