"""How one batch's loss is computed. This is the only thing that differs between modes.

* **fine-tuning** (no teacher): hard-label cross-entropy.
* **distillation**: ``soft * logit_loss + hard * CE + intermediate * sum(match losses)``.
* **multi-teacher**: the same, on the weighted average of the teachers' logits;
  intermediate matches read from the teacher each match names.
* **self-distillation / born-again**: distillation with a teacher of the student's shape.

A training loop calls :func:`batch_loss` (the forwards, then
:meth:`Objective.__call__` on the views the adaptors produce) and never branches on the
mode itself: the :class:`~textdistill.distiller.Distiller` and the
:class:`~textdistill.integrations.DistillationTrainer` both do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .config import DistillationConfig, Match
from .losses import get_loss, probability_shift
from .models.adaptors import Adaptor, ModelView, ensure_eager_attention

if TYPE_CHECKING:
    from .teacher_cache import TeacherLogitCache
    from .teachers import Teachers


@dataclass
class LossOutput:
    """``total``: the scalar to backpropagate; ``components``: each unweighted term."""

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Weights:
    """The scheduled values in force at one point of training."""

    temperature: float
    soft: float
    hard: float
    intermediate: float


class Objective:
    """The loss of a batch, given the student's and the teachers' views.

    Args:
        config: the distillation config (``None`` for plain fine-tuning).
        matches: resolved intermediate matches (presets already expanded), each with a
            unique ``name`` (see :func:`textdistill.plan.plan`).
        projections: ``match.name -> module`` mapping student width to teacher width.
        num_teachers: 0 for fine-tuning.
    """

    def __init__(
        self,
        config: DistillationConfig | None,
        matches: list[Match],
        projections: torch.nn.ModuleDict,
        num_teachers: int,
    ):
        self.config = config
        self.matches = matches if num_teachers else []
        self.projections = projections
        self.num_teachers = num_teachers
        self.hard_loss = get_loss("hard_ce")
        if num_teachers and config is not None and config.logit_loss is not None:
            self.logit_loss = get_loss(config.logit_loss)
        else:
            self.logit_loss = None
        self.match_losses = {m.name: get_loss(m.loss) for m in self.matches}
        teacher_weights = (config.teacher_weights if config is not None else None) or \
            [1.0] * max(num_teachers, 1)
        total = float(sum(teacher_weights))
        self.teacher_weights = [w / total for w in teacher_weights]

    # -- what the loop must provide ---------------------------------------------------

    @property
    def needs_teacher_logits(self) -> bool:
        return self.logit_loss is not None

    @property
    def component_names(self) -> list[str]:
        """Every name :meth:`__call__`'s ``components`` may hold, in its order (a batch
        holds fewer when a weight is 0 or it has no labels)."""
        return (["kd"] if self.logit_loss is not None else []) + ["hard"] + \
            [match.name for match in self.matches]

    def student_needs(self) -> tuple[bool, bool]:
        """(hidden_states, attentions) the student's forward must return."""
        return (any(m.feature == "hidden" for m in self.matches),
                any(m.feature == "attention" for m in self.matches))

    def teacher_needs(self, index: int) -> tuple[bool, bool]:
        """(hidden_states, attentions) teacher ``index``'s forward must return."""
        mine = [m for m in self.matches if m.teacher_index == index]
        return (any(m.feature == "hidden" for m in mine),
                any(m.feature == "attention" for m in mine))

    def needs_teacher_forward(self, index: int, logits_cached: bool) -> bool:
        """Whether teacher ``index`` must run on this batch at all."""
        return (self.needs_teacher_logits and not logits_cached) or any(self.teacher_needs(index))

    def ensure_attention_maps(self, student: torch.nn.Module,
                              teachers: Sequence[torch.nn.Module]) -> None:
        """Switch to eager attention the models whose attention maps a match reads (sdpa
        computes none; see :func:`~textdistill.models.adaptors.ensure_eager_attention`)."""
        if self.student_needs()[1]:
            ensure_eager_attention(student)
        for index, teacher in enumerate(teachers):
            if self.teacher_needs(index)[1]:
                ensure_eager_attention(teacher)

    # -- the loss ---------------------------------------------------------------------

    def weights(self, progress: float) -> Weights:
        """Temperature and loss weights at training ``progress`` in [0, 1]."""
        cfg = self.config
        if not self.num_teachers or cfg is None:
            return Weights(temperature=1.0, soft=0.0, hard=1.0, intermediate=0.0)
        return Weights(
            temperature=cfg.temperature.value(progress),
            soft=cfg.soft_weight.value(progress),
            hard=cfg.hard_weight.value(progress),
            intermediate=cfg.intermediate_weight.value(progress),
        )

    def combine_teacher_logits(self, per_teacher: list[torch.Tensor]) -> torch.Tensor:
        """Weighted average of the teachers' (B, C) logits, in fp32."""
        combined = per_teacher[0].float() * self.teacher_weights[0]
        for logits, weight in zip(per_teacher[1:], self.teacher_weights[1:]):
            combined = combined + logits.float() * weight
        return combined

    def __call__(
        self,
        student: ModelView,
        labels: torch.Tensor | None,
        progress: float,
        teacher_logits: list[torch.Tensor] | None = None,
        teachers: list[ModelView | None] | None = None,
    ) -> LossOutput:
        """Loss of one batch.

        Args:
            student: the student's view (logits (B, C), and the hidden states /
                attentions named by :meth:`student_needs`).
            labels: (B,) gold labels, or ``None`` for unlabeled transfer data.
            progress: training progress in [0, 1] (drives the schedules).
            teacher_logits: one (B, C) tensor per teacher (live or cached).
            teachers: one view per teacher (``None`` where it did not run).
        """
        w = self.weights(progress)
        components: dict[str, torch.Tensor] = {}
        total = student.logits.new_zeros((), dtype=torch.float32)

        if self.logit_loss is not None and w.soft > 0:
            target = self.combine_teacher_logits(teacher_logits)
            if self.config.probability_shift and labels is not None:
                target = probability_shift(target, labels)
            kd = self.logit_loss(student.logits, target, temperature=w.temperature,
                                 labels=labels, **self.config.logit_loss_options)
            components["kd"] = kd
            total = total + w.soft * kd

        if labels is not None and w.hard > 0:
            hard = self.hard_loss(student.logits, labels)
            components["hard"] = hard
            total = total + w.hard * hard

        if self.matches and w.intermediate > 0:
            mask = student.attention_mask
            for match in self.matches:
                s_feat, t_feat = self._features(match, student, teachers[match.teacher_index])
                loss = self.match_losses[match.name](s_feat, t_feat, mask)
                components[match.name] = loss
                total = total + w.intermediate * match.weight * loss
        return LossOutput(total=total, components=components)

    def _features(self, match: Match, student: ModelView, teacher: ModelView | None):
        if teacher is None:
            raise RuntimeError(f"match {match.name} needs teacher {match.teacher_index}'s "
                               "forward, which did not run")
        if match.feature == "hidden":
            s_feat = student.hidden_states[match.student_layer]
            t_feat = teacher.hidden_states[match.teacher_layer]
            if match.name in self.projections:
                s_feat = self.projections[match.name](s_feat)
        else:
            s_feat = student.attentions[match.student_layer - 1]
            t_feat = teacher.attentions[match.teacher_layer - 1]
        return s_feat, t_feat


