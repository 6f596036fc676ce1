"""Raw text datasets in, tokenized datasets out.

Two steps, both built on ``datasets``:

* :func:`load_raw_splits` reads two splits of a Hub dataset or two local files (csv, tsv,
  json, jsonl, parquet) into a ``DatasetDict`` with the splits ``"train"`` and ``"eval"``,
  taking a seeded random subset when ``max_train_samples`` / ``max_eval_samples`` ask
  for one.
* :func:`tokenize_splits` turns each split into ``input_ids``, ``attention_mask``
  (``token_type_ids`` when the tokenizer makes them) and integer ``labels``. Sequences
  are truncated but not padded: batches are padded to their own longest sequence later.

What to read is a :class:`~.config.DataConfig`; its ``transfer`` (:mod:`.transfer`)
names unlabeled text that :func:`textdistill.build.build` appends to the train split of a
distillation run.

Labels end up as ids into :attr:`DataConfig.label_names`, and the tokenized ``labels``
column is a ``ClassLabel`` carrying those names, so later steps (the teacher's label
check, the exported model's ``id2label``) read them from the data.
"""

from __future__ import annotations

import collections
from typing import Any

import datasets

from ..errors import ConfigError
from .config import DataConfig
from .files import DELIMITED_FORMATS, file_format, load_table, seeded_subset


