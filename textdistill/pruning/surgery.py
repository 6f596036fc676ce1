"""Removing the units a :class:`~textdistill.pruning.importance.PruningPlan` names.

Feed-forward neurons are cut out: each block's intermediate and output linears are
replaced by narrower copies, and the config's intermediate width is set to the new
(uniform) width, so ``from_pretrained`` builds the same shapes and loads the model with
plain transformers.

Heads are zeroed, not cut out. Transformers 5 dropped ``prune_heads`` and
``config.pruned_heads``, and its BERT-family configs hold one head count from which the
head size is derived (``hidden_size / num_attention_heads``), so a checkpoint with fewer
heads in some blocks cannot be described to ``from_pretrained``. Zeroing the head's
query, key and value rows (weights and biases) and its columns of the attention output
projection gives exactly the outputs of the model without the head, keeps the shapes
plain transformers loads, and stays so under training: a zeroed head's output is zero
whatever its attention pattern, and every one of its weights gets a zero gradient (the
value rows through the zero output columns and vice versa; query and key each through
the other, which is zero, even under an attention-map loss), so AdamW with weight decay
leaves them at zero during a recovery distillation. The saved size and speed shrink by the feed-forward part; a runtime that
slices all-zero heads gets the attention part too: :func:`slice_zeroed_heads` makes such a
copy, which the ONNX export (:func:`~textdistill.onnx_model.export_onnx`) traces.
"""

from __future__ import annotations

import copy
import inspect

import torch

from ..errors import ConfigError
from ..models.adaptors import unwrap_model
from .importance import PruningPlan
from .layout import Block, Blocks, find_blocks, set_module


def _narrower(linear: torch.nn.Linear, keep: torch.Tensor, dim: int) -> torch.nn.Linear:
    """A copy of ``linear`` with only the rows (``dim=0``) or columns (``dim=1``) ``keep``."""
    weight = linear.weight.detach().index_select(dim, keep).clone()
    out_features, in_features = weight.shape
    new = torch.nn.Linear(in_features, out_features, bias=linear.bias is not None,
                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias if dim == 1 else linear.bias.index_select(0, keep))
    new.weight.requires_grad_(linear.weight.requires_grad)
    return new


def _zero_heads(block: Block, heads: tuple[int, ...], head_size: int) -> None:
    with torch.no_grad():
        for head in heads:
            span = slice(head * head_size, (head + 1) * head_size)
            for projection in (block.query, block.key, block.value):
                projection.weight[span] = 0
                if projection.bias is not None:
                    projection.bias[span] = 0
            block.attention_out.weight[:, span] = 0


def apply_pruning(model: torch.nn.Module, plan: PruningPlan) -> None:
    """Remove the plan's units from ``model`` in place (see the module docstring).

    Raises:
        ConfigError: the plan does not fit the model (block count, head or neuron index
            out of range, or a different number of neurons per block).
    """
    inner = unwrap_model(model)
    blocks = find_blocks(inner)
    count = len(blocks.blocks)
    if len(plan.heads) != count or len(plan.neurons) != count:
        raise ConfigError(f"the pruning plan is for {len(plan.heads)} blocks; the model has "
                          f"{count}")
    widths = {len(removed) for removed in plan.neurons}
    if len(widths) != 1:
        raise ConfigError("the pruning plan removes a different number of neurons per block; "
                          "the config holds one intermediate width")
    for index, (block, heads, neurons) in enumerate(zip(blocks.blocks, plan.heads,
                                                        plan.neurons)):
        if any(not 0 <= h < blocks.num_heads for h in heads) or any(
                not 0 <= n < block.ffn_in.out_features for n in neurons):
            raise ConfigError(f"the pruning plan names a unit block {index} does not have")
        _zero_heads(block, heads, blocks.head_size)
        if not neurons:
            continue
        removed = set(neurons)
        keep = torch.tensor([n for n in range(block.ffn_in.out_features) if n not in removed],
                            dtype=torch.long, device=block.ffn_in.weight.device)
        set_module(block.module, blocks.family.ffn_in, _narrower(block.ffn_in, keep, 0))
        set_module(block.module, blocks.family.ffn_out, _narrower(block.ffn_out, keep, 1))
    setattr(inner.config, blocks.ffn_key, blocks.ffn_width - widths.pop())


