"""The data side of a run: raw splits, labels, transfer texts, augmentation, tokens.

:func:`prepare_data` turns the raw splits into what the loop reads: the transfer texts
(``data.transfer``) appended to the train split, the split augmented (``data.augment``),
everything tokenized (with each own-tokenizer teacher's columns), and every row without a
gold label given ``labels`` = :data:`IGNORE_INDEX`, which the hard loss skips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .recipe import Recipe

# The label of a row without a gold label; hard_ce and dkd's default ignore_index.
IGNORE_INDEX = -100


def _load_data(recipe: Recipe, notes: list[str]):
    from .data.loading import infer_label_names, load_raw_splits

    try:
        raw = load_raw_splits(recipe.data, notes)
    except ConnectionError as err:
        raise ConfigError(f"data.dataset: {' '.join(str(err).split())}") from None
    try:
        names = infer_label_names(raw, recipe.data)
    except ValueError as err:
        raise ConfigError(f"data.label_column: {err}") from None
    return raw, names


def tokenize_with_labels(raw, tokenizer, data_cfg: Any, label_names: list[str],
                         remap: dict[int, int] | None = None,
                         model_names: list[str] | None = None,
                         teacher_tokenizers: Mapping[int, Any] | None = None,
                         augment_mask: str | None = None):
    """Tokenize ``raw`` with ``label_names`` as the data's classes, then (with ``remap``)
    renumber the labels to the model's ids, whose names are ``model_names``.

    ``teacher_tokenizers`` (``{teacher index: tokenizer}``) adds each such teacher's own
    token columns (``t{i}_input_ids``, ...), from the same texts. ``augment_mask`` is the
    mask word augmentation wrote into the train split: each tokenizer reads it as its own.

    Raises:
        ConfigError: a label value is not one of the classes.
    """
    import datasets

    from .data.augment import with_mask_token
    from .data.loading import add_teacher_columns, tokenize_splits

    def read_by(reader) -> Any:
        if augment_mask is None:
            return raw
        train = with_mask_token(raw["train"], cfg.text_columns, augment_mask,
                                getattr(reader, "mask_token", None))
        return datasets.DatasetDict({**raw, "train": train})

    cfg = dataclasses.replace(data_cfg, label_names=list(label_names))
    try:
        splits = tokenize_splits(read_by(tokenizer), tokenizer, cfg)
    except ValueError as err:
        raise ConfigError(f"data.label_column: {err}") from None
    for index, teacher_tokenizer in sorted((teacher_tokenizers or {}).items()):
        splits = add_teacher_columns(splits, teacher_tokenizer, index,
                                     text_columns=list(cfg.text_columns),
                                     max_length=cfg.max_length, texts=read_by(teacher_tokenizer))
    if remap is None:
        return splits
    # Renumber explicitly: the teacher's id for each data label, and the teacher's order
    # of class names on the column.
    table = [remap[i] for i in range(len(label_names))]
    out = {}
    for name, split in splits.items():
        split = split.cast_column("labels", datasets.Value("int64"))
        split = split.map(lambda batch: {"labels": [table[v] for v in batch["labels"]]},
                          batched=True, desc=f"Remapping {name} labels")
        out[name] = split.cast_column("labels", datasets.ClassLabel(names=model_names))
    return datasets.DatasetDict(out)


def augment_train(raw, data_cfg: Any, tokenizer: Any, teacher: Any):
    """``raw`` with its train split augmented as ``data_cfg.augment`` says.

    Replacement neighbours come from ``teacher``'s input word embeddings.

    Returns:
        ``(raw, note)``: the new ``DatasetDict`` (eval unchanged) and a line for the user.
    """
    import datasets

    from .data.augment import augment_dataset

    augment = data_cfg.augment
    embeddings = teacher.get_input_embeddings().weight.detach()
    train = augment_dataset(raw["train"], data_cfg.text_columns, augment, tokenizer,
                            embeddings)
    originals = len(raw["train"])
    note = (f"transfer set: {originals} examples + {len(train) - originals} augmented "
            f"(copies={augment.copies})")
    return datasets.DatasetDict({**raw, "train": train}), note


def unlabel_rows(split, flags: dict[str, list[bool]]):
    """The tokenized ``split`` with ``labels`` -100 on every row that a flag marks.

    Args:
        split: a tokenized split.
        flags: ``{column name: one bool per row}``, e.g. ``{"augmented": [...],
            "transfer": [...]}``: rows with no gold label.

    ``labels`` becomes plain int64 (a ``ClassLabel`` cannot hold -100), and each flag is
    kept as a bool column (``results.json`` counts the rows by source from them); the
    Distiller drops them with every other column a model does not take.
    """
    import datasets

    split = split.cast_column("labels", datasets.Value("int64"))
    for name, values in flags.items():
        split = split.add_column(name, list(values), feature=datasets.Value("bool"))
    names = list(flags)
    return split.map(
        lambda batch: {"labels": [IGNORE_INDEX if any(marks) else label for label, *marks in
                                  zip(batch["labels"], *(batch[n] for n in names))]},
        batched=True, desc="Unlabelling train rows without a gold label")


def _local_files_exist(data_cfg: Any) -> bool:
    return data_cfg.dataset is None and all(
        Path(getattr(data_cfg, key)).is_file() for key in ("train", "eval"))


def load_data_labels(recipe: Recipe, load_data: bool,
                      notes: list[str]) -> tuple[Any, list[str] | None]:
    """The raw splits and the data's class names: inferred from the data, else
    ``data.label_names``, else ``None`` (with a note).

    Without ``load_data`` (``textdistill check``) local data files are still read, and
    checked, when they exist; a Hub dataset is not (the raw splits are then ``None``).
    """
    if load_data or _local_files_exist(recipe.data):
        return _load_data(recipe, notes)
    data_names = list(recipe.data.label_names) if recipe.data.label_names else None
    if data_names is None:
        notes.append("labels not checked: the data is not loaded and data.label_names "
                     "is not set")
    return None, data_names


def count_labels(recipe: Recipe, raw: Any, label_names: list[str]) -> dict[str, dict[str, int]]:
    """``{split: {class name: rows}}`` of the raw splits.

    Raises:
        ConfigError: a label value is not one of the classes.
    """
    from .data.loading import label_counts

    try:
        return label_counts(raw, recipe.data, label_names)
    except ValueError as err:
        raise ConfigError(f"data.label_column: {err}") from None


def prepare_data(recipe: Recipe, raw: Any, tokenizer: Any, teachers: list[Any],
                  data_names: list[str], remap: dict[int, int] | None,
                  label_names: list[str], notes: list[str],
                  teacher_tokenizers: dict[int, Any]):
    """The tokenized splits: the transfer texts (``data.transfer``) appended to the train
    split, then the whole split augmented (``data.augment``), the rows without a gold
    label unlabelled."""
    from .data.augment import AUGMENTED_COLUMN
    from .data.transfer import TRANSFER_COLUMN, append_transfer

    # Distill mode only: _check_mode refused both for finetune.
    if recipe.data.transfer.enabled:
        raw, note = append_transfer(raw, recipe.data)
        notes.append(note)
    augment_mask = None
    if recipe.data.augment.enabled:
        # Replacement neighbours come from teacher 0's embeddings, indexed by its ids.
        augment_tokenizer = teacher_tokenizers.get(0, tokenizer)
        raw, note = augment_train(raw, recipe.data, augment_tokenizer, teachers[0])
        notes.append(note)
        if recipe.data.augment.mask_prob > 0:
            augment_mask = augment_tokenizer.mask_token
    # Tokenization keeps only the model columns: the flags are read here and put back.
    flags = {name: list(raw["train"][name]) for name in (TRANSFER_COLUMN, AUGMENTED_COLUMN)
             if name in raw["train"].column_names}
    data = tokenize_with_labels(raw, tokenizer, recipe.data, data_names, remap, label_names,
                                teacher_tokenizers, augment_mask)
    if flags:
        data["train"] = unlabel_rows(data["train"], flags)
    return data


__all__ = ["IGNORE_INDEX", "augment_train", "count_labels", "load_data_labels", "prepare_data",
           "tokenize_with_labels", "unlabel_rows"]