def _load_hub_split(cfg: DataConfig, split: str, key: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(cfg.dataset, cfg.dataset_config, split=split,
                                     cache_dir=cfg.cache_dir)
    except ValueError as err:
        # datasets says 'Unknown split "x". Should be one of [...]'; name our key too.
        if "split" in str(err).lower():
            raise ConfigError(f"data.{key}: {err}") from err
        raise
    except ConnectionError as err:
        raise ConnectionError(
            f"cannot load Hub dataset {cfg.dataset!r}: {err}. Without internet access, "
            "unset data.dataset and point data.train / data.eval at local copies"
        ) from err


def _row_place(cfg: DataConfig, split_name: str, row: int) -> str:
    """Where 0-based ``row`` of a split is, in words a user finds it by."""
    if cfg.dataset is not None:
        return f"row {row + 1} of the {split_name} split ({getattr(cfg, split_name)})"
    path = getattr(cfg, split_name)
    suffix = file_format(path)
    if suffix == ".tsv":  # unquoted: one row per line
        return f"line {row + (1 if cfg.column_names else 2)} of {path}"
    if suffix == ".jsonl":
        return f"line {row + 1} of {path}"
    return f"data row {row + 1} of {path}"


def _header_hint(columns: list[str], cfg: DataConfig, key: str) -> str:
    """A hint when a local csv/tsv file's "columns" look like its first data row."""
    if cfg.dataset is not None or cfg.column_names is not None or \
            file_format(getattr(cfg, key)) not in DELIMITED_FORMATS:
        return ""
    labels = {name.lower() for name in cfg.label_names or ()}

    def looks_like_a_value(column: str) -> bool:
        text = str(column).strip()
        return text.lower() in labels or text.lstrip("-").isdigit() or len(text.split()) >= 4

    if not any(looks_like_a_value(c) for c in columns):
        return ""
    return (". Its first row looks like data, not a header: if the file has no header "
            "row, name its columns in file order with data.column_names, e.g. "
            f"{[*cfg.text_columns, cfg.label_column]}")


def _check_columns(split: datasets.Dataset, split_name: str, cfg: DataConfig) -> None:
    if cfg.column_names is not None and [str(v) for v in split[0].values()] == \
            list(cfg.column_names):
        raise ConfigError(f"data.column_names: the first row of {getattr(cfg, split_name)} is "
                          "a header naming those very columns; data.column_names is for files "
                          "without a header row (both data.train and data.eval)")
    for key, columns in (("text_columns", cfg.text_columns),
                         ("label_column", [cfg.label_column])):
        missing = [c for c in columns if c not in split.column_names]
        if missing:
            raise ConfigError(
                f"data.{key}: column(s) {missing} not in the {split_name} split; its "
                f"columns are {split.column_names}"
                + _header_hint(split.column_names, cfg, split_name))


def _check_label_cells(split: datasets.Dataset, split_name: str, cfg: DataConfig) -> None:
    """Every row has a label: an empty cell would otherwise turn up as an unknown label,
    or (pandas reading the column as text) make every integer label unknown."""
    for row, value in enumerate(split[cfg.label_column]):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConfigError(
                f"data.label_column: the {cfg.label_column!r} cell is empty at "
                f"{_row_place(cfg, split_name, row)}; every row needs a label")


def _drop_empty_texts(split: datasets.Dataset, split_name: str, cfg: DataConfig,
                      notes: list[str] | None) -> datasets.Dataset:
    """``split`` without the rows whose text (either text of a pair) is empty: they would
    train on a bare [CLS] [SEP]."""
    keep = [row for row, texts in enumerate(zip(*(split[c] for c in cfg.text_columns)))
            if all(t is not None and str(t).strip() for t in texts)]
    dropped = len(split) - len(keep)
    if not dropped:
        return split
    if not keep:
        raise ConfigError(f"data.text_columns: every row of the {split_name} split has an "
                          f"empty {' or '.join(map(repr, cfg.text_columns))}")
    if notes is not None:
        notes.append(f"data.{split_name}: dropped {dropped} of {len(split)} rows with an "
                     f"empty text ({', '.join(cfg.text_columns)})")
    return split.select(keep).flatten_indices()


def load_raw_splits(cfg: DataConfig, notes: list[str] | None = None) -> datasets.DatasetDict:
    """Read the train and eval data described by ``cfg``.

    Rows with an empty text are dropped (before any subset is drawn), each split's count
    added to ``notes`` when given.

    Returns:
        ``DatasetDict`` with ``"train"`` and ``"eval"``, holding the source's columns
        (at most ``max_train_samples`` / ``max_eval_samples`` rows each).

    Raises:
        ConfigError: a configured column or split does not exist (with a hint when a
            csv/tsv file seems to lack its header row), a label cell is empty, or a
            local file is empty, not UTF-8 or holds no rows.
        FileNotFoundError: a local file is missing.
    """
    if cfg.dataset is not None:
        train = _load_hub_split(cfg, cfg.train, "train")
        evaluation = _load_hub_split(cfg, cfg.eval, "eval")
    else:
        train = load_table(cfg.train, "train", cfg.cache_dir, cfg.column_names)
        evaluation = load_table(cfg.eval, "eval", cfg.cache_dir, cfg.column_names)
    splits = {"train": train, "eval": evaluation}
    for split_name, split in splits.items():
        _check_columns(split, split_name, cfg)
        _check_label_cells(split, split_name, cfg)
        splits[split_name] = _drop_empty_texts(split, split_name, cfg, notes)
    return datasets.DatasetDict({
        "train": seeded_subset(splits["train"], cfg.max_train_samples, cfg.seed),
        "eval": seeded_subset(splits["eval"], cfg.max_eval_samples, cfg.seed),
    })


def infer_label_names(raw: datasets.DatasetDict, cfg: DataConfig) -> list[str]:
    """The class names, index = label id.

    ``cfg.label_names`` when given; else the names of a ``ClassLabel`` label feature;
    else the sorted unique values of the train labels (as strings).
    """
    if cfg.label_names is not None:
        return list(cfg.label_names)
    feature = raw["train"].features[cfg.label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    values = raw["train"].unique(cfg.label_column)
    if any(v is None for v in values):
        raise ValueError(f"the train split has missing values in label column "
                         f"{cfg.label_column!r}")
    if any(isinstance(v, float) for v in values):
        raise ValueError(f"label column {cfg.label_column!r} holds floats "
                         f"({sorted(values)[:5]}...); only classification is supported")
    return [str(v) for v in sorted(values)]


def _label_mapper(feature: Any, label_names: list[str], column: str):
    """A function mapping one raw label value to its id in ``label_names``."""
    by_name = {name: i for i, name in enumerate(label_names)}
    by_lower = {name.lower(): i for i, name in enumerate(label_names)}

    def from_name(value: Any) -> int:
        text = str(value)
        found = by_name.get(text, by_lower.get(text.lower()))
        if found is None:
            raise ValueError(
                f"unknown label {value!r} in column {column!r}; known labels (data.label_names):"
                f" {label_names}"
            )
        return found

    if isinstance(feature, datasets.ClassLabel):
        # The feature's ids index its own names; go through the names in case
        # data.label_names orders the classes differently.
        source_names = feature.names
        table = {i: from_name(name) for i, name in enumerate(source_names)}

        def from_class_label(value: int) -> int:
            if value not in table:
                raise ValueError(f"label id {value!r} in column {column!r} is outside the "
                                 f"dataset's classes {source_names} (unlabelled test split?)")
            return table[value]

        return from_class_label

    dtype = getattr(feature, "dtype", "")
    if dtype.startswith(("int", "uint")):
        numeric_names = all(name.lstrip("-").isdigit() for name in label_names)

        def from_int(value: int) -> int:
            # Integer labels are ids, unless the names are the integers themselves
            # (inferred names of labels like 1..5), then they map through the names.
            if numeric_names:
                return from_name(value)
            if value is None or not 0 <= value < len(label_names):
                raise ValueError(
                    f"label id {value!r} in column {column!r} is out of range for "
                    f"{len(label_names)} classes {label_names}"
                )
            return value

        return from_int
    if dtype.startswith(("float", "double")):
        raise ValueError(f"label column {column!r} holds floats; only classification is "
                         "supported")
    return from_name


def label_counts(raw: datasets.DatasetDict, cfg: DataConfig,
                 label_names: list[str]) -> dict[str, dict[str, int]]:
    """``{split: {class name: rows}}``, every class listed (0 when absent).

    Raises:
        ValueError: a label value is not one of the label names (or out of range).
    """
    counts = {}
    for split_name, split in raw.items():
        to_id = _label_mapper(split.features[cfg.label_column], label_names, cfg.label_column)
        ids = collections.Counter(to_id(v) for v in split[cfg.label_column])
        counts[split_name] = {name: ids[i] for i, name in enumerate(label_names)}
    return counts


def tokenize_splits(raw: datasets.DatasetDict, tokenizer: Any,
                    cfg: DataConfig) -> datasets.DatasetDict:
    """Tokenize every split of ``raw`` (truncated to ``cfg.max_length``, not padded).

    Returns:
        ``DatasetDict`` with the same splits, each holding only ``input_ids``,
        ``attention_mask`` (``token_type_ids`` when the tokenizer gives them) as
        variable-length int lists, and ``labels`` (``ClassLabel`` with the label names).

    Raises:
        ValueError: a label value is not one of the label names (or out of range).
    """
    label_names = infer_label_names(raw, cfg)
    out = {}
    for split_name, split in raw.items():
        to_id = _label_mapper(split.features[cfg.label_column], label_names, cfg.label_column)

        def encode(batch: dict[str, list], to_id=to_id) -> dict[str, list]:
            # A missing text is an empty text; the tokenizer would reject None.
            texts = [["" if t is None else str(t) for t in batch[c]] for c in cfg.text_columns]
            encoded = tokenizer(*texts, truncation=True, max_length=cfg.max_length)
            result = {key: encoded[key] for key in ("input_ids", "attention_mask",
                                                    "token_type_ids") if key in encoded}
            result["labels"] = [to_id(v) for v in batch[cfg.label_column]]
            return result

        tokenized = split.map(encode, batched=True,
                              remove_columns=split.column_names,
                              desc=f"Tokenizing {split_name}")
        out[split_name] = tokenized.cast_column("labels", datasets.ClassLabel(names=label_names))
    return datasets.DatasetDict(out)


def _teacher_token_columns(texts: datasets.Dataset, tokenizer: Any, teacher_index: int,
                           text_columns: list[str], max_length: int) -> datasets.Dataset:
    """Only teacher ``teacher_index``'s own token columns, one row per row of ``texts``."""
    from .batching import TOKEN_COLUMNS, teacher_column

    missing = [c for c in text_columns if c not in texts.column_names]
    if missing:
        raise ValueError(f"no text column {missing[0]!r} to tokenize for teacher "
                         f"{teacher_index} (columns: {texts.column_names}); pass the "
                         "untokenized data as texts=")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        # A missing text is an empty text, as in tokenize_splits.
        columns = [["" if t is None else str(t) for t in batch[c]] for c in text_columns]
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        return {teacher_column(teacher_index, key): encoded[key] for key in TOKEN_COLUMNS
                if key in encoded}

    return texts.map(encode, batched=True, remove_columns=texts.column_names,
                     desc=f"Tokenizing for teacher {teacher_index}")


def add_teacher_columns(tokenized: datasets.Dataset | datasets.DatasetDict, tokenizer: Any,
                        teacher_index: int, *, text_columns: list[str], max_length: int,
                        texts: datasets.Dataset | datasets.DatasetDict | None = None):
    """``tokenized`` with teacher ``teacher_index``'s own token columns added.

    A teacher whose tokenizer differs from the student's reads the same texts through
    its own tokenizer: ``t{i}_input_ids``, ``t{i}_attention_mask`` (and
    ``t{i}_token_type_ids`` when its tokenizer makes them), truncated to ``max_length``
    like the student's columns and not padded. Give the
    :class:`~textdistill.distiller.Distiller` the same tokenizer as
    ``teacher_tokenizers={i: tokenizer}``. Example, in a notebook::

        train = raw_train.map(lambda b: student_tok(b["sentence"], truncation=True,
                                                    max_length=128), batched=True)
        train = add_teacher_columns(train, teacher_tok, 0, text_columns=["sentence"],
                                    max_length=128)

    Args:
        tokenized: the student's tokenized data (a split or a ``DatasetDict``).
        tokenizer: the teacher's tokenizer.
        teacher_index: the teacher's position in the Distiller's teacher list.
        text_columns: the text column(s) (two for sentence pairs).
        max_length: truncation length in the teacher's tokens.
        texts: the untokenized data, row for row (split for split) like ``tokenized``;
            ``None`` reads the text columns of ``tokenized`` itself.

    Returns:
        The same type as ``tokenized``; earlier columns of that teacher are replaced.

    Raises:
        ValueError: a text column is missing, or ``texts`` does not line up with
            ``tokenized``.
    """
    texts = tokenized if texts is None else texts
    if isinstance(tokenized, datasets.DatasetDict):
        if not isinstance(texts, datasets.DatasetDict) or set(texts) != set(tokenized):
            raise ValueError("texts must hold the same splits as tokenized "
                             f"({sorted(tokenized)})")
        return datasets.DatasetDict({
            name: add_teacher_columns(split, tokenizer, teacher_index,
                                      text_columns=text_columns, max_length=max_length,
                                      texts=texts[name])
            for name, split in tokenized.items()})
    if len(texts) != len(tokenized):
        raise ValueError(f"texts has {len(texts)} rows, tokenized {len(tokenized)}: they "
                         "must be the same examples in the same order")
    columns = _teacher_token_columns(texts, tokenizer, teacher_index, list(text_columns),
                                     max_length)
    stale = [c for c in columns.column_names if c in tokenized.column_names]
    if stale:
        tokenized = tokenized.remove_columns(stale)
    return datasets.concatenate_datasets([tokenized, columns], axis=1)
