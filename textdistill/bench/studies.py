"""Why logit KD gains so little over the label-only student A (``make bench-studies``).

Two controlled studies on top of the SST-2 benchmark, sharing its teacher, subset, budget
and rows (:mod:`textdistill.bench.plan`):

* **Room to gain.** A 2-layer student (teacher layers 0 and 3) trails the teacher by more
  than the 3-layer A: labels only (A2) against logit KD with the benchmark's B recipe
  (B2, ``LOGIT_KD``). If KD were held back only by a lack of room, B2 would beat A2.
* **A teacher that never saw the students' sentences.** The benchmark's teacher learnt
  the whole training set, the students' subset included, so on it its soft targets mostly
  repeat the gold labels. Here the same teacher recipe learns only the sentences outside
  the subset (``complement_file``), and A and B are trained from it as in the benchmark.

For each teacher the page also shows how often its class on the students' subset is the
gold label, and its mean confidence there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import machine, recipes
from .collect import mean_std
from .fidelity import logits
from .plan import RowFactory
from .sweep import Row, Sweep

SEEDS = (42, 43)
# The benchmark's B recipe on the subset alone (B-T2-hard0.5-noaug).
LOGIT_KD_NAME = "T2-hard0.5-noaug"
LOGIT_KD = recipes.logit_kd(2.0, 0.5)
HELDOUT = "teacher-heldout"
ARMS = ("room/labels", "room/kd", "heldout/labels", "heldout/kd")


def heldout_sweep(runs: Path) -> Sweep:
    return Sweep(runs, runs / HELDOUT / "best")


def complement_file(factory: RowFactory) -> Path:
    """The training sentences outside the students' subset, as a TSV in the order of the
    subset's seeded shuffle (written once; rewritten only if it would change)."""
    from ..data.loading import load_raw_splits
    from ..data.sst2 import sst2_data_config

    budget = factory.budget
    subset = load_raw_splits(sst2_data_config(
        budget.sst2_dir, max_train_samples=budget.subset))["train"]
    whole = load_raw_splits(sst2_data_config(budget.sst2_dir))["train"]
    shuffled = whole.shuffle(seed=recipes.SUBSET_SEED)
    if shuffled.select(range(len(subset)))["sentence"] != subset["sentence"]:
        raise RuntimeError("the students' subset is not the head of the seeded shuffle; "
                           "cannot take its complement")
    rest = shuffled.select(range(len(subset), len(shuffled)))
    lines = ["sentence\tlabel"]
    for sentence, label in zip(rest["sentence"], rest["label"]):
        if "\t" in sentence or "\n" in sentence:
            raise ValueError(f"cannot write {sentence!r} to a TSV without quoting")
        lines.append(f"{sentence}\t{label}")
    text = "\n".join(lines) + "\n"
    path = factory.sweep.runs / f"{HELDOUT}-data" / "train.tsv"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def heldout_teacher_row(factory: RowFactory) -> Row:
    return factory.teacher_row("fine-tuned on the complement",
                               train_file=str(complement_file(factory)))


def study_rows(main: RowFactory, held: RowFactory,
               seeds: tuple[int, ...] = SEEDS) -> dict[str, list[tuple[Sweep, Row]]]:
    """Each arm of the studies: its rows, each with the sweep (teacher) it belongs to."""
    two = recipes.TWO_LAYERS
    arms: dict[str, list[tuple[Sweep, Row]]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        arms["room/labels"].append((main.sweep, main.label_row(
            "study-A2-teacher", "2-layer, labels only", str(main.sweep.teacher_dir), seed,
            layers=two, student="A2")))
        arms["room/kd"].append((main.sweep, main.kd_row(
            "study-B2", LOGIT_KD_NAME, dict(LOGIT_KD), 0, seed, layers=two)))
        arms["heldout/labels"].append((held.sweep, held.label_row(
            "heldout-A-teacher", "labels only", str(held.sweep.teacher_dir), seed)))
        arms["heldout/kd"].append((held.sweep, held.kd_row(
            "heldout-B", LOGIT_KD_NAME, dict(LOGIT_KD), 0, seed)))
    return arms


def teacher_on_subset(kd_row: Row) -> dict:
    """How often the teacher of ``kd_row`` predicts the gold label on that row's training
    sentences (the students' subset), and its mean confidence there."""
    import torch

    from ..build import build
    from ..recipe import recipe_from_dict

    built = build(recipe_from_dict(kd_row.recipe, source=f"bench:{kd_row.key}"), "distill")
    train = built.data["train"]
    probs = logits(built.teachers[0], train, built.tokenizer.pad_token_id).softmax(-1)
    labels = torch.as_tensor(train["labels"])
    return {"examples": len(labels),
            "gold_agreement": (probs.argmax(-1) == labels).float().mean().item(),
            "mean_confidence": probs.max(-1).values.mean().item()}


def collect(main: RowFactory, held: RowFactory, teachers: dict[str, dict],
            seeds: tuple[int, ...] = SEEDS) -> dict:
    """The studies' JSON (``docs/benchmarks/studies.json``); {} while a row is missing."""
    arms = study_rows(main, held, seeds)
    budget = main.budget
    out: dict[str, Any] = {
        "command": "python scripts/bench_studies.py", "seeds": list(seeds),
        "setup": {"train_subset": budget.subset, "epochs_equivalent": budget.epochs,
                  "batch_size": recipes.BATCH_SIZE, "lr": recipes.LR,
                  "eval_examples": teachers["benchmark"]["eval_examples"]},
        "teachers": {}, "arms": {}}
    for name, rows in arms.items():
        results = [sweep.result(row) for sweep, row in rows]
        if any(r is None for r in results):
            return {}
        accs = [r["final_eval"]["accuracy"] for r in results]
        mean, std = mean_std(accs)
        out["arms"][name] = {"variant": rows[0][1].variant, "layers": list(rows[0][1].layers),
                             "accuracies": accs, "accuracy_mean": mean, "accuracy_std": std,
                             "run_dirs": [str(sweep.runs / row.key) for sweep, row in rows]}
    for study in ("room", "heldout"):
        arm = out["arms"]
        out[f"{study}_kd_gain_pts"] = 100 * (arm[f"{study}/kd"]["accuracy_mean"]
                                             - arm[f"{study}/labels"]["accuracy_mean"])
    for name, arm in (("benchmark", "room/kd"), ("heldout", "heldout/kd")):
        out["teachers"][name] = {"accuracy": teachers[name]["final_eval"]["accuracy"],
                                 "train_examples": teachers[name]["train_examples"],
                                 "on_student_subset": teacher_on_subset(arms[arm][0][1])}
    out["versions"] = machine.versions()
    out["device"] = machine.device()
    return out