def batch_loss(
    objective: Objective,
    student: torch.nn.Module,
    batch: Mapping[str, Any],
    progress: float,
    *,
    adaptor: Adaptor,
    teachers: Teachers,
    cache: TeacherLogitCache | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> tuple[LossOutput, ModelView]:
    """The loss of ``batch`` and the student's view: the one path from a batch to its loss.

    Runs the student (asking for the features the matches read) and the teachers (or reads
    their cached logits) under ``autocast``, then calls ``objective`` outside it, so that
    the losses see the views as the forwards returned them.

    Args:
        objective: the run's :class:`Objective` (or anything that wraps one).
        student: the model being trained (possibly wrapped in DDP).
        batch: padded tensors: the student's token columns, the teachers' own
            (``t{i}_*``), ``labels`` (-100 marks a row without one), ``idx`` for the cache.
        progress: training progress in [0, 1] (drives the schedules).
        adaptor: runs the student (see :mod:`textdistill.models.adaptors`).
        teachers: the frozen teachers and how each reads the batch.
        cache: cached teacher logits, keyed by ``batch["idx"]``.
        autocast: the mixed-precision context of the forwards.
    """
    need_hidden, need_attentions = objective.student_needs()
    with autocast():
        view = adaptor(student, batch, hidden_states=need_hidden, attentions=need_attentions)
        t_logits, t_views = teachers.outputs(batch, objective, cache,
                                             objective.needs_teacher_logits)
    return objective(view, batch.get("labels"), progress, t_logits, t_views), view
