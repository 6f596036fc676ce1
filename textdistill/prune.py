"""``textdistill prune``: a classifier with its least important heads and neurons removed.

Reads a model directory (or a run's ``best/``), scores every attention head and
feed-forward neuron on labelled training batches (:mod:`textdistill.pruning`), removes
the target fractions, and writes a Hub-format directory that plain transformers loads:
the model, its tokenizer, a model card with the importance summary, and in
``config.json`` a ``textdistill_pruning`` record of what was removed. The directory is
written like ``textdistill export`` writes one (atomically, never over a symbolic link,
never over a non-empty directory without ``overwrite``), and that is checked before any
scoring starts.

Accuracy drops after pruning; a ``distill`` run with the unpruned model as the teacher
and ``student: {pretrained: OUT_DIR}`` recovers it (see the README). A recipe's
``student.prune`` does both in one run: :func:`prune_student` scores and prunes the built
student in memory, on the labelled rows of the recipe's own train split, before the
distillation starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData

from .build import Built, load_classifier, load_tokenizer
from .data.batching import pad_batch
from .data.files import seeded_subset
from .errors import ConfigError
from .evaluation import labelled_data
from .export import check_target, export_model
from .pruning import (
    SCORING_BATCHES,
    Importance,
    PruningPlan,
    apply_pruning,
    find_blocks,
    normalized_head_scores,
    plan_pruning,
    removed_counts,
    score_importance,
)
from .recipe import Recipe
from .refs import normalize_model_ref
from .run_dir import RunDir
from .speed import count_parameters

# config.json key of the record (plain transformers keeps unknown config keys).
RECORD_KEY = "textdistill_pruning"
_KEY = "MODEL_OR_RUN_DIR"


def _source(model_or_run: str) -> tuple[str, str | None]:
    """The model to prune and the data spec a run directory implies (its recipe)."""
    run = RunDir(Path(model_or_run).expanduser())
    if (run.best / "config.json").is_file():
        return str(run.best), str(run.recipe) if run.recipe.is_file() else None
    return model_or_run, None


def _batches(data: Any, batch_size: int, pad_token_id: int) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(data), batch_size):
        yield pad_batch(data[start:start + batch_size], pad_token_id)


def _record(source: str, data: str, importance: Importance, plan: PruningPlan,
            fractions: dict[str, float], widths: tuple[int, int],
            previous: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "source": source, "data": data, "batches": importance.batches,
        "examples": importance.examples, "fractions": fractions,
        "heads_zeroed": {str(i): list(h) for i, h in enumerate(plan.heads) if h},
        "intermediate_size": {"before": widths[0], "after": widths[1]},
    }
    if previous:
        record["previous"] = previous
    return record


def _layer_rows(importance: Importance, plan: PruningPlan) -> list[dict[str, Any]]:
    normalized = normalized_head_scores(importance)
    rows = []
    for layer, (heads, neurons) in enumerate(zip(plan.heads, plan.neurons)):
        scores = importance.neurons[layer]
        total = float(scores.sum())
        removed = float(scores[list(neurons)].sum()) if neurons else 0.0
        rows.append({"block": layer, "heads_removed": list(heads),
                     "head_importance": [round(float(s), 4) for s in normalized[layer]],
                     "ffn_importance_removed": removed / total if total > 0 else 0.0})
    return rows


_CARD = """\
---
{metadata}
---

# {name}

{name} is `{source}` with {heads_removed} of its {heads_total} attention heads and
{neurons_removed} of the {width} feed-forward neurons of each block removed by
`textdistill prune`, by first-order importance (gradient x activation) on {examples}
labelled examples of `{data}`. Pruning costs accuracy: recover it with a `textdistill
distill` run that has `{source}` as the teacher and this directory as
`student: {{pretrained: ...}}`.

It is a standard Hugging Face model (`config.json` records what was removed under
`{record_key}`). Feed-forward neurons are cut out (`intermediate_size` {width} ->
{new_width}); removed heads are stored as zeros, because transformers 5 describes one
head count for every block and no longer prunes heads on load: the model computes
exactly what it would without them. Parameters: {params_before:,} -> {params_after:,}
({params_zeroed:,} of them in zeroed heads).

