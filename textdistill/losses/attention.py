"""Losses on self-attention maps.

Shapes: ``student`` is (B, Hs, T, T) and ``teacher`` is (B, Ht, T, T), indexed
(batch, head, query, key). By default they are attention probabilities (each row sums
to 1 over the key axis), as returned by ``output_attentions=True``; with
``scores=True`` they are pre-softmax scores. ``mask`` is the optional (B, T) attention
mask (1 = real token, 0 = padding); a (query, key) position counts only when both
tokens are real, and the normaliser counts only those positions.

Pre-softmax scores carry the model's additive mask: padded keys hold large negatives
(-1e4 in older BERT code, ``finfo.min`` in newer). Any score ``<= mask_below`` (default
-1e3) is treated as masked, even without a ``mask``, so those values never produce inf
or NaN. The default sits well below real scores yet above -1e4 rounded to bf16 (-9984).

When head counts differ, each side is first averaged over its heads (a head-averaged
map for MSE, the mixture of the heads' distributions for KL); with equal counts heads
are compared one to one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import as_bool_mask, fp32_loss, masked_mean, register_loss

# Fill for masked scores before a softmax: exp(-1e4 - real score) is exactly 0 in fp32,
# and unlike -inf it keeps every log-probability finite.
_NEG = -1e4


def _check_attention(student: Tensor, teacher: Tensor, name: str) -> None:
    if (student.dim() != 4 or teacher.dim() != 4 or student.shape[0] != teacher.shape[0]
            or student.shape[2:] != teacher.shape[2:] or student.shape[2] != student.shape[3]):
        raise ValueError(
            f"{name} needs (B, heads, T, T) student and teacher attention maps with the same "
            f"B and T, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def _pair_mask(mask: Tensor | None, student: Tensor) -> Tensor | None:
    """(B, 1, T, T) bool: query and key both real; ``None`` without a mask."""
    m = as_bool_mask(mask, (student.shape[0], student.shape[-1]), "attention (B, T)")
    return None if m is None else m[:, None, :, None] & m[:, None, None, :]


def _heads_match(student: Tensor, teacher: Tensor) -> bool:
    return student.shape[1] == teacher.shape[1]


@register_loss("attention_mse", kind="attention")
@fp32_loss
def attention_mse(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
                  scores: bool = False, mask_below: float = -1e3) -> Tensor:
    """Mean squared error between attention maps (TinyBERT), over real (query, key) pairs.

    Args:
        student: (B, Hs, T, T) attention probabilities, or scores with ``scores=True``.
        teacher: (B, Ht, T, T), same kind (detached).
        mask: optional (B, T) attention mask.
        scores: the inputs are pre-softmax scores; values ``<= mask_below`` count as 0
            (TinyBERT's treatment of masked scores).
        mask_below: threshold for masked scores (see the module docstring).

    Returns:
        0-dim float32: squared error averaged over heads and real (query, key) pairs.
        If ``Hs != Ht`` both sides are head-averaged first.
    """
    _check_attention(student, teacher, "attention_mse")
    pairs = _pair_mask(mask, student)
    if scores:
        student = torch.where(student <= mask_below, student.new_zeros(()), student)
        teacher = torch.where(teacher <= mask_below, teacher.new_zeros(()), teacher)
    if pairs is not None:
        student = torch.where(pairs, student, student.new_zeros(()))
        teacher = torch.where(pairs, teacher, teacher.new_zeros(()))
    if not _heads_match(student, teacher):
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    return masked_mean((student - teacher).pow(2), pairs)


def _log_probs(x: Tensor, pairs: Tensor | None, scores: bool,
               mask_below: float) -> Tensor:
    """Finite log attention probabilities (B, H, T, T), 0 probability at masked keys."""
    if scores:
        masked = x <= mask_below
        if pairs is not None:
            masked = masked | ~pairs
        return torch.log_softmax(x.masked_fill(masked, _NEG), dim=-1)
    if pairs is not None:
        x = torch.where(pairs, x, x.new_zeros(()))
    # The clamp keeps log(0) at masked keys finite; there the teacher's probability is 0,
    # so the KL term is 0 * finite = 0.
    return x.clamp_min(torch.finfo(x.dtype).tiny).log()


def _mix_heads(log_p: Tensor) -> Tensor:
    p = log_p.exp().mean(1, keepdim=True)
    return p.clamp_min(torch.finfo(p.dtype).tiny).log()


@register_loss("attention_kl", kind="attention")
@fp32_loss
def attention_kl(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
                 scores: bool = False, mask_below: float = -1e3) -> Tensor:
    """MiniLM's attention transfer: ``KL(teacher || student)`` per query row.

    The KL is summed over real keys, then averaged over heads and real query positions.

    Args:
        student: (B, Hs, T, T) attention probabilities, or scores with ``scores=True``.
        teacher: (B, Ht, T, T), same kind (detached).
        mask: optional (B, T) attention mask.
        scores: the inputs are pre-softmax scores; a log-softmax over the real keys (and
            over keys scoring above ``mask_below``) makes the distributions.
        mask_below: threshold for masked scores (see the module docstring).

    Returns:
        0-dim float32, >= 0. If ``Hs != Ht`` each side's heads are mixed (their
        distributions averaged) first.
    """
    _check_attention(student, teacher, "attention_kl")
    pairs = _pair_mask(mask, student)
    log_s = _log_probs(student, pairs, scores, mask_below)
    log_t = _log_probs(teacher, pairs, scores, mask_below)
    if not _heads_match(student, teacher):
        log_s, log_t = _mix_heads(log_s), _mix_heads(log_t)
    terms = log_t.exp() * (log_t - log_s)  # (B, H, T, T)
    if pairs is not None:
        terms = torch.where(pairs, terms, terms.new_zeros(()))
    per_query = terms.sum(-1)  # (B, H, T)
    queries = None if pairs is None else pairs.any(-1)  # (B, 1, T): real query rows
    return masked_mean(per_query, queries)
