"""Losses on classifier logits.

Shapes: ``student`` and ``teacher`` are (B, C) logits; ``mask`` is an optional (B,)
per-example mask (bool or 0/1), and every loss is the mean over unmasked examples.

Every logit loss takes the keyword-only ``temperature`` and ``labels`` (B,) options,
because the engine passes both to whichever logit loss a recipe names; a loss ignores
what it does not use. Soft losses multiply by ``T**2`` so their gradients keep the same
scale as the hard loss's when the temperature changes (Hinton et al., 2015).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import as_bool_mask, fp32_loss, masked_mean, register_loss


def _check_logits(student: Tensor, teacher: Tensor, temperature: float) -> None:
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"logit losses need (B, C) student and teacher logits of the same shape, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def _example_mask(mask: Tensor | None, logits: Tensor) -> Tensor | None:
    return as_bool_mask(mask, logits.shape[:1], "per-example (B,)")


def _zero_masked_rows(x: Tensor, mask: Tensor | None) -> Tensor:
    # Garbage (even inf/NaN) in a masked row must not reach softmax: its NaN gradient
    # would survive the final masked mean (0 * NaN = NaN).
    return x if mask is None else torch.where(mask[:, None], x, x.new_zeros(()))


@register_loss("kd_ce", kind="logits")
@fp32_loss
def kd_ce(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
          temperature: float = 1.0, labels: Tensor | None = None) -> Tensor:
    """Soft cross-entropy with the teacher's softened distribution, times ``T**2``.

    ``T**2 * mean_b( -sum_c softmax(t_b / T)_c * log_softmax(s_b / T)_c )``.

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits (detached).
        mask: optional (B,) example mask.
        temperature: softmax temperature T.
        labels: ignored.

    Returns:
        0-dim float32 loss. Differs from :func:`kd_kl` by the teacher's entropy, a
        constant for the student.
    """
    _check_logits(student, teacher, temperature)
    m = _example_mask(mask, student)
    student, teacher = _zero_masked_rows(student, m), _zero_masked_rows(teacher, m)
    p_t = F.softmax(teacher / temperature, dim=-1)
    per_example = -(p_t * F.log_softmax(student / temperature, dim=-1)).sum(-1)  # (B,)
    return masked_mean(per_example, m) * temperature**2


@register_loss("kd_kl", kind="logits")
@fp32_loss
def kd_kl(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
          temperature: float = 1.0, labels: Tensor | None = None) -> Tensor:
    """``KL(softmax(t/T) || softmax(s/T))`` summed over classes, batch-mean, times ``T**2``.

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits (detached).
        mask: optional (B,) example mask.
        temperature: softmax temperature T.
        labels: ignored.

    Returns:
        0-dim float32 loss (>= 0, and 0 when the logits agree up to a per-row shift).
    """
    _check_logits(student, teacher, temperature)
    m = _example_mask(mask, student)
    student, teacher = _zero_masked_rows(student, m), _zero_masked_rows(teacher, m)
    log_t = F.log_softmax(teacher / temperature, dim=-1)
    log_s = F.log_softmax(student / temperature, dim=-1)
    # Log-space on both sides: a teacher probability that underflows to 0 gives
    # 0 * finite, never 0 * log(0).
    per_example = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B,)
    return masked_mean(per_example, m) * temperature**2


@register_loss("kd_mse", kind="logits")
@fp32_loss
def kd_mse(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
           temperature: float = 1.0, labels: Tensor | None = None) -> Tensor:
    """Mean squared error between ``s / T`` and ``t / T`` (no ``T**2`` factor).

    Mean over classes, then over unmasked examples. With ``T = 1`` this is raw logit
    matching (Ba & Caruana), also the loss for regression heads (C = 1).

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits (detached).
        mask: optional (B,) example mask.
        temperature: divides both sides.
        labels: ignored.
    """
    _check_logits(student, teacher, temperature)
    m = _example_mask(mask, student)
    student, teacher = _zero_masked_rows(student, m), _zero_masked_rows(teacher, m)
    per_example = ((student - teacher) / temperature).pow(2).mean(-1)  # (B,)
    return masked_mean(per_example, m)


@register_loss("pseudo_ce", kind="logits")
@fp32_loss
def pseudo_ce(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
              temperature: float = 1.0, labels: Tensor | None = None) -> Tensor:
    """Cross-entropy of the student against the teacher's top class (pseudo-labels).

    ``mean_b( -log_softmax(s_b)[argmax_c t_b] )``: self-training's hard teacher labels,
    the baseline that soft targets (:func:`kd_kl`) are measured against; a recipe switches
    between the two with ``distill.logit_loss`` alone. Every row takes the teacher's class,
    labelled or not (with ``distill.probability_shift`` the teacher's top class already is
    the gold one); the gold labels reach the student through ``hard_ce``
    (``distill.hard_weight``).

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits (detached); only their argmax is used.
        mask: optional (B,) example mask.
        temperature: ignored: a hard target has no temperature, so the loss is the plain
            CE at T = 1 with no ``T**2`` factor (like ``hard_ce``), whatever
            ``distill.temperature`` says. It is still checked to be > 0, as every logit
            loss does.
        labels: ignored.

    Returns:
        0-dim float32 loss; 0 when every example is masked.
    """
    _check_logits(student, teacher, temperature)
    m = _example_mask(mask, student)
    student, teacher = _zero_masked_rows(student, m), _zero_masked_rows(teacher, m)
    pseudo_labels = teacher.argmax(dim=-1)  # (B,)
    per_example = F.cross_entropy(student, pseudo_labels, reduction="none")  # (B,)
    return masked_mean(per_example, m)


# --------------------------------------------------------------------------- DKD


UNLABELED_MODES = ("teacher", "exclude")


def _dkd_targets(labels: Tensor | None, student: Tensor, teacher: Tensor, m: Tensor | None,
                 ignore_index: int, unlabeled: str) -> tuple[Tensor, Tensor]:
    """(target classes (B,) with excluded rows set to class 0, bool (B,) rows that count).

    Rows labelled ``ignore_index`` take the teacher's argmax as their target
    (``unlabeled="teacher"``) or are excluded (``"exclude"``).
    """
    if labels is None:
        raise ValueError("dkd needs the gold labels: pass labels=(B,) class indices")
    if labels.shape != student.shape[:1]:
        raise ValueError(f"labels must have shape {tuple(student.shape[:1])}, "
                         f"got {tuple(labels.shape)}")
    if unlabeled not in UNLABELED_MODES:
        raise ValueError(f"dkd: unlabeled must be one of {list(UNLABELED_MODES)}, "
                         f"got {unlabeled!r}")
    labels = labels.detach().long()
    missing = labels == ignore_index
    if unlabeled == "teacher":
        labels = torch.where(missing, teacher.detach().argmax(dim=-1), labels)
        valid = torch.ones_like(missing) if m is None else m
    else:
        valid = ~missing if m is None else ~missing & m
    return torch.where(valid, labels, torch.zeros_like(labels)), valid


def _split_log_probs(z: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Target / non-target decomposition of softmax(z), all in log space.

    Args:
        z: (B, C) tempered logits, C >= 2.
        target: (B, 1) class indices.

    Returns:
        ``log p_target`` (B,), ``log(1 - p_target)`` (B,), and the log-softmax over the
        C - 1 non-target classes (B, C - 1). ``log(1 - p)`` is
        ``logsumexp(non-target) - logsumexp(all)``, so it never takes log(0) even when
        p_target rounds to 1.
    """
    batch, classes = z.shape
    not_target = torch.ones_like(z, dtype=torch.bool).scatter_(1, target, False)
    # Dropping the target column (rather than filling it with -inf) gives exact zeros
    # for C = 2 and no -inf - -inf anywhere.
    others = z[not_target].view(batch, classes - 1)
    lse_all = torch.logsumexp(z, dim=-1)
    lse_others = torch.logsumexp(others, dim=-1)
    log_p_target = z.gather(1, target).squeeze(1) - lse_all
    return log_p_target, lse_others - lse_all, others - lse_others[:, None]