| block | heads removed | head importance (normalised per block) | share of FFN importance removed |
|---|---|---|---|
{rows}
"""


def _card(name: str, source: str, data: str, importance: Importance, plan: PruningPlan,
          rows: list[dict[str, Any]], widths: tuple[int, int],
          params: dict[str, int]) -> ModelCard:
    metadata = ModelCardData(library_name="transformers", pipeline_tag="text-classification",
                             tags=["textdistill", "pruning", "text-classification"])
    table = "\n".join(
        f"| {r['block']} | {', '.join(map(str, r['heads_removed'])) or '-'} | "
        f"{' '.join(f'{s:.3f}' for s in r['head_importance'])} | "
        f"{r['ffn_importance_removed']:.1%} |" for r in rows)
    return ModelCard(_CARD.format(
        metadata=metadata.to_yaml(), name=name, source=source, data=data,
        heads_removed=sum(len(h) for h in plan.heads), heads_total=importance.heads.numel(),
        neurons_removed=widths[0] - widths[1], width=widths[0], new_width=widths[1],
        examples=importance.examples, record_key=RECORD_KEY,
        params_before=params["before"], params_after=params["after"],
        params_zeroed=params["zeroed"], rows=table))


@dataclass(frozen=True)
class _Pruned:
    """What :func:`_prune_in_place` removed, for the card and the caller."""

    importance: Importance
    plan: PruningPlan
    record: dict[str, Any]
    widths: tuple[int, int]
    params: dict[str, int]


def _prune_in_place(model: Any, dataset: Any, tokenizer: Any, *, heads: float, ffn: float,
                    batch_size: int, source: str, data: str, key: str,
                    log: Callable[[str], None]) -> _Pruned:
    """Score ``model`` on the labelled rows of ``dataset``, remove the least important
    units and record what went in its config (:data:`RECORD_KEY`); the model ends on the
    CPU."""
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"{key}: the tokenizer of {source} has no padding token")
    blocks = find_blocks(model)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    log(f"scoring {blocks.num_heads * len(blocks.blocks)} heads and "
        f"{blocks.ffn_width * len(blocks.blocks)} neurons on {len(dataset)} examples of "
        f"{data} ({device})")
    importance = score_importance(model, _batches(dataset, batch_size, tokenizer.pad_token_id))
    plan = plan_pruning(importance, heads=heads, ffn=ffn)
    params_before = count_parameters(model)
    apply_pruning(model, plan)
    model.to("cpu")
    widths = (blocks.ffn_width, find_blocks(model).ffn_width)
    zeroed = sum(len(h) for h in plan.heads) * (4 * blocks.head_size * blocks.hidden_size
                                                 + 3 * blocks.head_size)
    params = {"before": params_before, "after": count_parameters(model), "zeroed": zeroed}
    record = _record(source, data, importance, plan, {"heads": heads, "ffn": ffn}, widths,
                     getattr(model.config, RECORD_KEY, None))
    setattr(model.config, RECORD_KEY, record)
    return _Pruned(importance, plan, record, widths, params)


def prune_model(model_or_run: str, out_dir: str, *, heads: float = 0.0, ffn: float = 0.0,
                data: str | None = None, batches: int = SCORING_BATCHES, batch_size: int = 32,
                overwrite: bool = False,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Prune ``heads`` of all attention heads and ``ffn`` of each block's feed-forward
    neurons (fractions removed, in [0, 1)) and write the model to ``out_dir``.

    Args:
        model_or_run: a classifier directory or Hub id, or a run directory (its
            ``best/``; its ``recipe.yaml`` is the default data).
        out_dir: the directory to create.
        data: ``sst2``, a recipe or a data file, whose train split is scored on.
        batches: at most this many batches of ``batch_size`` (a seeded random subset of
            the train split) are scored.
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        ``{"path", "record", "layers", "params"}``: the directory, the config record,
        one summary row per block, and the parameter counts.

    Raises:
        ConfigError: a bad fraction or count, a model whose heads cannot be pruned, no
            data, or data the model's classes do not match.
        FileExistsError: ``out_dir`` is a symbolic link, a file, or not empty (and no
            ``overwrite``).
    """
    if isinstance(batches, bool) or batches < 1 or batch_size < 1:
        raise ConfigError(f"batches: {batches} batches of {batch_size}; both must be >= 1")
    check_target(Path(out_dir), overwrite=overwrite)
    model_path, run_recipe = _source(model_or_run)
    data = data or run_recipe
    if data is None:
        raise ConfigError(f"--data: {model_or_run} is not a run directory with a recipe; "
                          "name the data to score on (sst2, a recipe or a data file)")
    ref = normalize_model_ref(model_path, _KEY)
    model = load_classifier(ref, _KEY)
    blocks = find_blocks(model)
    removed_counts(total_heads=blocks.num_heads * len(blocks.blocks),
                   ffn_width=blocks.ffn_width, heads=heads, ffn=ffn)
    tokenizer = load_tokenizer(ref, _KEY)
    dataset, _, _ = labelled_data(model.config, tokenizer, data,
                                  max_samples=batches * batch_size, split="train")
    pruned = _prune_in_place(model, dataset, tokenizer, heads=heads, ffn=ffn,
                             batch_size=batch_size, source=ref, data=data, key=_KEY, log=log)
    rows = _layer_rows(pruned.importance, pruned.plan)
    card = _card(Path(out_dir).name, ref, data, pruned.importance, pruned.plan, rows,
                 pruned.widths, pruned.params)
    path = export_model(model, tokenizer, out_dir, card=card, overwrite=overwrite)
    return {"path": str(path), "record": pruned.record, "layers": rows,
            "params": pruned.params}


