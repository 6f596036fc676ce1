"""Losses on hidden states.

Shapes: ``student`` is (B, T, Hs), ``teacher`` is (B, T, Ht); ``mask`` is the optional
(B, T) attention mask (1 = real token, 0 = padding). Padding never contributes: padded
positions are zeroed before any arithmetic (so even inf/NaN there is harmless) and the
normaliser counts real positions only.

:func:`hidden_mse` and :func:`hidden_cos` need equal widths (put a projection on the
match when they differ); :func:`hidden_mmd` compares across widths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import as_bool_mask, fp32_loss, masked_mean, register_loss

# Guards the norm in cosine similarities: a zeroed (padded) vector gets similarity 0.
_EPS = 1e-8


def _check_hidden(student: Tensor, teacher: Tensor, name: str, same_width: bool) -> None:
    if student.dim() != 3 or teacher.dim() != 3 or student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f"{name} needs (B, T, H) student and teacher hidden states with the same B and "
            f"T, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if same_width and student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"{name} needs equal hidden widths, got student {student.shape[-1]} and teacher "
            f"{teacher.shape[-1]}; add a projection to the match (e.g. projection: linear) "
            "or use hidden_mmd"
        )


def _token_mask(mask: Tensor | None, student: Tensor) -> Tensor | None:
    return as_bool_mask(mask, student.shape[:2], "attention (B, T)")


def _zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else torch.where(mask[..., None], x, x.new_zeros(()))


@register_loss("hidden_mse", kind="hidden")
@fp32_loss
def hidden_mse(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error over real tokens and hidden units.

    Args:
        student: (B, T, H) student hidden states (projected to the teacher's width).
        teacher: (B, T, H) teacher hidden states (detached).
        mask: optional (B, T) attention mask.

    Returns:
        0-dim float32: ``sum over real tokens and units of (s - t)**2 / (n_real * H)``.

    Raises:
        ValueError: the widths differ.
    """
    _check_hidden(student, teacher, "hidden_mse", same_width=True)
    m = _token_mask(mask, student)
    diff = _zero_padding(student, m) - _zero_padding(teacher, m)
    return masked_mean(diff.pow(2).mean(-1), m)


@register_loss("hidden_cos", kind="hidden")
@fp32_loss
def hidden_cos(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """DistilBERT's cosine loss: mean over real tokens of ``1 - cos(s_tok, t_tok)``.

    Args:
        student: (B, T, H) student hidden states.
        teacher: (B, T, H) teacher hidden states (detached).
        mask: optional (B, T) attention mask.

    Returns:
        0-dim float32 in [0, 2].
    """
    _check_hidden(student, teacher, "hidden_cos", same_width=True)
    m = _token_mask(mask, student)
    cos = F.cosine_similarity(_zero_padding(student, m), _zero_padding(teacher, m),
                              dim=-1, eps=_EPS)  # (B, T)
    return masked_mean(1.0 - cos, m)


# Sentence-level: it reads only position 0, so it works across tokenizers.
@register_loss("pkd", sentence_level=True, kind="hidden")
@fp32_loss
def pkd(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """Patient-KD: squared distance between L2-normalised [CLS] vectors.

    ``mean_b || s_b / ||s_b|| - t_b / ||t_b|| ||**2`` with ``s_b``, ``t_b`` the vectors at
    position 0 (which assumes right padding, as BERT-style tokenizers do).

    Args:
        student: (B, T, H) hidden states (position 0 is used) or (B, H) [CLS] vectors.
        teacher: the same shape as ``student`` (detached).
        mask: ignored: position 0 is always a real token.

    Returns:
        0-dim float32 in [0, 4].
    """
    if student.dim() == 3:
        student = student[:, 0]
    if teacher.dim() == 3:
        teacher = teacher[:, 0]
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"pkd needs (B, T, H) or (B, H) student and teacher states of the same width, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}; add a projection if "
            "the widths differ"
        )
    s = F.normalize(student, p=2, dim=-1, eps=_EPS)
    t = F.normalize(teacher, p=2, dim=-1, eps=_EPS)
    return (s - t).pow(2).sum(-1).mean()


@register_loss("hidden_mmd", kind="hidden")
@fp32_loss
def hidden_mmd(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """Match token-token cosine-similarity matrices; the widths may differ.

    For each example, ``S_ij = cos(s_i, s_j)`` and ``G_ij = cos(t_i, t_j)`` (T x T). The
    loss is the mean of ``(S_ij - G_ij)**2`` over pairs where both tokens are real
    (like TextBrewer's ``mmd``/``nst`` losses, which also need no projection).

    Args:
        student: (B, T, Hs) student hidden states.
        teacher: (B, T, Ht) teacher hidden states (detached).
        mask: optional (B, T) attention mask.

    Returns:
        0-dim float32.
    """
    _check_hidden(student, teacher, "hidden_mmd", same_width=False)
    m = _token_mask(mask, student)
    s = F.normalize(_zero_padding(student, m), p=2, dim=-1, eps=_EPS)
    t = F.normalize(_zero_padding(teacher, m), p=2, dim=-1, eps=_EPS)
    diff = s @ s.transpose(1, 2) - t @ t.transpose(1, 2)  # (B, T, T)
    pairs = None if m is None else m[:, :, None] & m[:, None, :]
    return masked_mean(diff.pow(2), pairs)
