"""From a validated recipe to the objects a run needs, with every check done up front.

:func:`build` loads the teacher(s), builds the student, loads and tokenizes the data and
checks - before any training step - that they fit together:

* every teacher is a complete fine-tuned classifier (no freshly initialised head);
* every teacher shares the first teacher's tokenizer, and a ``pretrained`` student has
  it too (:func:`~textdistill.models.student.check_tokenizers_match`), unless
  ``teacher.tokenizer: own``: then each teacher whose tokenizer differs from the
  student's reads the text through its own, from its own token columns
  (``t{i}_input_ids``, ... written at tokenization by
  :func:`~textdistill.data.loading.add_teacher_columns`);
* each teacher's classes are the data's classes, in the same order
  (:func:`~textdistill.models.student.check_label_mapping`); with
  ``teacher.remap_labels`` the data's labels are renumbered to the teacher's ids;
* ``data.max_length`` fits the models' position embeddings;
* ``data.augment`` (transfer-set augmentation) and ``data.transfer`` (unlabeled transfer
  texts) are only used with a teacher.

With ``data.augment.copies > 0`` a distillation run trains on the train split plus
``copies`` generated variants of each example (:mod:`textdistill.data.augment`). The
variants have no gold label: after tokenization their ``labels`` are -100
(:data:`~textdistill.prepare.IGNORE_INDEX`), which the hard loss skips, so only the teacher's soft targets
(and intermediate matches) train on them. Unlabeled texts from ``data.transfer``
(:mod:`textdistill.data.transfer`) are appended to the train split before augmentation,
so they are augmented too, and are unlabelled the same way.

Problems are :class:`~textdistill.config.ConfigError` naming the recipe key to fix.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from .config import TrainingConfig
from .errors import ConfigError
from .prepare import count_labels, load_data_labels, prepare_data
from .recipe import Recipe
from .refs import PYTHON_PREFIX, model_location

MODES = ("distill", "finetune")


@dataclass
class Built:
    """Everything a run needs, loaded and checked.

    Attributes:
        recipe: the recipe it was built from.
        mode: ``"distill"`` or ``"finetune"``.
        teachers: the teacher models (empty when fine-tuning).
        student: the model to train.
        tokenizer: the student's tokenizer (saved with ``best/``); with
            ``teacher.tokenizer: shared`` every teacher's too.
        teacher_tokenizers: ``{teacher index: tokenizer}`` of the teachers that read the
            text through their own tokenizer (``teacher.tokenizer: own`` and a tokenizer
            that differs from the student's); the data has their ``t{i}_*`` columns.
        data: tokenized ``DatasetDict`` with ``"train"`` and ``"eval"``, or ``None``
            when built without data.
        label_names: class names by model id, or ``None`` when unknown (no data and no
            ``data.label_names``).
        label_remap: ``{data label id: teacher id}`` when the labels were renumbered.
        notes: things the user should know (printed by the CLI).
        label_counts: ``{split: {class name: rows}}`` of the data read, or ``None``
            when none was read.
    """

    recipe: Recipe
    mode: str
    teachers: list[Any]
    student: Any
    tokenizer: Any
    data: Any = None
    label_names: list[str] | None = None
    label_remap: dict[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    teacher_tokenizers: dict[int, Any] = field(default_factory=dict)
    label_counts: dict[str, dict[str, int]] | None = None

    def training_config(self, **changes: Any) -> TrainingConfig:
        """The recipe's training config, with ``changes`` (a new object)."""
        return dataclasses.replace(self.recipe.train, **changes)


# ----------------------------------------------------------------------------- models


def _is_local(ref: str) -> bool:
    return ref.startswith(PYTHON_PREFIX) or Path(ref).is_absolute()


def _location(ref: str, key: str) -> str:
    location = model_location(ref, key)
    if _is_local(ref) and not Path(location).is_dir():
        raise ConfigError(f"{key}: no such model directory: {location}")
    return location


def load_classifier(ref: str | os.PathLike, key: str = "model", *, require_head: bool = True,
                    **kwargs: Any):
    """Load a sequence classifier from a recipe model reference.

    Args:
        ref: Hub id, directory (a ``str`` or a path) or ``python:<module>``.
        key: the recipe key, for messages.
        require_head: refuse a checkpoint whose weights lack part of the model (a base
            model whose classification head would be random).
        kwargs: passed to ``from_pretrained``.

    Raises:
        ConfigError: the model cannot be loaded, or (``require_head``) is incomplete.
    """
    from transformers import AutoModelForSequenceClassification

    ref = os.fspath(ref)
    location = _location(ref, key)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            location, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot load model {ref!r}: {' '.join(str(err).split())}") \
            from None
    missing = sorted(info.get("missing_keys") or ())
    if require_head and missing:
        raise ConfigError(
            f"{key}: {ref!r} is not a fine-tuned classifier: its checkpoint lacks "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}, which would be "
            "random. Fine-tune it first (textdistill finetune) or use a fine-tuned checkpoint"
        )
    return model


