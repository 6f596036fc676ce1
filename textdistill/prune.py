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
and ``student: {pretrained: OUT_DIR}`` recovers it (see the README).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData

from .build import load_classifier, load_tokenizer
from .data.batching import pad_batch
from .errors import ConfigError
from .evaluation import labelled_data
from .export import check_target, export_model
from .pruning import (
    Importance,
    PruningPlan,
    apply_pruning,
    find_blocks,
    normalized_head_scores,
    plan_pruning,
    removed_counts,
    score_importance,
)
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


def prune_model(model_or_run: str, out_dir: str, *, heads: float = 0.0, ffn: float = 0.0,
                data: str | None = None, batches: int = 200, batch_size: int = 32,
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
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"{_KEY}: the tokenizer of {ref} has no padding token")
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
    record = _record(ref, data, importance, plan, {"heads": heads, "ffn": ffn}, widths,
                     getattr(model.config, RECORD_KEY, None))
    setattr(model.config, RECORD_KEY, record)
    rows = _layer_rows(importance, plan)
    card = _card(Path(out_dir).name, ref, data, importance, plan, rows, widths, params)
    path = export_model(model, tokenizer, out_dir, card=card, overwrite=overwrite)
    return {"path": str(path), "record": record, "layers": rows, "params": params}


__all__ = ["RECORD_KEY", "prune_model"]