def _known_blocks(model: torch.nn.Module) -> Blocks | None:
    """The blocks of a model whose every block has the config's head count, else None."""
    try:
        blocks = find_blocks(model)
    except ConfigError:
        # A family prune does not know (or cannot read) holds no heads prune zeroed.
        return None
    width = blocks.num_heads * blocks.head_size
    # Blocks of other widths were sliced already; their head spans are not the config's.
    if any(linear.weight.shape[dim] != width for block in blocks.blocks
           for linear, dim in ((block.query, 0), (block.key, 0), (block.value, 0),
                               (block.attention_out, 1))):
        return None
    return blocks


def _head_is_dead(block: Block, span: slice) -> bool:
    """Whether the head adds exactly zero to the block's output: its output-projection
    columns are zero, or its value rows and biases are (then every attention-weighted
    sum of its values is zero, whatever its attention pattern)."""
    value = block.value
    return not block.attention_out.weight[:, span].any() or (
        not value.weight[span].any() and (value.bias is None or not value.bias[span].any()))


def zeroed_heads(model: torch.nn.Module) -> tuple[tuple[int, ...], ...]:
    """Per block, the heads whose weights make them add exactly nothing to the output:
    zero output-projection columns, or zero value rows and biases (:func:`apply_pruning`
    zeroes all four projections). ``()`` for a model of a family
    :func:`~textdistill.pruning.layout.find_blocks` does not know, or one already sliced."""
    blocks = _known_blocks(model)
    if blocks is None:
        return ()
    size = blocks.head_size
    with torch.no_grad():
        return tuple(tuple(h for h in range(blocks.num_heads)
                           if _head_is_dead(block, slice(h * size, (h + 1) * size)))
                     for block in blocks.blocks)


class _KeptHeadsOfPositionBias(torch.nn.Module):
    """A self-attention that takes a bias for every head of the model (MPNet's relative
    position bias is computed once, for the config's head count, and shared by all
    blocks), fed the rows of the heads it kept."""

    def __init__(self, attention: torch.nn.Module, kept: torch.Tensor):
        super().__init__()
        self.attention = attention
        self.register_buffer("kept", kept, persistent=False)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_bias: torch.Tensor | None = None, **kwargs: object) -> object:
        if position_bias is not None:
            position_bias = position_bias.index_select(1, self.kept)
        return self.attention(hidden_states, attention_mask, position_bias, **kwargs)


def _slice_block(block: Block, blocks: Blocks, dead: tuple[int, ...]) -> None:
    size, family = blocks.head_size, blocks.family
    # A block of dead heads keeps one: the reshape to (..., heads, head size) infers the
    # head count, which it cannot do for an empty tensor; a dead head adds nothing.
    kept = [h for h in range(blocks.num_heads) if h not in dead] or [dead[0]]
    device = block.query.weight.device
    rows = torch.cat([torch.arange(h * size, (h + 1) * size, device=device) for h in kept])
    for path, linear, dim in ((family.query, block.query, 0), (family.key, block.key, 0),
                              (family.value, block.value, 0),
                              (family.attention_out, block.attention_out, 1)):
        set_module(block.module, path, _narrower(linear, rows, dim))
    attention_path = family.query.rpartition(".")[0]
    attention = block.module.get_submodule(attention_path)
    # The forwards infer the head count from the tensors, except where they reshape with
    # a width fixed at construction (MPNet's all_head_size).
    for name, value in (("num_attention_heads", len(kept)), ("n_heads", len(kept)),
                        ("all_head_size", len(kept) * size)):
        if hasattr(attention, name):
            setattr(attention, name, value)
    if "position_bias" in inspect.signature(type(attention).forward).parameters:
        set_module(block.module, attention_path, _KeptHeadsOfPositionBias(
            attention, torch.tensor(kept, dtype=torch.long, device=device)))


def slice_zeroed_heads(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with the heads :func:`zeroed_heads` finds cut out of their
    blocks, computing the same logits with fewer heads; ``model`` itself when it has
    none (or is of a family prune does not know).

    The weights decide, not ``config.json``'s prune record: a dead head is sliced however
    it came to be, and a recorded head that is live again stays. A block whose heads are
    all dead keeps one (zero) head. The copy is for tracing or running only: its config
    still states one head count for every block, so ``from_pretrained`` would not load it
    back.
    """
    dead = zeroed_heads(model)
    if not any(dead):
        return model
    sliced = copy.deepcopy(model)
    blocks = find_blocks(sliced)
    for block, heads in zip(blocks.blocks, dead):
        if heads:
            _slice_block(block, blocks, heads)
    return sliced


__all__ = ["apply_pruning", "slice_zeroed_heads", "zeroed_heads"]