def load_tokenizer(ref: str | os.PathLike, key: str = "model"):
    """The tokenizer stored with a recipe model reference (Hub id, directory as a ``str``
    or a path, or ``python:<module>``); ``key`` names it in messages.

    Raises:
        ConfigError: it cannot be loaded.
    """
    from transformers import AutoTokenizer

    ref = os.fspath(ref)
    location = _location(ref, key)
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot load the tokenizer of {ref!r}: "
                          f"{' '.join(str(err).split())}") from None


def _id2label(model: Any) -> list[str]:
    id2label = model.config.id2label or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def _set_labels(model: Any, names: list[str]) -> None:
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def check_vocabulary(model: Any, tokenizer: Any, key: str) -> None:
    """Refuse a model whose input embedding has fewer rows than its tokenizer has ids: the
    first batch would fail with an IndexError (or a CUDA assert) inside the embedding."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") \
        else None
    if embeddings is None or tokenizer is None:
        return
    rows, vocabulary = embeddings.weight.shape[0], len(tokenizer)
    if rows < vocabulary:
        raise ConfigError(
            f"{key}: the model's input embedding has {rows} rows but the tokenizer it reads "
            f"has {vocabulary} tokens (ids {rows}..{vocabulary - 1} have no row); use a "
            "model and a tokenizer that belong together")


def _check_positions(model: Any, max_length: int, key: str) -> None:
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ConfigError(f"data.max_length: {max_length} exceeds the max_position_embeddings "
                          f"({positions}) of {key}; lower data.max_length")


# ------------------------------------------------------------------------------ build


def _check_mode(recipe: Recipe, mode: str) -> None:
    """Refuse a mode the recipe cannot run, before anything slow is loaded."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    augment = recipe.data.augment
    if mode == "finetune" and augment.enabled:
        raise ConfigError(
            f"data.augment.copies: {augment.copies}, but augmented sentences have no gold "
            "labels: only a teacher can label them. Distil with a teacher (`textdistill "
            "distill`) or set data.augment.copies=0 to fine-tune")
    if mode == "finetune" and recipe.data.transfer.enabled:
        raise ConfigError(
            "data.transfer: transfer texts have no gold labels: only a teacher can label "
            "them. Distil with a teacher (`textdistill distill`) or remove data.transfer "
            "to fine-tune")
    if mode == "finetune" and recipe.student.prune is not None:
        raise ConfigError(
            "student.prune: a pruned student is recovered by distillation from the recipe's "
            "teacher; run `textdistill distill`, or remove student.prune to fine-tune")
    if mode == "distill" and not recipe.teacher_models:
        raise ConfigError("teacher: `textdistill distill` needs a teacher section "
                          "(teacher.model); to train on labels alone use `textdistill finetune`")


# Ends every tokenizer-mismatch error of a recipe that did not ask to cross tokenizers.
_OWN_TOKENIZER_HINT = ("; to let each model read the text through its own tokenizer, set "
                       "teacher.tokenizer: own")


def _own_tokenizers(recipe: Recipe) -> bool:
    """Whether the recipe lets each teacher read the text through its own tokenizer."""
    return recipe.teacher is not None and recipe.teacher.tokenizer == "own"


def _same_tokenizer(a: Any, b: Any) -> bool:
    from .models.student import check_tokenizers_match

    try:
        check_tokenizers_match(a, b)
    except ValueError:
        return False
    return True


