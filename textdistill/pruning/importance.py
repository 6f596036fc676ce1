"""How much the loss depends on each attention head and feed-forward neuron.

First-order Taylor importance: every head output and every intermediate neuron is scaled
by a gate fixed at 1, and the importance of a unit is the absolute gradient of the task
loss with respect to its gate, summed over batches. For a head this is Michel et al.
(2019)'s head-mask score; for a neuron it is ``|sum over tokens of activation x
gradient|`` (DynaBERT, CoFi). A unit whose output is zero scores exactly 0.

Scoring never changes the model: the gates live outside it (forward pre-hooks on the
projections that read the heads and neurons), gradients are taken with respect to the
gates alone (no parameter's ``.grad`` is touched), and dropout is off while it runs.

:func:`plan_pruning` turns scores and target fractions into the units to remove: heads
ranked globally after normalising each layer's scores to unit L2 norm (Michel et al.),
and the same number of neurons in every block (each block's least important), so the
pruned model keeps one ``intermediate_size``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..losses import hard_ce
from ..models.adaptors import model_inputs, unwrap_model
from .layout import find_blocks

# Batches scored unless told otherwise: a few thousand labelled examples rank the units
# stably, in minutes on a CPU.
SCORING_BATCHES = 200


@dataclass(frozen=True)
class Importance:
    """Accumulated importance scores.

    Attributes:
        heads: (layers, heads), summed absolute gate gradients.
        neurons: (layers, intermediate width), likewise.
        batches: batches scored.
        examples: labelled examples scored.
    """

    heads: torch.Tensor
    neurons: torch.Tensor
    batches: int
    examples: int


def _scale_heads(gate: torch.Tensor, num_heads: int):
    def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        heads = args[0]
        shape = heads.shape
        gated = heads.reshape(*shape[:-1], num_heads, -1) * gate.to(heads.dtype)[:, None]
        return (gated.reshape(shape), *args[1:])
    return hook


def _scale_neurons(gate: torch.Tensor):
    def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0] * gate.to(args[0].dtype), *args[1:])
    return hook


def score_importance(model: torch.nn.Module, batches: Iterable[Mapping[str, torch.Tensor]],
                     ) -> Importance:
    """Head and neuron importance of ``model`` over ``batches``.

    Args:
        model: a sequence classifier of a family :func:`find_blocks` knows.
        batches: padded batches (``input_ids``, ``attention_mask``, ... and ``labels``);
            rows without a gold label (negative ``labels``, as the hard loss skips them)
            are left out, and so are batches without a labelled row.

    Raises:
        ConfigError: the model cannot be pruned, or no batch held a labelled row.
    """
    inner = unwrap_model(model)
    blocks = find_blocks(inner)
    device = next(inner.parameters()).device
    head_gates = [torch.ones(blocks.num_heads, device=device, requires_grad=True)
                  for _ in blocks.blocks]
    neuron_gates = [torch.ones(block.ffn_in.out_features, device=device, requires_grad=True)
                    for block in blocks.blocks]
    heads = torch.zeros(len(blocks.blocks), blocks.num_heads, dtype=torch.float64)
    neurons = torch.zeros(len(blocks.blocks), blocks.ffn_width, dtype=torch.float64)
    handles = []
    for block, head_gate, neuron_gate in zip(blocks.blocks, head_gates, neuron_gates):
        handles.append(block.attention_out.register_forward_pre_hook(
            _scale_heads(head_gate, blocks.num_heads)))
        handles.append(block.ffn_out.register_forward_pre_hook(_scale_neurons(neuron_gate)))
    was_training = inner.training
    inner.eval()
    scored = examples = 0
    try:
        for batch in batches:
            labels = batch["labels"].to(device)
            labelled = int((labels >= 0).sum())
            if labelled == 0:
                continue
            inputs = {k: v.to(device) for k, v in model_inputs(inner, batch).items()}
            logits = inner(**inputs).logits
            loss = hard_ce(logits, labels)
            grads = torch.autograd.grad(loss, [*head_gates, *neuron_gates])
            heads += torch.stack(grads[:len(head_gates)]).abs().double().cpu()
            neurons += torch.stack(grads[len(head_gates):]).abs().double().cpu()
            scored += 1
            examples += labelled
    finally:
        for handle in handles:
            handle.remove()
        inner.train(was_training)
    if scored == 0:
        raise ConfigError("data: no batch held a labelled example to score importance on")
    return Importance(heads=heads, neurons=neurons, batches=scored, examples=examples)


@dataclass(frozen=True)
class PruningPlan:
    """The units to remove: per block, head indices and intermediate neuron indices."""

    heads: tuple[tuple[int, ...], ...]
    neurons: tuple[tuple[int, ...], ...]


def check_fractions(*, heads: float, ffn: float, prefix: str = "") -> None:
    """Both fractions are in [0, 1) and not both 0; what a model's size cannot tell.

    Raises:
        ConfigError: naming ``prefix + "heads"`` or ``prefix + "ffn"``.
    """
    for key, fraction in (("heads", heads), ("ffn", ffn)):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0 <= fraction < 1:
            raise ConfigError(f"{prefix}{key}: {fraction!r} is not a fraction to remove in "
                              "[0, 1)")
    if heads == 0 and ffn == 0:
        raise ConfigError(f"{prefix}heads, {prefix}ffn: both are 0; nothing to prune")


def _removed_count(fraction: float, total: int, key: str) -> int:
    count = min(total - 1, round(fraction * total))
    if fraction > 0 and count == 0:
        raise ConfigError(f"{key}: {fraction} of {total} removes nothing "
                          f"(each unit is {1 / total:.3g} of them)")
    return count


def removed_counts(*, total_heads: int, ffn_width: int, heads: float,
                   ffn: float, prefix: str = "") -> tuple[int, int]:
    """How many heads (of ``total_heads``, all blocks) and neurons per block (of
    ``ffn_width``) the fractions ``heads`` and ``ffn`` remove: rounded to whole units,
    leaving at least one head in the model and one neuron in every block (a block may
    lose all its heads: its attention sublayer then adds only the output bias).

    Raises:
        ConfigError: a fraction outside [0, 1), one that removes nothing, or both 0;
            the key is ``prefix + "heads"`` or ``prefix + "ffn"``.
    """
    check_fractions(heads=heads, ffn=ffn, prefix=prefix)
    return (_removed_count(heads, total_heads, f"{prefix}heads"),
            _removed_count(ffn, ffn_width, f"{prefix}ffn"))


def normalized_head_scores(importance: Importance) -> torch.Tensor:
    """Head scores divided by their layer's L2 norm (a layer of zeros stays zeros)."""
    norms = importance.heads.norm(dim=1, keepdim=True)
    return importance.heads / torch.where(norms > 0, norms, torch.ones_like(norms))


