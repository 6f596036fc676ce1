"""Turning a model's forward pass into the tensors the losses read.

The engine never touches a model's output object directly: an *adaptor* runs the model
on a batch and returns a :class:`ModelView`. :func:`hf_adaptor` handles every Hugging
Face ``AutoModelForSequenceClassification`` encoder; any callable with the
:class:`Adaptor` signature plugs in other models.

Layers are numbered as in ``output_hidden_states``: ``hidden_states[0]`` is the
embedding output and ``hidden_states[l]`` the output of block ``l``; ``attentions[l - 1]``
is the map computed inside block ``l`` (attention maps use the last layer of each block;
hidden states include the embeddings).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import (
    AttentionUnavailableError,
    HiddenStatesUnavailableError,
)

# Forward arguments the adaptor controls itself: ``labels`` would make the model compute
# its own loss (we compute ours), and the output switches are set per call.
_CONTROLLED_ARGS = frozenset(
    {"labels", "output_hidden_states", "output_attentions", "return_dict"}
)


@dataclass
class ModelView:
    """What the losses read from one forward pass.

    Attributes:
        logits: (B, C) classifier logits.
        hidden_states: ``L + 1`` tensors of (B, T, H), index 0 the embedding output;
            ``None`` when not requested.
        attentions: ``L`` tensors of (B, heads, T, T), index ``l - 1`` the map of block
            ``l`` (rows are softmax distributions over keys); ``None`` when not requested.
        attention_mask: (B, T), 1 for real tokens and 0 for padding; ``None`` only when
            the batch had neither a mask nor ``input_ids``/``inputs_embeds`` to infer one.
        labels: (B,) gold labels, or ``None`` for unlabeled batches.
    """

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_mask: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class Adaptor(Protocol):
    """Runs ``model`` on ``batch`` and returns a :class:`ModelView`.

    ``batch`` is a dict of tensors that may hold keys the model does not take (``labels``,
    ``idx``, ...). Implementations must return hidden states / attention maps when (and
    should return them only when) asked, numbered as described in this module.
    """

    def __call__(self, model: Any, batch: Mapping[str, Any], *, hidden_states: bool = False,
                 attentions: bool = False) -> ModelView: ...


@dataclass(frozen=True)
class ModelDims:
    """The shape facts the engine needs from a model's config."""

    num_layers: int
    hidden_size: int
    num_heads: int
    num_labels: int


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/DataParallel/DeepSpeed/FSDP and ``torch.compile`` wrappers."""
    # Imported here: importing transformers takes seconds, and code that only builds
    # mappings or projections should not pay for it.
    from transformers import PreTrainedModel

    for _ in range(16):  # wrappers nest a few levels at most; never loop forever
        # torch.compile's OptimizedModule (and accelerate's regional compile) keep the
        # original in _orig_mod.
        inner = getattr(model, "_orig_mod", None)
        if inner is None and not isinstance(model, PreTrainedModel):
            inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
    return model


@functools.cache
def _accepted_inputs(model_class: type) -> frozenset[str]:
    # Read from the class, not the instance: accelerate replaces ``model.forward`` on the
    # instance with an autocast/fp32 wrapper taking (*args, **kwargs).
    signature = inspect.signature(model_class.forward)
    named = {
        name for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return frozenset(named - _CONTROLLED_ARGS - {"self"})


def model_inputs(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``batch`` that ``model``'s forward takes as inputs (never ``labels``)."""
    accepted = _accepted_inputs(type(unwrap_model(model)))
    return {k: v for k, v in batch.items() if k in accepted}


def _attn_implementation(model: torch.nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) if config is not None else None