def _load_teachers(recipe: Recipe, mode: str) -> tuple[list[Any], list[Any]]:
    """The teachers (only the first when fine-tuning) and their tokenizers, checked to be
    one tokenizer unless ``teacher.tokenizer: own``; ``([], [])`` when the recipe names
    none."""
    from .models.student import check_tokenizers_match

    refs = recipe.teacher_models
    teachers, tokenizers = [], []
    for i, ref in enumerate(refs if mode == "distill" else refs[:1]):
        key = "teacher.model" if len(refs) == 1 else f"teacher.model[{i}]"
        # A from_teacher/config student built for fine-tuning needs the teacher's
        # architecture only; its head may be untrained.
        teachers.append(load_classifier(ref, key, require_head=mode == "distill"))
        tokenizers.append(load_tokenizer(ref, key))
    if _own_tokenizers(recipe):
        return teachers, tokenizers
    for i in range(1, len(tokenizers)):
        try:
            check_tokenizers_match(tokenizers[0], tokenizers[i])
        except ValueError as err:
            raise ConfigError(f"teacher.model[{i}]: shares no tokenizer with "
                              f"teacher.model[0]: {err}{_OWN_TOKENIZER_HINT}") from None
    return teachers, tokenizers


def _load_student_tokenizer(recipe: Recipe, teacher_tokenizer: Any) -> Any:
    """A ``pretrained`` student's own tokenizer, checked against the teachers'; ``None``
    for the other kinds, which take the teacher's."""
    if recipe.student.kind != "pretrained":
        return None
    tokenizer = load_tokenizer(recipe.student.pretrained, "student.pretrained")
    if teacher_tokenizer is not None and not _own_tokenizers(recipe):
        from .models.student import check_tokenizers_match

        try:
            check_tokenizers_match(teacher_tokenizer, tokenizer)
        except ValueError as err:
            raise ConfigError(f"student.pretrained: {err}{_OWN_TOKENIZER_HINT}") from None
    return tokenizer


def _teachers_reading_own_tokenizer(recipe: Recipe, tokenizers: list[Any],
                                    student_tokenizer: Any, notes: list[str]) -> dict[int, Any]:
    """``{teacher index: tokenizer}`` of the teachers whose tokenizer differs from the
    student's (``teacher.tokenizer: own``); a teacher that encodes text like the student
    reads the student's token ids, and token-level matches with it stay possible."""
    if not _own_tokenizers(recipe):
        return {}
    own = {}
    for index, tokenizer in enumerate(tokenizers):
        if _same_tokenizer(tokenizer, student_tokenizer):
            key = "teacher.model" if len(tokenizers) == 1 else f"teacher.model[{index}]"
            notes.append(f"{key} encodes text like the student: it reads the student's token "
                         "ids")
        else:
            own[index] = tokenizer
    return own


def _make_student(recipe: Recipe, teachers: list[Any], label_names: list[str] | None):
    """The student with the run's class names, its ``max_length`` checked with the
    teachers'."""
    # A config student's weights and a pretrained student's new head are random: seeded
    # here, they follow train.seed instead of whatever ran before in the process.
    set_seed(recipe.train.seed)
    student = _build_student(recipe, teachers, label_names)
    if label_names is not None:
        _set_labels(student, list(label_names))
    max_length = recipe.data.max_length
    for i, teacher in enumerate(teachers):
        _check_positions(teacher, max_length, "the teacher" if i == 0 else f"teacher {i}")
    _check_positions(student, max_length, "the student")
    return student


def build(recipe: Recipe, mode: str, *, load_data: bool = True) -> Built:
    """Load and check everything a ``mode`` run of ``recipe`` needs.

    Args:
        recipe: the validated recipe.
        mode: ``"distill"`` (teacher(s) -> student) or ``"finetune"`` (the student alone
            on labels; the teacher is loaded only to build a ``from_teacher`` / ``config``
            student).
        load_data: load and tokenize the data. ``False`` (``textdistill check``) reads
            and checks local data files when they exist but tokenizes nothing; without
            them (or with a Hub dataset) labels are checked only against
            ``data.label_names``.

    Raises:
        ConfigError: a model, tokenizer or data problem, naming the recipe key.
        FileNotFoundError: a data file is missing.
    """
    _check_mode(recipe, mode)
    notes: list[str] = []
    teachers: list[Any] = []
    teacher_tokenizers: list[Any] = []
    if mode == "distill" or recipe.student.kind in ("from_teacher", "config"):
        teachers, teacher_tokenizers = _load_teachers(recipe, mode)
    elif recipe.teacher_models:
        notes.append("fine-tuning a pretrained student: the teacher section is not used")
    # Every tokenizer is checked before the data, whose loading is the slow part.
    teacher_tokenizer = teacher_tokenizers[0] if teacher_tokenizers else None
    student_tokenizer = _load_student_tokenizer(recipe, teacher_tokenizer)
    if _own_tokenizers(recipe) and student_tokenizer is not None:
        tokenizer = student_tokenizer
    else:
        tokenizer = teacher_tokenizer if teacher_tokenizer is not None else student_tokenizer
    own = _teachers_reading_own_tokenizer(recipe, teacher_tokenizers, tokenizer, notes) \
        if mode == "distill" else {}

    raw, data_names = load_data_labels(recipe, load_data, notes)
    counts = count_labels(recipe, raw, data_names) if raw is not None else None
    label_names, remap = data_names, None
    if data_names is not None and teachers and mode == "distill":
        label_names, remap = _check_teacher_labels(recipe, teachers, data_names)
        if remap is not None:
            notes.append(f"data labels renumbered to the teacher's ids: {data_names} -> "
                         f"{label_names}")

    student = _make_student(recipe, teachers, label_names)
    if mode == "distill":
        for index, teacher in enumerate(teachers):
            key = "teacher.model" if len(teachers) == 1 else f"teacher.model[{index}]"
            check_vocabulary(teacher, own.get(index, tokenizer), key)
    check_vocabulary(student, tokenizer, f"student.{recipe.student.kind}")
    data = None
    if raw is not None and load_data:
        data = prepare_data(recipe, raw, tokenizer, teachers, data_names, remap, label_names,
                             notes, own)
    return Built(recipe=recipe, mode=mode, teachers=teachers if mode == "distill" else [],
                 student=student, tokenizer=tokenizer, data=data, label_names=label_names,
                 label_remap=remap, notes=notes, teacher_tokenizers=own,
                 label_counts=counts)


