"""Building the student, and the checks that teacher, student and data agree.

Three ways to get a student:

* :func:`student_from_teacher` - DistilBERT-style: the teacher's class and config with
  fewer blocks, initialised from a subset of the teacher's blocks (plus its embeddings,
  pooler and classifier).
* :func:`student_from_config` - TinyBERT-style: a narrower/shallower model of the
  teacher's type, vocabulary and labels, randomly initialised.
* :func:`load_pretrained_student` - a pretrained small model (e.g. a general-distilled
  TinyBERT or MiniLM) with a fresh classification head.

Distillation compares the two models example by example, so both must read the same
token ids (:func:`check_tokenizers_match`) and index the same classes
(:func:`check_label_mapping`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

# The block index in the state-dict keys of BERT, RoBERTa, ELECTRA, MPNet, DeBERTa
# ("bert.encoder.layer.3.attention...") and DistilBERT ("distilbert.transformer.layer.3...").
_BLOCK_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?(?:encoder|transformer)\.layer\.)(?P<index>\d+)"
                        r"(?P<rest>\..*)$")
_DEFAULT_LABEL = re.compile(r"^label_(\d+)$")

# Config attribute names of the intermediate (feed-forward) width, BERT-style first.
_INTERMEDIATE_NAMES = ("intermediate_size", "hidden_dim")


def _num_layers(config: Any) -> int:
    for name in ("num_hidden_layers", "n_layers", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"{type(config).__name__} has no layer count (num_hidden_layers)")


def _new_model(build: Any, config: Any, attn_implementation: str | None):
    """``build(config, ...)`` (a ``_from_config``), with the teacher's attention if possible."""
    # Students are trained: float32 weights whatever the teacher's dtype (mixed precision
    # is the training loop's business).
    dtype = torch.get_default_dtype()
    if attn_implementation is not None:
        try:
            return build(copy.deepcopy(config), dtype=dtype,
                         attn_implementation=attn_implementation)
        except (ImportError, ValueError):
            # e.g. a flash-attention teacher, built where flash-attn is not installed;
            # the library default works everywhere.
            pass
    config = copy.deepcopy(config)
    config._attn_implementation = None
    return build(config, dtype=dtype)