@fp32_loss
def _dkd_terms(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
               labels: Tensor | None, temperature: float, ignore_index: int,
               unlabeled: str, reduction: str) -> tuple[Tensor, Tensor]:
    # The body of dkd_terms, in the loss signature so fp32_loss can wrap it.
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    _check_logits(student, teacher, temperature)
    if student.shape[1] < 2:
        raise ValueError("dkd needs at least 2 classes")
    target, valid = _dkd_targets(labels, student, teacher, _example_mask(mask, student),
                                 ignore_index, unlabeled)
    student, teacher = _zero_masked_rows(student, valid), _zero_masked_rows(teacher, valid)
    target = target[:, None]

    lt_y, lt_rest, lt_other = _split_log_probs(teacher / temperature, target)
    ls_y, ls_rest, ls_other = _split_log_probs(student / temperature, target)
    tckd = lt_y.exp() * (lt_y - ls_y) + lt_rest.exp() * (lt_rest - ls_rest)  # (B,)
    nckd = (lt_other.exp() * (lt_other - ls_other)).sum(-1)  # (B,)
    scale = temperature**2
    if reduction == "none":
        zero = tckd.new_zeros(())
        return torch.where(valid, tckd, zero) * scale, torch.where(valid, nckd, zero) * scale
    return masked_mean(tckd, valid) * scale, masked_mean(nckd, valid) * scale


