"""The teachers' side of a run: frozen models, the token ids each reads, their logits.

A teacher either reads the student's batch or, with its own tokenizer
(``teacher.tokenizer: own``), its own token columns ``t{i}_*``
(:func:`~textdistill.data.batching.teacher_batch`). Everything that runs a teacher goes
through :class:`Teachers`: the live forward of a training step, the teacher-logit cache
and evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from .data.batching import teacher_batch, teacher_prefix
from .models.adaptors import Adaptor, unwrap_model
from .objective import Objective
from .teacher_cache import TeacherLogitCache, data_fingerprint, teacher_fingerprint


def _pad_ids(models: Sequence[torch.nn.Module], tokenizers: Mapping[int, Any]) -> dict[int, int]:
    """``{teacher index: pad id}`` of the teachers with their own tokenizer.

    Raises:
        ValueError: an index names no teacher.
    """
    pad_ids = {}
    for index, tokenizer in tokenizers.items():
        if not 0 <= index < len(models):
            raise ValueError(f"teacher_tokenizers: index {index} but there are "
                             f"{len(models)} teacher(s)")
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(unwrap_model(models[index]).config, "pad_token_id", None)
        pad_ids[index] = 0 if pad is None else pad
    return pad_ids


class Teachers:
    """The teacher models of a run and how each is fed.

    Args:
        models: the teachers, in ``teacher_index`` order.
        adaptor: turns a teacher's outputs into a ``ModelView``.
        tokenizers: ``{teacher index: tokenizer}`` for the teachers that read their own
            token columns (empty: all read the student's).
    """

    def __init__(self, models: Sequence[torch.nn.Module], adaptor: Adaptor,
                 tokenizers: Mapping[int, Any] | None = None):
        self.models = list(models)
        self.adaptor = adaptor
        self.pad_ids = _pad_ids(self.models, tokenizers or {})

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[torch.nn.Module]:
        return iter(self.models)

    def index_of(self, model: torch.nn.Module) -> int | None:
        """The index of ``model`` among the teachers, or ``None`` (say, the student)."""
        return next((i for i, t in enumerate(self.models) if t is model), None)

    def prepare(self, device: torch.device) -> None:
        """On ``device``, in eval mode, frozen: never trained, never wrapped in DDP."""
        for teacher in self.models:
            teacher.to(device)
            teacher.eval()
            teacher.requires_grad_(False)

    def batch_for(self, batch: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        """What teacher ``index`` reads of ``batch``: its own token columns when it has
        its own tokenizer, else the student's batch."""
        return teacher_batch(batch, index) if index in self.pad_ids else batch

    def logits(self, batch: Mapping[str, Any], index: int | None = None) -> list[torch.Tensor]:
        """``(B, C)`` logits of every teacher (or only of teacher ``index``)."""
        indices = range(len(self.models)) if index is None else [index]
        return [self.adaptor(self.models[i], self.batch_for(batch, i)).logits for i in indices]

    @torch.no_grad()
    def outputs(self, batch: Mapping[str, Any], objective: Objective,
                cache: TeacherLogitCache | None, need_logits: bool):
        """Per-teacher logits (cached or live) and views (where a forward ran)."""
        views: list = []
        logits: list = []
        cached = cache.lookup(batch["idx"]) if cache is not None else None
        for index, teacher in enumerate(self.models):
            hidden, attentions = objective.teacher_needs(index)
            if objective.needs_teacher_forward(index, logits_cached=cached is not None):
                view = self.adaptor(teacher, self.batch_for(batch, index), hidden_states=hidden,
                                    attentions=attentions)
                views.append(view)
                logits.append(view.logits if cached is None else cached[index])
            else:
                views.append(None)
                logits.append(cached[index] if cached is not None else None)
        return (logits if need_logits else None), views

    def fingerprint(self, dataset: Any, pad_to: int | None) -> str:
        """What the cached logits of ``dataset`` depend on: the teachers' weights and the
        token ids each of them reads."""
        prefixes = sorted({teacher_prefix(i) if i in self.pad_ids else ""
                           for i in range(len(self.models))})
        return teacher_fingerprint(self.models, data_fingerprint(dataset, prefixes), pad_to)


__all__ = ["Teachers"]
