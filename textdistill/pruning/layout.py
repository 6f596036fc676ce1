"""Where a classifier keeps its attention heads and feed-forward neurons.

Pruning needs, per transformer block, the query/key/value projections (one output row
block per head), the attention output projection (one input column block per head), and
the feed-forward pair (intermediate rows, output columns). :func:`find_blocks` looks them
up by the module names of the known encoder families and refuses anything else, so an
unknown architecture fails before any data is read rather than being pruned wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.adaptors import unwrap_model


@dataclass(frozen=True)
class _Family:
    """Module paths of one encoder family: blocks under the base model, linears in a block."""

    names: str
    blocks: str
    query: str
    key: str
    value: str
    attention_out: str
    ffn_in: str
    ffn_out: str
    heads_key: str
    ffn_key: str


_FAMILIES = (
    _Family("BERT, RoBERTa, ELECTRA, XLM-R", "encoder.layer", "attention.self.query",
            "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense", "num_attention_heads", "intermediate_size"),
    _Family("MPNet", "encoder.layer", "attention.attn.q", "attention.attn.k",
            "attention.attn.v", "attention.attn.o", "intermediate.dense", "output.dense",
            "num_attention_heads", "intermediate_size"),
    _Family("DistilBERT", "transformer.layer", "attention.q_lin", "attention.k_lin",
            "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2", "n_heads",
            "hidden_dim"),
)


@dataclass(frozen=True)
class Block:
    """The prunable linears of one transformer block."""

    module: torch.nn.Module
    query: torch.nn.Linear
    key: torch.nn.Linear
    value: torch.nn.Linear
    attention_out: torch.nn.Linear
    ffn_in: torch.nn.Linear
    ffn_out: torch.nn.Linear


@dataclass(frozen=True)
class Blocks:
    """Every block of a model, with the config keys that describe their widths."""

    blocks: tuple[Block, ...]
    num_heads: int
    ffn_key: str
    family: _Family

    @property
    def head_size(self) -> int:
        return self.blocks[0].attention_out.in_features // self.num_heads

    @property
    def hidden_size(self) -> int:
        return self.blocks[0].query.in_features

    @property
    def ffn_width(self) -> int:
        return self.blocks[0].ffn_in.out_features


def _get(root: torch.nn.Module, path: str) -> torch.nn.Module | None:
    module: torch.nn.Module | None = root
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _block(module: torch.nn.Module, family: _Family) -> Block | None:
    parts = {name: _get(module, getattr(family, name)) for name in
             ("query", "key", "value", "attention_out", "ffn_in", "ffn_out")}
    if not all(isinstance(p, torch.nn.Linear) for p in parts.values()):
        return None
    return Block(module=module, **parts)


def find_blocks(model: torch.nn.Module) -> Blocks:
    """The prunable blocks of a sequence classifier.

    Raises:
        ConfigError: the model is not of a known encoder family (no blocks with separate
            query/key/value and feed-forward linears), or its widths are inconsistent.
    """
    inner = unwrap_model(model)
    base = getattr(inner, "base_model", inner)
    config = inner.config
    for family in _FAMILIES:
        layers = _get(base, family.blocks)
        if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
            continue
        blocks = [_block(layer, family) for layer in layers]
        if any(b is None for b in blocks):
            continue
        num_heads = getattr(config, family.heads_key, None)
        width = blocks[0].attention_out.in_features
        if not isinstance(num_heads, int) or num_heads < 1 or width % num_heads:
            raise ConfigError(f"MODEL: {type(inner).__name__} has {num_heads!r} attention "
                              f"heads for an attention width of {width}")
        return Blocks(tuple(b for b in blocks if b is not None), num_heads, family.ffn_key,
                      family)
    known = "; ".join(f.names for f in _FAMILIES)
    raise ConfigError(f"MODEL: {type(inner).__name__} ({config.model_type}) has no attention "
                      f"heads or feed-forward layers that prune knows; it prunes {known}")


def set_module(root: torch.nn.Module, path: str, module: torch.nn.Module) -> None:
    """Replace the submodule at dotted ``path`` under ``root``."""
    parent, _, name = path.rpartition(".")
    setattr(_get(root, parent) if parent else root, name, module)


__all__ = ["Block", "Blocks", "find_blocks", "set_module"]