def dkd_terms(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float = 1.0,
              mask: Tensor | None = None, *, ignore_index: int = -100,
              unlabeled: str = "teacher", reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """The two terms of Decoupled KD (Zhao et al., CVPR 2022), each times ``T**2``.

    * TCKD: ``KL([p^t_y, 1 - p^t_y] || [p^s_y, 1 - p^s_y])`` (binary target vs rest).
    * NCKD: KL between teacher and student distributions over the non-target classes
      (softmax with class y removed); exactly 0 for C = 2.

    Per example they satisfy ``KL(p^t || p^s) = TCKD + (1 - p^t_y) * NCKD`` (all at
    temperature T). Computed in float32 with the teacher detached.

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits.
        labels: (B,) gold class indices; ``ignore_index`` marks a row without one.
        temperature: softmax temperature T.
        mask: optional (B,) example mask.
        unlabeled: what a row labelled ``ignore_index`` (an augmented transfer-set
            sentence) does: ``"teacher"`` decouples it at the teacher's argmax class,
            ``"exclude"`` leaves it out like a masked row.
        reduction: ``"mean"`` (over counted examples) or ``"none"`` ((B,) per example,
            0 at excluded rows).

    Returns:
        ``(tckd, nckd)``: 0-dim float32 tensors, or (B,) with ``reduction="none"``.
    """
    return _dkd_terms(student, teacher, mask, labels=labels, temperature=temperature,
                      ignore_index=ignore_index, unlabeled=unlabeled, reduction=reduction)


@register_loss("dkd", kind="logits")
@fp32_loss
def dkd(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
        temperature: float = 1.0, labels: Tensor | None = None, alpha: float = 1.0,
        beta: float = 8.0, ignore_index: int = -100, unlabeled: str = "teacher") -> Tensor:
    """Decoupled KD: ``alpha * TCKD + beta * NCKD`` (see :func:`dkd_terms`).

    DKD splits the distribution at a target class, which a row without a gold label
    (``ignore_index``, e.g. an augmented transfer-set sentence) lacks. By default such a
    row uses the teacher's top class, so unlabelled data still trains the student; pass
    ``unlabeled="exclude"`` (recipe: ``distill.logit_loss_options: {unlabeled:
    exclude}``) to leave those rows out instead.

    Args:
        student: (B, C) student logits.
        teacher: (B, C) teacher logits (detached).
        mask: optional (B,) example mask.
        temperature: softmax temperature T (both terms are times ``T**2``).
        labels: (B,) gold class indices; required. ``ignore_index`` marks a row without
            one.
        alpha: weight of the target-class term.
        beta: weight of the non-target term (the paper uses 8 on CIFAR).
        ignore_index: the label value of a row without a gold label.
        unlabeled: ``"teacher"`` (target = the teacher's argmax) or ``"exclude"``.

    Raises:
        ValueError: ``labels`` is missing, or ``unlabeled`` is neither mode.
    """
    if labels is None:
        raise ValueError("dkd needs the gold labels: pass labels=(B,) class indices")
    tckd, nckd = _dkd_terms(student, teacher, mask, labels=labels, temperature=temperature,
                            ignore_index=ignore_index, unlabeled=unlabeled, reduction="mean")
    return alpha * tckd + beta * nckd


# --------------------------------------------------------------------------- hard labels


@register_loss("hard_ce", kind="labels")
@fp32_loss
def hard_ce(student: Tensor, teacher: Tensor, mask: Tensor | None = None, *,
            temperature: float = 1.0, labels: Tensor | None = None,
            ignore_index: int = -100) -> Tensor:
    """Cross-entropy of the student's logits against the gold labels.

    Note: the second positional argument is **the gold labels**, not teacher logits;
    the name ``teacher`` only keeps the one loss signature.

    Args:
        student: (B, C) student logits.
        teacher: (B,) long gold class indices; rows equal to ``ignore_index`` are
            excluded (neither in the sum nor the normaliser).
        mask: optional (B,) example mask.
        temperature, labels: ignored (the true CE is always at T = 1).
        ignore_index: label value that marks "no label".

    Returns:
        0-dim float32 loss; 0 when no example counts.
    """
    gold = teacher
    if student.dim() != 2:
        raise ValueError(f"hard_ce needs (B, C) logits, got {tuple(student.shape)}")
    if gold.is_floating_point() or gold.shape != student.shape[:1]:
        raise ValueError(
            f"hard_ce's second argument must be the (B,) integer gold labels, got a "
            f"{gold.dtype} tensor of shape {tuple(gold.shape)}"
        )
    m = _example_mask(mask, student)
    valid = gold != ignore_index
    if m is not None:
        valid = valid & m
    safe = torch.where(valid, gold, torch.zeros_like(gold)).long()
    student = _zero_masked_rows(student, valid)
    per_example = F.cross_entropy(student, safe, reduction="none")  # (B,)
    return masked_mean(per_example, valid)


# --------------------------------------------------------------------------- helpers


def probability_shift(teacher_logits: Tensor, labels: Tensor,
                      ignore_index: int = -100) -> Tensor:
    """Make the gold class the teacher's top class by swapping two logits.

    Where the teacher's argmax ``k`` differs from the gold label ``y``, the logits at
    ``k`` and ``y`` trade places: the gold class becomes the top class and the rest of
    the distribution (its shape, its dark knowledge) is kept. Rows the teacher gets
    right, and rows labelled ``ignore_index``, are unchanged.

    Args:
        teacher_logits: (B, C) logits (not modified).
        labels: (B,) gold class indices; ``ignore_index`` marks a row without one (an
            augmented transfer-set sentence), which is left as the teacher gave it.
        ignore_index: the label value of a row without a gold label.

    Returns:
        A new (B, C) tensor.
    """
    if teacher_logits.dim() != 2 or labels.shape != teacher_logits.shape[:1]:
        raise ValueError(
            f"probability_shift needs (B, C) logits and (B,) labels, got "
            f"{tuple(teacher_logits.shape)} and {tuple(labels.shape)}"
        )
    top = teacher_logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    labels = labels.long()[:, None]
    # Unlabelled rows "swap" the top class with itself, a no-op.
    gold = torch.where(labels == ignore_index, top, labels)
    top_value = teacher_logits.gather(1, top)
    gold_value = teacher_logits.gather(1, gold)
    # When top == gold both writes hit the same cell with the same value: no change.
    return teacher_logits.scatter(1, top, gold_value).scatter(1, gold, top_value)
