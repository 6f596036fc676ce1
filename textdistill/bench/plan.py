"""The SST-2 benchmark's rows (``make bench``): students A-E on one teacher.

Students, 3 layers made of teacher layers 0, 2 and 4 unless said:

* **A**  no KD, labels only; two inits: pretrained layers and fine-tuned teacher layers.
  The stronger (on the first seed) is the baseline and gets the other seeds too.
* **B**  logit KD only (``kd_kl``), the grid ``B_GRID``.
* **C**  B's best T and weights + hidden-state and attention MSE on the uniform mapping,
  on B's best transfer set; the intermediate weight of ``C_VARIANTS``, annealed.
* **D**  C with Decoupled KD (``dkd``) as the logit loss.
* **E**  a 2-layer student (teacher layers 0 and 3), the recipe of C.

Every student row evaluates on the dev split D (:func:`write_dev`: training sentences
outside the subset), and every choice reads the first seed's accuracy on D at the end of
training; the page reports validation, read once per finished row
(:func:`textdistill.bench.dev_split.validation_accuracy`). Rows after B's grid depend on
finished rows (the best variant so far), so the plan is re-made after every run
(:meth:`textdistill.bench.sweep.Sweep.run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dev_split, recipes
from .sweep import Row, Sweep

SEEDS = (42, 43, 44)
# B's grid: (temperature, hard-label weight, augmented copies of each training sentence).
# T and the hard weight are tuned on the transfer set C-E use (3 copies: 3 beat 1 in
# earlier runs of this benchmark); the no-augmentation row shows what the copies are worth.
GRID_COPIES = 3
B_GRID = [(2.0, 0.5, GRID_COPIES), (4.0, 0.5, GRID_COPIES), (2.0, 0.0, GRID_COPIES),
          (2.0, 0.5, 0)]
# C's intermediate weight, annealed linearly to 0: intermediate matching weighs most
# early, prediction-layer KD alone at the end (a soft form of TinyBERT's two stages).
# At the start the student's summed hidden + attention MSE (~1.0) is about 2/3 of its KD
# loss (~1.6, T=2), so 0.1 makes the matches a nudge and 1 an equal partner.
C_VARIANTS = [("w0.1-anneal", 0.1, 0.0), ("w1-anneal", 1.0, 0.0)]
TEACHER_KEY = "teacher"
CACHE_DIR = "teacher_cache"
DEV_FOLDER = "same-data-dev"
DEV_FILE = "dev.tsv"


def transfer_set(copies: int) -> str:
    return f"aug{copies}" if copies else "noaug"


@dataclass(frozen=True)
class DevSplit:
    """The same-data section's dev split D."""

    path: Path
    size: int
    pool: int  # distinct training sentences outside the subset, D's source


def _subset_and_dev(budget: recipes.Budget, dev_file: Path | None) -> tuple[list[str],
                                                                           list[str]]:
    """(the students' training sentences, ``dev_file``'s), as the library reads them."""
    from ..data.config import DataConfig
    from ..data.loading import load_raw_splits
    from ..schema import from_dict

    section = recipes.data_section(budget, budget.subset,
                                   eval_file=None if dev_file is None else str(dev_file))
    splits = load_raw_splits(from_dict(DataConfig, section, "data"))
    return list(splits["train"]["sentence"]), list(splits["eval"]["sentence"])


def write_dev(budget: recipes.Budget, runs: Path) -> DevSplit:
    """D: ``budget.dev`` distinct training sentences outside the students' subset, drawn
    with ``recipes.DEV_SEED``, in ``<runs>/same-data-dev-<digest>/dev.tsv``. The teacher
    learnt the whole training set, D included.

    Raises:
        ValueError: there is no local SST-2 copy, or too few sentences outside the subset.
        RuntimeError: the file, as the rows read it, shares a text with the subset.
    """
    from ..data.transfer import text_key

    if budget.sst2_dir is None:
        raise ValueError("the dev split is carved from the local SST-2 copy's training "
                         "file; set $TEXTDISTILL_SST2_DIR")
    subset = {text_key([s]) for s in _subset_and_dev(budget, None)[0]}
    rows, _ = dev_split.distinct_rows(budget.sst2_dir / "train.tsv")
    outside = [row for row in rows if text_key([row[0]]) not in subset]
    if len(outside) < budget.dev:
        raise ValueError(f"{budget.sst2_dir / 'train.tsv'}: {len(outside)} distinct "
                         f"sentences outside the subset cannot hold a dev split of "
                         f"{budget.dev}")
    dev = dev_split.shuffled(outside, recipes.DEV_SEED)[:budget.dev]
    folder = dev_split.write_folder(runs, DEV_FOLDER,
                                    {DEV_FILE: dev_split.tsv_text(dev, labelled=True)})
    trained, evaluated = _subset_and_dev(budget, folder / DEV_FILE)
    if {text_key([s]) for s in trained} & {text_key([s]) for s in evaluated}:
        raise RuntimeError(f"{folder / DEV_FILE} shares sentences with the students' subset")
    return DevSplit(folder / DEV_FILE, len(dev), len(outside))