def _check_teacher_labels(recipe: Recipe, teachers: list[Any],
                          data_names: list[str]) -> tuple[list[str], dict[int, int] | None]:
    """The class names by teacher id, and the data->teacher renumbering if any."""
    from .models.student import check_label_mapping

    remap_allowed = recipe.teacher.remap_labels
    key0 = "teacher.model" if len(teachers) == 1 else "teacher.model[0]"
    try:
        remap = check_label_mapping(teachers[0].config, data_names, remap=remap_allowed)
    except ValueError as err:
        raise ConfigError(f"{key0}: {err}") from None
    if remap is None:
        names = list(data_names)
    else:
        names = [""] * len(data_names)
        for data_id, model_id in remap.items():
            names[model_id] = data_names[data_id]
    for i, teacher in enumerate(teachers[1:], start=1):
        try:
            check_label_mapping(teacher.config, names)
        except ValueError as err:
            raise ConfigError(f"teacher.model[{i}]: {err} (all teachers must order their "
                              f"classes like teacher.model[0]: {_id2label(teachers[0])})") \
                from None
    return names, remap


def _build_student(recipe: Recipe, teachers: list[Any], label_names: list[str] | None):
    """The student model, as the recipe's student section says."""
    from .models.student import load_pretrained_student, student_from_config, student_from_teacher

    spec = recipe.student
    if spec.kind == "from_teacher":
        try:
            return student_from_teacher(teachers[0], spec.from_teacher)
        except ValueError as err:
            raise ConfigError(f"student.from_teacher: {err}") from None
    if spec.kind == "config":
        shape = spec.config
        try:
            return student_from_config(
                teachers[0].config, num_layers=shape.num_layers, hidden_size=shape.hidden_size,
                num_heads=shape.num_heads, intermediate_size=shape.intermediate_size)
        except ValueError as err:
            raise ConfigError(f"student.config: {err}") from None

    ref = spec.pretrained
    location = _location(ref, "student.pretrained")
    if label_names is None:
        # Without data (textdistill check): the teacher's classes, or the checkpoint's own.
        if teachers:
            label_names = _id2label(teachers[0])
        else:
            from transformers import AutoConfig

            try:
                label_names = _id2label(AutoConfig.from_pretrained(location))
            except (OSError, ValueError) as err:
                raise ConfigError(f"student.pretrained: cannot load {ref!r}: {err}") from None
    try:
        student = load_pretrained_student(location, len(label_names), list(label_names))
    except ValueError as err:
        raise ConfigError(f"student.pretrained: {err}") from None
    except OSError as err:
        raise ConfigError(f"student.pretrained: cannot load {ref!r}: "
                          f"{' '.join(str(err).split())}") from None
    if spec.layers is None:
        return student
    try:
        return student_from_teacher(student, spec.layers)
    except ValueError as err:
        raise ConfigError(f"student.layers: {err}") from None


__all__ = ["MODES", "Built", "build", "check_vocabulary", "load_classifier", "load_tokenizer"]
