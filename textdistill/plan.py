"""The distillation plan: a config checked against the models it will train.

:func:`plan` is the one place where a :class:`~textdistill.config.DistillationConfig`
meets real models. It expands a preset into matches, checks every match's layers,
teacher and loss, the teacher weights and the label counts, builds the projections the
widths call for, and notes where attention maps are head-averaged. Everything it rejects
is a :class:`~textdistill.errors.ConfigError` naming the recipe key, raised before any
training starts. The :class:`~textdistill.distiller.Distiller`, ``textdistill check`` and
evaluation all go through it.

A teacher that reads the text through its own tokenizer (``teacher.tokenizer: own``)
splits it into other tokens than the student: its hidden states and attention maps have
other positions, so token-level matches with it are refused. Logit losses and
sentence-level hidden matches (a loss registered ``sentence_level``, such as ``pkd``,
which reads only the first token) work, the latter with a projection where the widths
differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch

from .config import DistillationConfig, Match, MatchPreset
from .errors import ConfigError
from .losses import available_losses, get_loss, is_sentence_level, loss_kind, losses_of_kind
from .models.adaptors import ModelDims, model_dims
from .models.mapping import matches_from_mapping
from .models.projections import build_projections


@dataclass
class Plan:
    """What a run will match and train besides the student.

    Attributes:
        matches: the resolved matches, presets expanded; each ``match.name`` is unique.
        projections: ``match.name -> Projection`` for the hidden matches that need one.
        notes: things worth telling the user (head-averaged attention maps).
    """

    matches: list[Match] = field(default_factory=list)
    projections: torch.nn.ModuleDict = field(default_factory=torch.nn.ModuleDict)
    notes: list[str] = field(default_factory=list)


def _dims(model: torch.nn.Module, who: str) -> ModelDims:
    try:
        return model_dims(model)
    except ValueError as err:
        raise ConfigError(f"{who}: {err}") from None


_KIND_WORDS = {"logits": "logits", "labels": "logits against gold labels",
               "hidden": "hidden states", "attention": "attention maps"}


def _check_kind(key: str, name: str, expected: str, user: str) -> None:
    """Refuse a loss registered for another input than the one ``user`` gives it."""
    kind = loss_kind(name)
    if kind is None or kind == expected:
        return
    raise ConfigError(f"{key}: {name!r} compares {_KIND_WORDS[kind]}, but {user} compares "
                      f"{_KIND_WORDS[expected]}; the losses for {_KIND_WORDS[expected]} are "
                      f"{losses_of_kind(expected)}")


def _check_losses(config: DistillationConfig, matches: list[tuple[str, Match]]) -> None:
    valid = available_losses()
    named = [("distill.logit_loss", config.logit_loss)]
    named += [(f"{key}.loss", match.loss) for key, match in matches]
    for key, name in named:
        if name is not None and name not in valid:
            raise ConfigError(f"{key}: {name!r} is not a registered loss; choose one of {valid}")
    if config.logit_loss is not None:
        _check_kind("distill.logit_loss", config.logit_loss, "logits", "the logit loss")
    for key, match in matches:
        _check_kind(f"{key}.loss", match.loss, match.feature, f"this {match.feature} match")


# The logit loss's arguments that the objective fills in itself, and from where.
_ENGINE_ARGUMENTS = {"temperature": "distill.temperature", "labels": "the batch's gold labels"}


def _check_logit_options(config: DistillationConfig, num_labels: int) -> None:
    """Refuse options the logit loss does not take, before they fail its first call."""
    options = config.logit_loss_options
    name = config.logit_loss
    if name is None:
        if options:
            raise ConfigError("distill.logit_loss_options: set, but distill.logit_loss is "
                              "null (no logit loss to pass them to)")
        return
    loss = get_loss(name)
    # The first three parameters are every loss's student, teacher and mask.
    parameters = list(inspect.signature(loss).parameters.values())[3:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    accepted = [p.name for p in parameters if p.name not in _ENGINE_ARGUMENTS and p.kind in
                (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for option in options:
        if option in _ENGINE_ARGUMENTS:
            raise ConfigError(f"distill.logit_loss_options.{option}: set by textdistill from "
                              f"{_ENGINE_ARGUMENTS[option]}; remove it here")
        if not takes_any and option not in accepted:
            choices = f"its options are {accepted}" if accepted else "it takes no options"
            raise ConfigError(f"distill.logit_loss_options.{option}: {name} has no option "
                              f"{option!r}; {choices}")
    if not options:
        return
    # Option values (a mode name, a weight) are checked by the loss itself: one call on a
    # tiny batch finds a bad one now rather than at the first training step.
    logits = torch.zeros(2, num_labels)
    try:
        loss(logits, logits, None, temperature=1.0, labels=torch.zeros(2, dtype=torch.long),
             **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"distill.logit_loss_options: {name} refuses {dict(options)!r}: "
                          f"{err}") from None


def _expand(config: DistillationConfig, student: ModelDims,
            teachers: list[ModelDims]) -> list[tuple[str, Match]]:
    """``(recipe key, match)`` for every match, a preset expanded against teacher 0."""
    if isinstance(config.matches, MatchPreset):
        preset = config.matches
        try:
            matches = matches_from_mapping(
                preset.preset, student.num_layers, teachers[0].num_layers,
                losses=preset.losses, projection=preset.projection, every=preset.every)
        except ConfigError as err:
            raise ConfigError(f"distill.matches: {err}") from None
        return [(f"distill.matches ({preset.preset})", m) for m in matches]
    return [(f"distill.matches[{i}]", m) for i, m in enumerate(config.matches)]


def _check_match(key: str, match: Match, student: ModelDims,
                 teachers: list[ModelDims]) -> None:
    if match.teacher_index >= len(teachers):
        raise ConfigError(f"{key}.teacher_index: {match.teacher_index} but there are "
                          f"{len(teachers)} teacher(s) (valid: 0..{len(teachers) - 1})")
    first = 1 if match.feature == "attention" else 0
    teacher = teachers[match.teacher_index]
    for side, layer, dims in (("student", match.student_layer, student),
                              ("teacher", match.teacher_layer, teacher)):
        if layer > dims.num_layers:
            raise ConfigError(f"{key}.{side}_layer: {layer} but the {side} has "
                              f"{dims.num_layers} layers (valid: {first}..{dims.num_layers})")


def _check_tokenizer(key: str, match: Match, own_tokenizer: Collection[int]) -> None:
    """Refuse a token-level match with a teacher that tokenizes the text its own way."""
    if match.teacher_index not in own_tokenizer:
        return
    if match.feature == "hidden" and is_sentence_level(match.loss):
        return
    what = "attention maps" if match.feature == "attention" else \
        f"hidden states token by token ({match.loss})"
    raise ConfigError(
        f"{key}: teacher {match.teacher_index} reads the text through its own tokenizer "
        f"(teacher.tokenizer: own), so its token positions do not line up with the "
        f"student's, and this match compares {what}. Across tokenizers use logit losses "
        "or a sentence-level hidden match (loss: pkd, on the first token)")


# Below this the softmax of typical logits is one-hot to float precision.
LOW_TEMPERATURE = 0.05


def _temperature_notes(config: DistillationConfig) -> list[str]:
    low = min(config.temperature.values)
    if config.logit_loss is None or low >= LOW_TEMPERATURE:
        return []
    return [f"distill.temperature: {low:g} is below {LOW_TEMPERATURE}: the teacher's soft "
            "targets are then almost its hard argmax (and the T^2-scaled KD term almost "
            "vanishes); use pseudo_ce if hard teacher labels are what you want"]


def plan(config: DistillationConfig | None, student: torch.nn.Module,
         teachers: Sequence[torch.nn.Module] = (),
         own_tokenizer: Collection[int] = ()) -> Plan:
    """Check ``config`` against ``student`` and ``teachers``; resolve matches and projections.

    Without teachers (fine-tuning) the plan is empty and ``config`` is not consulted.

    Args:
        config: the distillation config.
        student: the model to train.
        teachers: the teacher models.
        own_tokenizer: indices of the teachers that read the text through their own
            tokenizer, not the student's: only logit losses and sentence-level hidden
            matches may use them.

    Raises:
        ConfigError: naming the recipe key, for a match on a layer or teacher the models
            lack, a repeated match, an unregistered loss or one for another input (an
            attention loss on hidden states), a logit-loss option the loss does not take
            or refuses, a token-level match with a
            teacher of another tokenizer, a teacher-weight count that differs from the
            teacher count, or teachers whose label counts differ from the student's.
    """
    teachers = list(teachers)
    if not teachers or config is None:
        return Plan()
    student_dims = _dims(student, "the student")
    teacher_dims = [_dims(t, f"teacher {i}") for i, t in enumerate(teachers)]
    if config.teacher_weights is not None and len(config.teacher_weights) != len(teachers):
        raise ConfigError(f"distill.teacher_weights: {len(config.teacher_weights)} weight(s) "
                          f"for {len(teachers)} teacher(s)")
    for i, dims in enumerate(teacher_dims):
        if dims.num_labels != student_dims.num_labels:
            raise ConfigError(f"teacher.model: teacher {i} has {dims.num_labels} labels, the "
                              f"student {student_dims.num_labels}; they must agree")

    keyed = _expand(config, student_dims, teacher_dims)
    _check_losses(config, keyed)
    _check_logit_options(config, student_dims.num_labels)
    seen: dict[str, str] = {}
    notes = []
    for key, match in keyed:
        _check_match(key, match, student_dims, teacher_dims)
        _check_tokenizer(key, match, own_tokenizer)
        if match.name in seen:
            raise ConfigError(f"{key}: repeats {seen[match.name]} (same feature, layers, "
                              "teacher and loss)")
        seen[match.name] = key
        heads = teacher_dims[match.teacher_index].num_heads
        if match.feature == "attention" and heads != student_dims.num_heads:
            notes.append(f"{key}: the student has {student_dims.num_heads} attention heads and "
                         f"teacher {match.teacher_index} {heads}; {match.loss} compares their "
                         "head-averaged maps")
    notes.extend(_temperature_notes(config))
    matches = [match for _, match in keyed]
    projections = build_projections(matches, student_dims.hidden_size,
                                    [d.hidden_size for d in teacher_dims])
    return Plan(matches=matches, projections=projections, notes=list(dict.fromkeys(notes)))


__all__ = ["Plan", "plan"]
