"""Name -> loss function registry, and the helpers every loss shares.

A loss is a pure function with one signature (:class:`LossFn`)::

    fn(student, teacher, mask=None, **options) -> 0-dim float32 tensor

Recipes name losses by string (``DistillationConfig.logit_loss``, ``Match.loss``); the
engine resolves them with :func:`get_loss`. Custom losses plug in with
:func:`register_loss`, usually as a decorator stacked on :func:`fp32_loss`::

    @register_loss("my_loss")
    @fp32_loss
    def my_loss(student, teacher, mask=None):
        ...

A hidden-state loss that reads only the first token's vector (``[CLS]``), as ``pkd``
does, is registered with ``sentence_level=True``: it compares one vector per example, so
it also works between models whose tokenizers split the text differently, where
token-by-token losses have no positions to align (:func:`is_sentence_level`).

A loss registered with a ``kind`` (what it compares, one of :data:`LOSS_KINDS`) is refused for any other input before training (:func:`loss_kind`); a loss
registered without one is trusted wherever a recipe puts it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, Protocol, overload

import torch
from torch import Tensor

from ..errors import UnknownLossError


class LossFn(Protocol):
    """``fn(student, teacher, mask=None, **options) -> Tensor`` (0-dim, float32)."""

    def __call__(
        self, student: Tensor, teacher: Tensor, mask: Tensor | None = None, **options: Any
    ) -> Tensor: ...


_REGISTRY: dict[str, LossFn] = {}
# Losses that compare one vector per example (the first token's), not token by token.
_SENTENCE_LEVEL: set[str] = set()
# What a loss compares: logits with teacher logits, with gold labels (hard_ce), hidden
# states or attention maps.
LOSS_KINDS = ("logits", "labels", "hidden", "attention")
_KIND: dict[str, str] = {}


@overload
def register_loss(name: str, fn: None = None, *, overwrite: bool = False,
                  sentence_level: bool = False,
                  kind: str | None = None) -> Callable[[LossFn], LossFn]: ...
@overload
def register_loss(name: str, fn: LossFn, *, overwrite: bool = False,
                  sentence_level: bool = False, kind: str | None = None) -> LossFn: ...


def register_loss(name, fn=None, *, overwrite=False, sentence_level=False, kind=None):
    """Register ``fn`` under ``name``; without ``fn``, return a decorator that does.

    Args:
        name: the name recipes use.
        fn: the loss (see :class:`LossFn`).
        overwrite: replace an existing registration instead of refusing it.
        sentence_level: a hidden-state loss that reads only each example's first token
            (see :func:`is_sentence_level`).
        kind: what the loss compares: ``"logits"`` (B, C) with teacher logits,
            ``"labels"`` (B, C) with gold labels, ``"hidden"`` (B, T, H) or
            ``"attention"`` (B, heads, T, T); ``None``: not said, nothing is checked.

    Returns:
        ``fn`` itself (so the decorator leaves the function usable by its own name).

    Raises:
        ValueError: ``name`` is taken and ``overwrite`` is False, ``name`` is empty, or
            ``kind`` is not one of :data:`LOSS_KINDS`.
        TypeError: ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"loss name must be a non-empty string, got {name!r}")
    if kind is not None and kind not in LOSS_KINDS:
        raise ValueError(f"loss kind must be one of {LOSS_KINDS} or None, got {kind!r}")

    def add(loss: LossFn) -> LossFn:
        if not callable(loss):
            raise TypeError(f"loss {name!r} must be callable, got {loss!r}")
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"loss {name!r} is already registered; pass overwrite=True to replace it"
            )
        _REGISTRY[name] = loss
        if sentence_level:
            _SENTENCE_LEVEL.add(name)
        else:
            _SENTENCE_LEVEL.discard(name)
        if kind is None:
            _KIND.pop(name, None)
        else:
            _KIND[name] = kind
        return loss

    return add if fn is None else add(fn)


def get_loss(name: str) -> LossFn:
    """The loss registered under ``name``.

    Raises:
        UnknownLossError: (a ``KeyError``) naming the available losses.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownLossError(
            f"unknown loss {name!r}; available losses: {', '.join(available_losses())}"
        ) from None


def available_losses() -> list[str]:
    """Sorted names of all registered losses."""
    return sorted(_REGISTRY)


def is_sentence_level(name: str) -> bool:
    """Whether loss ``name`` compares one vector per example (the first token's) rather
    than token by token, so that it works across tokenizers (registered with
    ``sentence_level=True``)."""
    return name in _SENTENCE_LEVEL


def loss_kind(name: str) -> str | None:
    """What loss ``name`` compares (one of :data:`LOSS_KINDS`), or ``None`` when it was
    registered without a ``kind``."""
    return _KIND.get(name)


def losses_of_kind(kind: str) -> list[str]:
    """Sorted names of the registered losses of ``kind``."""
    return sorted(name for name, k in _KIND.items() if k == kind)


# --------------------------------------------------------------------------- helpers


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _upcast(x: Any) -> Any:
    # Only floating tensors: hard_ce's "teacher" is a long label tensor.
    if isinstance(x, Tensor) and x.is_floating_point():
        return x.float()
    return x


def fp32_loss(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Make a loss compute in float32 whatever the input dtype or autocast state.

    Upcasts floating ``student`` / ``teacher`` with ``.float()`` (gradients still reach a
    low-precision student), detaches the teacher, and runs ``fn`` with autocast
    disabled for the student's device: softmax/log/exp of bf16 logits lose too much,
    and autocast would otherwise re-downcast the matmuls inside similarity losses.
    """

    @functools.wraps(fn)
    def wrapper(student: Tensor, teacher: Tensor, mask: Tensor | None = None,
                **options: Any) -> Tensor:
        with _autocast_off(student.device.type):
            return fn(_upcast(student), _upcast(teacher).detach(), mask, **options)

    return wrapper


def as_bool_mask(mask: Tensor | None, shape: torch.Size | tuple[int, ...],
                 what: str) -> Tensor | None:
    """``mask`` (bool or 0/1 of any dtype) as a bool tensor, checked against ``shape``."""
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{what} mask must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    return mask.detach() != 0


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` over positions where ``mask`` is True.

    Args:
        values: any shape.
        mask: bool, broadcastable to ``values``; ``None`` means every position counts.

    Returns:
        0-dim tensor; 0 when nothing is unmasked (an all-padding batch adds no loss
        instead of NaN). Masked positions are selected out, so NaN/inf there never leaks.
    """
    if mask is None:
        return values.mean()
    mask = mask.expand_as(values)
    total = torch.where(mask, values, values.new_zeros(())).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)