def hf_adaptor(model: torch.nn.Module, batch: Mapping[str, Any], *, hidden_states: bool = False,
               attentions: bool = False) -> ModelView:
    """The default :class:`Adaptor`, for Hugging Face sequence-classification encoders.

    Passes the model only the batch keys its forward accepts (so DistilBERT never sees
    ``token_type_ids`` and nobody sees ``labels``), and asks for hidden states / attention
    maps only when requested - they cost memory, and attention maps need eager attention.

    Args:
        model: the model, possibly wrapped (DDP, ``torch.compile``, accelerate); the
            wrapper is what gets called, the unwrapped model's signature is what is read.
        batch: a dict of tensors: ``input_ids`` (B, T), ``attention_mask`` (B, T), maybe
            ``token_type_ids`` (B, T), ``labels`` (B,) and any extra keys.
        hidden_states: return the ``L + 1`` hidden states.
        attentions: return the ``L`` attention maps.

    Raises:
        AttentionUnavailableError: attentions were requested but the model returned none
            (e.g. it runs ``sdpa`` attention).
        HiddenStatesUnavailableError: hidden states were requested but not returned.
        ValueError: no batch key is an input of the model's forward.
    """
    inner = unwrap_model(model)
    inputs = model_inputs(model, batch)
    if not inputs:
        raise ValueError(
            f"hf_adaptor: none of the batch keys {sorted(batch)} is an input of "
            f"{type(inner).__name__}.forward (accepts {sorted(_accepted_inputs(type(inner)))}); "
            "pass a custom adaptor for this model"
        )
    # Explicit False overrides a config with output_hidden_states=True, so unrequested
    # features are never computed.
    outputs = model(**inputs, output_hidden_states=bool(hidden_states),
                    output_attentions=bool(attentions), return_dict=True)

    hidden = None
    if hidden_states:
        hidden = getattr(outputs, "hidden_states", None)
        if not hidden or any(h is None for h in hidden):
            raise HiddenStatesUnavailableError(
                f"{type(inner).__name__} returned no hidden states although "
                "output_hidden_states=True was passed; use a custom adaptor for this model"
            )
        hidden = tuple(hidden)
    maps = None
    if attentions:
        maps = getattr(outputs, "attentions", None)
        if not maps or any(a is None for a in maps):
            implementation = _attn_implementation(inner)
            raise AttentionUnavailableError(
                f"{type(inner).__name__} (attn_implementation={implementation!r}) returned no "
                "attention maps although output_attentions=True was passed; sdpa/flash "
                "attention never computes them. Load the model with "
                "attn_implementation=\"eager\" or call "
                "textdistill.models.ensure_eager_attention(model) first"
            )
        maps = tuple(maps)

    mask = batch.get("attention_mask")
    if mask is None:
        # No padding means every position is real.
        reference = batch.get("input_ids")
        if reference is None and batch.get("inputs_embeds") is not None:
            reference = batch["inputs_embeds"][..., 0]
        if reference is not None:
            mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
    return ModelView(logits=outputs.logits, hidden_states=hidden, attentions=maps,
                     attention_mask=mask, labels=batch.get("labels"))


def ensure_eager_attention(model: torch.nn.Module) -> bool:
    """Make ``model`` compute attention maps, switching it to eager attention if needed.

    transformers 5 defaults to ``sdpa``, under which ``output_attentions=True`` returns an
    empty tuple (with only a logged warning). Models without a Hugging Face config are
    left alone: their adaptor is responsible for the maps.

    Returns:
        True if the attention implementation was switched, False if it already was eager
        (or the model has no config).

    Raises:
        AttentionUnavailableError: the model cannot switch to eager attention.
    """
    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    if config is None:
        return False
    current = getattr(config, "_attn_implementation", None)
    if current == "eager":
        return False
    name = type(inner).__name__
    setter = getattr(inner, "set_attn_implementation", None)
    if setter is None:
        raise AttentionUnavailableError(
            f"{name} (attn_implementation={current!r}) has no set_attn_implementation; load it "
            "with attn_implementation=\"eager\" to distil attention maps"
        )
    try:
        setter("eager")
    except Exception as err:  # transformers raises ValueError/ImportError/... here
        raise AttentionUnavailableError(
            f"{name}: could not switch attn_implementation {current!r} -> 'eager' ({err}); "
            "load the model with attn_implementation=\"eager\" to distil attention maps"
        ) from err
    # set_attn_implementation only logs a warning for models that cannot switch at run time.
    if getattr(config, "_attn_implementation", None) != "eager":
        raise AttentionUnavailableError(
            f"{name} cannot switch attn_implementation {current!r} -> 'eager' at run time; "
            "load the model with attn_implementation=\"eager\" to distil attention maps"
        )
    return True


def _config_value(config: Any, names: tuple[str, ...], what: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise ValueError(
        f"{type(config).__name__} has none of {list(names)}; cannot read the {what}"
    )


def model_dims(model: torch.nn.Module) -> ModelDims:
    """Layer count, hidden width, heads and labels of a (possibly wrapped) HF model.

    Reads the names BERT-like configs use, then DistilBERT's (``n_layers``, ``dim``,
    ``n_heads``) and other common spellings.

    Raises:
        ValueError: the model has no config, or the config lacks one of the values.
    """
    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    if config is None:
        raise ValueError(f"{type(inner).__name__} has no config; cannot read its dimensions")
    return ModelDims(
        num_layers=_config_value(config, ("num_hidden_layers", "n_layers", "num_layers"),
                                 "number of layers"),
        hidden_size=_config_value(config, ("hidden_size", "dim", "d_model"), "hidden size"),
        num_heads=_config_value(config, ("num_attention_heads", "n_heads", "num_heads"),
                                "number of attention heads"),
        num_labels=_config_value(config, ("num_labels",), "number of labels"),
    )