# ------------------------------------------------------------------- a recipe's student

# The columns scoring reads; a recipe's train split also holds teacher columns and idx.
_SCORED_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def student_pruning(recipe: Recipe, student: Any) -> dict[str, Any] | None:
    """What ``student.prune`` will remove from ``student``, counted without scoring
    (``textdistill check`` prints it; a run checks it before scoring); ``None`` when the
    recipe does not prune.

    Returns:
        ``{"heads": (removed, total), "neurons": (removed per block, width),
        "batches", "batch_size"}``.

    Raises:
        ConfigError: a fraction that removes nothing from this student, or a student
            whose heads cannot be pruned.
    """
    spec = recipe.student.prune
    if spec is None:
        return None
    try:
        blocks = find_blocks(student)
    except ConfigError as err:
        raise ConfigError(f"student.prune: {str(err).removeprefix('MODEL: ')}") from None
    total = blocks.num_heads * len(blocks.blocks)
    heads, neurons = removed_counts(total_heads=total, ffn_width=blocks.ffn_width,
                                    heads=spec.heads, ffn=spec.ffn, prefix="student.prune.")
    return {"heads": (heads, total), "neurons": (neurons, blocks.ffn_width),
            "batches": spec.batches, "batch_size": recipe.train.batch_size}


def _student_ref(recipe: Recipe) -> str:
    student = recipe.student
    if student.kind == "pretrained":
        return student.pretrained
    return f"student.from_teacher {student.from_teacher} of {recipe.teacher_models[0]}"


def prune_student(built: Built, log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Prune ``built.student`` in place as ``student.prune`` says, scored on a seeded
    random subset of the gold-labelled rows of ``built.data["train"]`` (with
    ``data.seed``); its config records what was removed, so the run's ``best/`` does.
    Nothing is written. ``None`` when the recipe does not prune.

    Returns:
        The record (see :data:`RECORD_KEY`).

    Raises:
        ConfigError: see :func:`student_pruning`, or no labelled training row.
    """
    recipe = built.recipe
    summary = student_pruning(recipe, built.student)
    if summary is None:
        return None
    train = built.data["train"]
    labelled = train.select([i for i, label in enumerate(train["labels"]) if label >= 0])
    if not len(labelled):
        raise ConfigError("student.prune: the train split has no gold-labelled row to score "
                          "importance on")
    batch_size = summary["batch_size"]
    subset = seeded_subset(labelled, summary["batches"] * batch_size, recipe.data.seed)
    subset = subset.select_columns([c for c in _SCORED_COLUMNS if c in subset.column_names])
    spec = recipe.student.prune
    pruned = _prune_in_place(built.student, subset, built.tokenizer, heads=spec.heads,
                             ffn=spec.ffn, batch_size=batch_size, source=_student_ref(recipe),
                             data=f"{recipe.source or 'the recipe'} (train split)",
                             key="student.prune", log=log)
    width = pruned.record["intermediate_size"]
    log(f"pruned the student: {summary['heads'][0]} of {summary['heads'][1]} heads zeroed, "
        f"intermediate_size {width['before']} -> {width['after']}")
    return pruned.record


__all__ = ["RECORD_KEY", "prune_model", "prune_student", "student_pruning"]