class RowFactory:
    """Rows trained in ``sweep``'s folder from its teacher, on ``budget``; student rows
    evaluate on ``dev_file`` (None: validation)."""

    def __init__(self, sweep: Sweep, budget: recipes.Budget, base_model: str,
                 dev_file: Path | None = None):
        self.sweep = sweep
        self.budget = budget
        self.base_model = base_model
        self.dev_file = None if dev_file is None else str(dev_file)

    def key(self, name: str) -> str:
        """A row's run directory; another budget (epochs) gets its own rows beside the
        published ones, sharing the teacher and its logit cache."""
        epochs = self.budget.epochs
        return name if epochs == recipes.EPOCHS else f"{name}-{epochs:g}ep"

    def teacher_row(self, variant: str, train_file: str | None = None) -> Row:
        """The fine-tuning run of the sweep's teacher (``teacher_dir``'s parent)."""
        run = self.sweep.teacher_dir.parent
        recipe = recipes.teacher_recipe(self.budget, self.base_model, run,
                                        train_file=train_file)
        return Row(run.name, "teacher", variant, "finetune", recipe, SEEDS[0])

    def label_row(self, name: str, variant: str, source: str, seed: int,
                  layers: tuple[int, ...] = recipes.THREE_LAYERS, student: str = "A") -> Row:
        """No KD: ``source``'s blocks ``layers`` on the subset's labels; its run directory
        is ``<name>-s<seed>``."""
        key = self.key(f"{name}-s{seed}")
        recipe = recipes.label_recipe(self.budget, source, layers, seed, self.sweep.runs / key,
                                      eval_file=self.dev_file)
        return Row(key, student, variant, "finetune", recipe, seed, layers)

    def kd_row(self, student: str, variant: str, distill: dict[str, Any], copies: int,
               seed: int, layers: tuple[int, ...] = recipes.THREE_LAYERS) -> Row:
        key = self.key(f"{student}-{variant}-s{seed}")
        runs = self.sweep.runs
        recipe = recipes.kd_recipe(self.budget, str(self.sweep.teacher_dir), layers, distill,
                                   copies, seed, runs / key, runs / CACHE_DIR,
                                   eval_file=self.dev_file)
        return Row(key, student, variant, "distill", recipe, seed, layers)


def teacher_dir(runs: Path) -> Path:
    return runs / TEACHER_KEY / "best"


class BenchmarkPlan:
    """Students A-E; ``seeds`` are the ones a chosen variant runs (the first picks it, on
    the factory's dev split)."""

    def __init__(self, factory: RowFactory, seeds: tuple[int, ...] = SEEDS):
        self.factory = factory
        self.sweep = factory.sweep
        self.seeds = seeds

    def teacher_row(self) -> Row:
        return self.factory.teacher_row("fine-tuned MiniLM-L6")

    def rows(self) -> list[Row]:
        rows = self.a_rows()
        for temperature, hard, copies in B_GRID:
            name = f"T{temperature:g}-hard{hard:g}-{transfer_set(copies)}"
            rows.append(self.factory.kd_row("B", name, recipes.logit_kd(temperature, hard),
                                            copies, SEEDS[0]))
        best_b = self.best_variant("B", rows)
        if best_b is None:  # C..E wait for B's grid
            return rows
        return rows + self.later_rows(best_b, rows)

    def a_rows(self) -> list[Row]:
        """Both inits on the first seed; the stronger one on every seed."""
        sources = {"pretrained": self.factory.base_model, "teacher": str(self.sweep.teacher_dir)}

        def row(init: str, seed: int) -> Row:
            return self.factory.label_row(f"A-{init}", f"init: {init} layers", sources[init],
                                          seed)

        rows = [row(init, SEEDS[0]) for init in sources]
        best = self.best_variant("A", rows)
        if best is not None:
            init = best.key.split("-")[1]
            rows += [row(init, seed) for seed in self.seeds[1:]]
        return rows

    def later_rows(self, best_b: Row, rows: list[Row]) -> list[Row]:
        """C on B's best, then D and E on C's best, then the best 3-layer on every seed."""
        kd = recipes.logit_kd(**recipes.logit_kd_of(best_b.recipe))
        copies = recipes.copies_of(best_b.recipe)
        new = [self.factory.kd_row("C", f"{name}-{transfer_set(copies)}",
                                   recipes.with_intermediate(kd, weight, end), copies, SEEDS[0])
               for name, weight, end in C_VARIANTS]
        best_c = self.best_variant("C", rows + new)
        if best_c is None:
            return new
        c_distill = recipes.distill_of(best_c.recipe)
        new.append(self.factory.kd_row("D", best_c.variant, recipes.with_dkd(c_distill),
                                       copies, SEEDS[0]))
        new.append(self.factory.kd_row("E", best_c.variant, dict(c_distill), copies, SEEDS[0],
                                       layers=recipes.TWO_LAYERS))
        best = self.best_three_layer(rows + new)
        if best is not None:
            new += [self.factory.kd_row(best.student, best.variant,
                                        recipes.distill_of(best.recipe),
                                        recipes.copies_of(best.recipe), seed)
                    for seed in self.seeds[1:]]
        return new

    def dev_accuracy(self, row: Row) -> float | None:
        """``row``'s accuracy at the end of training on its eval file, D; None until it
        ran."""
        return self.sweep.accuracy(row)

    def best_variant(self, student: str, rows: list[Row]) -> Row | None:
        """The first-seed row of ``student`` with the best dev accuracy (the first on a
        tie); None until all ran."""
        mine = [r for r in rows if r.student == student and r.seed == SEEDS[0]]
        best = dev_split.best_index([self.dev_accuracy(r) for r in mine])
        return None if best is None else mine[best]

    def best_three_layer(self, rows: list[Row]) -> Row | None:
        candidates = [self.best_variant(s, rows) for s in ("B", "C", "D")]
        if any(c is None for c in candidates):
            return None
        return candidates[dev_split.best_index([self.dev_accuracy(c) for c in candidates])]