def student_from_teacher(teacher: Any, layers: Sequence[int]) -> Any:
    """A DistilBERT-style student: the teacher with only the blocks ``layers``.

    The student has the teacher's class and config with ``num_hidden_layers =
    len(layers)``; its embeddings, pooler and classifier are copies of the teacher's and
    its block ``i`` is a copy of teacher block ``layers[i]``.

    Args:
        teacher: a Hugging Face sequence classifier (BERT, RoBERTa, ELECTRA, MPNet,
            DeBERTa, DistilBERT, ...); wrappers (DDP, ``torch.compile``) are unwrapped.
        layers: 0-based teacher block indices, e.g. ``[0, 2, 4]`` of a 6-block teacher.

    Returns:
        A new model on the CPU in the default dtype, sharing no storage with the teacher.

    Raises:
        ValueError: ``layers`` is empty or holds an index outside ``0..L-1``.
        NotImplementedError: the model shares its blocks (ALBERT) or keeps them under
            keys this function does not know.
    """
    from .adaptors import unwrap_model

    teacher = unwrap_model(teacher)
    config = teacher.config
    if config.model_type == "albert":
        raise NotImplementedError(
            "ALBERT shares one set of weights across its layers, so there are no separate "
            "blocks to pick; build the student with student_from_config instead"
        )
    num_teacher = _num_layers(config)
    layers = list(layers)
    if not layers:
        raise ValueError("layers: give at least one teacher block index")
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int)
           or not 0 <= i < num_teacher]
    if bad:
        raise ValueError(f"layers: {bad} out of range; the teacher has {num_teacher} blocks, "
                         f"valid indices are 0..{num_teacher - 1} (0-based)")

    teacher_state = teacher.state_dict()
    blocks_seen: set[int] = set()
    student_state: dict[str, torch.Tensor] = {}
    for key, tensor in teacher_state.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            student_state[key] = tensor
            continue
        block = int(match["index"])
        blocks_seen.add(block)
        for position, source in enumerate(layers):
            if source == block:
                student_state[f"{match['prefix']}{position}{match['rest']}"] = tensor
    if blocks_seen != set(range(num_teacher)):
        raise NotImplementedError(
            f"{type(teacher).__name__}: expected blocks 0..{num_teacher - 1} under "
            f"'encoder.layer.N.' or 'transformer.layer.N.' keys, found {sorted(blocks_seen)}; "
            "build the student with student_from_config instead"
        )

    student_config = copy.deepcopy(config)
    student_config.num_hidden_layers = len(layers)
    layer_types = getattr(student_config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == num_teacher:
        student_config.layer_types = [layer_types[i] for i in layers]
    student_config.id2label = dict(config.id2label)
    # transformers 5 saves no label2id when a model was given only id2label: rebuild it.
    student_config.label2id = {name: i for i, name in config.id2label.items()}
    student_config._name_or_path = ""
    student = _new_model(type(teacher)._from_config, student_config,
                         getattr(config, "_attn_implementation", None))
    # strict: every student weight must come from the teacher, none left random.
    student.load_state_dict(student_state, strict=True)
    return student


def student_from_config(
    teacher_config: Any,
    *,
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    intermediate_size: int,
    num_labels: int | None = None,
) -> Any:
    """A TinyBERT-style student: the teacher's model type at a smaller shape, random init.

    Vocabulary, position/type embeddings sizes, activation and label maps come from
    ``teacher_config``.

    Args:
        teacher_config: the teacher's ``PretrainedConfig``.
        num_layers / hidden_size / num_heads / intermediate_size: the student's shape,
            e.g. TinyBERT-4: 4, 312, 12, 1200.
        num_labels: defaults to the teacher's; a different count gets default
            ``LABEL_i`` names.

    Raises:
        ValueError: a size is not positive, or ``hidden_size`` is not divisible by
            ``num_heads``.
    """
    from transformers import AutoModelForSequenceClassification

    for name, value in (("num_layers", num_layers), ("hidden_size", hidden_size),
                        ("num_heads", num_heads), ("intermediate_size", intermediate_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads "
                         f"({num_heads}); e.g. {num_heads * max(1, hidden_size // num_heads)}")

    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = num_layers
    config.hidden_size = hidden_size
    config.num_attention_heads = num_heads
    for name in _INTERMEDIATE_NAMES:
        if hasattr(config, name):
            setattr(config, name, intermediate_size)
            break
    else:
        raise NotImplementedError(f"{type(config).__name__}: no intermediate size attribute "
                                  f"(looked for {list(_INTERMEDIATE_NAMES)})")
    # Widths derived from the hidden size that some configs store separately.
    if getattr(config, "pooler_hidden_size", None) is not None:  # DeBERTa
        config.pooler_hidden_size = hidden_size
    if getattr(config, "head_dim", None) is not None:
        config.head_dim = hidden_size // num_heads
    if num_labels is not None and num_labels != teacher_config.num_labels:
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    else:
        config.id2label = dict(teacher_config.id2label)
    config.label2id = {name: i for i, name in config.id2label.items()}
    config._name_or_path = ""
    return _new_model(AutoModelForSequenceClassification.from_config, config,
                      getattr(teacher_config, "_attn_implementation", None))


def load_pretrained_student(name_or_path: str, num_labels: int,
                            id2label: Mapping[int, str] | Sequence[str], **kwargs: Any) -> Any:
    """A pretrained model (Hub id or directory) as a classifier over the given labels.

    The classification head is new unless the checkpoint already has one of the right
    size. A checkpoint fine-tuned on named classes must name them in the same order.

    Args:
        name_or_path: Hub id or local directory.
        num_labels: number of classes.
        id2label: class names by id (a mapping or a list).
        kwargs: passed to ``from_pretrained`` (``attn_implementation``, ``revision``, ...).

    Raises:
        ValueError: ``id2label`` does not hold ``num_labels`` names, or the checkpoint's
            named classes disagree with them.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if isinstance(id2label, Mapping):
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
    else:
        names = [str(n) for n in id2label]
    if len(names) != num_labels:
        raise ValueError(f"id2label has {len(names)} names for num_labels={num_labels}")
    config_kwargs = {k: kwargs[k] for k in ("revision", "token", "trust_remote_code")
                     if k in kwargs}
    config = AutoConfig.from_pretrained(name_or_path, **config_kwargs)
    if config.num_labels == num_labels:
        # A checkpoint already fine-tuned on named classes: refuse a silent reorder.
        check_label_mapping(config, names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    return AutoModelForSequenceClassification.from_pretrained(
        name_or_path, config=config, ignore_mismatched_sizes=True, **kwargs)


def check_tokenizers_match(teacher_tokenizer: Any, student_tokenizer: Any) -> None:
    """Make sure teacher and student turn text into the same token ids.

    Compares the vocabularies (token -> id), then the ids of a probe sentence (catches
    e.g. a cased vs an uncased tokenizer over one vocabulary).

    Raises:
        ValueError: saying how many tokens differ, with a few examples.
    """
    teacher_vocab = teacher_tokenizer.get_vocab()
    student_vocab = student_tokenizer.get_vocab()
    differing = sorted(
        token for token in set(teacher_vocab) | set(student_vocab)
        if teacher_vocab.get(token) != student_vocab.get(token)
    )
    if differing:
        examples = ", ".join(
            f"{token!r}: teacher {teacher_vocab.get(token, 'missing')} / "
            f"student {student_vocab.get(token, 'missing')}"
            for token in differing[:5]
        )
        raise ValueError(
            f"teacher and student tokenizers differ on {len(differing)} token(s) "
            f"(vocab sizes {len(teacher_vocab)} vs {len(student_vocab)}), e.g. {examples}. "
            "Both models must read the same token ids: use a student with the teacher's "
            "tokenizer (student_from_teacher / student_from_config)"
        )
    probe = "Hello World! The QUICK brown fox can't jump over 1,234 lazy dogs."
    teacher_ids = teacher_tokenizer(probe)["input_ids"]
    student_ids = student_tokenizer(probe)["input_ids"]
    if teacher_ids != student_ids:
        raise ValueError(
            "teacher and student tokenizers share a vocabulary but encode text differently "
            f"(lower-casing, special tokens?): {probe!r} -> teacher {teacher_ids} vs student "
            f"{student_ids}"
        )


def _id2label_list(model_config: Any) -> list[str]:
    id2label = getattr(model_config, "id2label", None) or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def check_label_mapping(model_config: Any, label_names: Sequence[str], *,
                        remap: bool = False) -> dict[int, int] | None:
    """Check that the model's class ``i`` is the data's class ``i``.

    A teacher whose classes are ordered differently from the dataset's labels teaches the
    student the wrong answers with full confidence (TinyBERT issue #229). Names are
    compared case-insensitively.

    Args:
        model_config: the model's config (its ``id2label``).
        label_names: the data's class names, index = label id.
        remap: accept a different order of the same names and return the permutation.

    Returns:
        ``None`` when ids agree (or the model has default ``LABEL_i`` names); with
        ``remap`` and a reordering, ``{dataset_label_id: model_label_id}``.

    Raises:
        ValueError: the counts differ, the names differ, or (without ``remap``) the same
            names come in a different order.
    """
    model_names = _id2label_list(model_config)
    data_names = [str(n) for n in label_names]
    if len(model_names) != len(data_names):
        raise ValueError(
            f"the model predicts {len(model_names)} classes {model_names} but the data has "
            f"{len(data_names)} classes {data_names}"
        )
    model_lower = [n.lower() for n in model_names]
    data_lower = [n.lower() for n in data_names]
    if all(_DEFAULT_LABEL.match(n) and int(_DEFAULT_LABEL.match(n)[1]) == i
           for i, n in enumerate(model_lower)):
        return None  # unnamed classes: nothing to compare beyond the count
    if model_lower == data_lower:
        return None
    if sorted(model_lower) == sorted(data_lower) and len(set(data_lower)) == len(data_lower):
        if remap:
            return {i: model_lower.index(name) for i, name in enumerate(data_lower)}
        raise ValueError(
            f"label order mismatch: the model's classes are {model_names} (by id) but the "
            f"data's are {data_names}; distilling would teach the wrong classes. Set "
            "`teacher.remap_labels: true` to reorder the teacher's outputs, or fix the data "
            "(data.label_names)"
        )
    hint = ""
    if all(n.lstrip("-").isdigit() for n in data_names):
        hint = (f"; the data's labels are unnamed ids - if they mean the model's classes, set "
                f"data.label_names: {model_names}")
    raise ValueError(
        f"label names differ: the model's classes are {model_names} but the data's are "
        f"{data_names}{hint}"
    )