def plan_pruning(importance: Importance, *, heads: float, ffn: float) -> PruningPlan:
    """The least important units, removing ``heads`` of all heads and ``ffn`` of each
    block's intermediate neurons (counted by :func:`removed_counts`). Ties go to the
    lower index.

    Raises:
        ConfigError: see :func:`removed_counts`.
    """
    layers, num_heads = importance.heads.shape
    head_count, neuron_count = removed_counts(
        total_heads=layers * num_heads, ffn_width=importance.neurons.shape[1], heads=heads,
        ffn=ffn)
    order = torch.argsort(normalized_head_scores(importance).flatten(), stable=True)
    removed_heads: list[list[int]] = [[] for _ in range(layers)]
    for flat in order[:head_count].tolist():
        removed_heads[flat // num_heads].append(flat % num_heads)
    removed_neurons = [sorted(torch.argsort(row, stable=True)[:neuron_count].tolist())
                       for row in importance.neurons]
    return PruningPlan(heads=tuple(tuple(sorted(h)) for h in removed_heads),
                       neurons=tuple(tuple(n) for n in removed_neurons))


__all__ = ["SCORING_BATCHES", "Importance", "PruningPlan", "check_fractions",
           "normalized_head_scores", "plan_pruning", "removed_counts", "score_importance"]
