"""Unlabeled transfer data: in-domain text with no gold label, added to the train split.

A distilled student learns from the teacher's outputs, which need no gold label, so it
can train on text nobody labelled (Tang et al., 2019). ``data.transfer``
(:class:`TransferConfig`) names that text:

* ``files``: local files, read in order. A ``.txt`` file holds one text per line (blank
  lines are skipped); csv, tsv, json, jsonl and parquet files hold the text in
  ``text_columns`` (default: ``data.text_columns``), every other column is ignored;
* or ``dataset`` + ``split``: a split of a Hub dataset (or of a local dataset directory
  ``datasets.load_dataset`` reads), whose labels are dropped.

:func:`append_transfer` then, in this order, drops the texts that also appear in the
evaluation split (the leak guard, on by default: a student trained on the teacher's
outputs for the very sentences it is scored on would report a leak as skill), draws a
seeded subsample of ``max_samples`` texts, and appends the rest to the raw train split
with the flag column ``transfer``. After tokenization their ``labels`` become -100 like
augmented rows' (:func:`textdistill.prepare.unlabel_rows`), so only the teacher trains
on them.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from ..errors import ConfigError
from ..schema import check_number
from .augment import AUGMENTED_COLUMN
from .files import DATA_EXTENSIONS, file_format, load_table, seeded_subset

if TYPE_CHECKING:
    from .config import DataConfig

TRANSFER_COLUMN = "transfer"
TEXT_FILE_EXTENSION = ".txt"


@dataclass(frozen=True)
class TransferConfig:
    """Unlabeled text added to the train split of a distillation run."""

    _section: typing.ClassVar[str] = "data.transfer"

    files: list[str] = field(default_factory=list, metadata={"help": (
        "Local files of unlabeled text, read in order: .txt (one text per line, blank "
        "lines skipped) or csv, tsv, json, jsonl, parquet (the text in `text_columns`). "
        "Empty with `dataset` unset: no transfer data.")})
    text_columns: list[str] | None = field(default=None, metadata={"help": (
        "The text column(s) of the csv/tsv/json/jsonl/parquet files or of the dataset, as "
        "many as data.text_columns and in the same order (they are renamed to those). "
        "Unset: data.text_columns.")})
    dataset: str | None = field(default=None, metadata={"help": (
        "Instead of `files`: a Hub dataset name (anything `datasets.load_dataset` takes, a "
        "local dataset directory too); its `split` is read and its labels dropped.")})
    dataset_config: str | None = field(default=None, metadata={"help": (
        "The dataset's configuration, e.g. \"sst2\". Only with `dataset`.")})
    split: str = field(default="train", metadata={"help": (
        "The split of `dataset` to read (slices like \"train[:50%]\" work).")})
    max_samples: int | None = field(default=None, metadata={"help": (
        "Use a random subset of this many transfer texts (drawn with `seed` after the leak "
        "guard, the same subset on every run). Unset: all.")})
    seed: int = field(default=0, metadata={"help": (
        "Seed of the shuffle that draws the max_samples subset.")})
    leak_guard: bool = field(default=True, metadata={"help": (
        "Drop transfer texts that also appear in the evaluation split (compared with case "
        "and runs of whitespace ignored); the run notes how many it dropped. false keeps "
        "them.")})

    def __post_init__(self) -> None:
        if isinstance(self.files, str) or not isinstance(self.files, (list, tuple)):
            raise ConfigError(f"data.transfer.files: expected a list of file paths, got "
                              f"{self.files!r}")
        for i, path in enumerate(self.files):
            if not isinstance(path, str) or not path:
                raise ConfigError(f"data.transfer.files[{i}]: expected a file path, got "
                                  f"{path!r}")
            if file_format(path) not in (TEXT_FILE_EXTENSION, *DATA_EXTENSIONS):
                raise ConfigError(
                    f"data.transfer.files[{i}]: cannot tell the format of {path!r} from its "
                    f"extension; use one of {sorted((TEXT_FILE_EXTENSION, *DATA_EXTENSIONS))}")
        self._check_dataset()
        if self.text_columns is not None:
            columns = self.text_columns
            if not isinstance(columns, (list, tuple)) or not 1 <= len(columns) <= 2 \
                    or len(set(columns)) != len(columns):
                raise ConfigError("data.transfer.text_columns: give 1 or 2 distinct columns, "
                                  f"got {columns!r}")
        for name in ("max_samples", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"data.transfer.{name}: expected an integer, got {value!r}")
        check_number("data.transfer.max_samples", self.max_samples)
        check_number("data.transfer.seed", self.seed, allow_minimum=True)
        if not isinstance(self.leak_guard, bool):
            raise ConfigError(f"data.transfer.leak_guard: expected true/false, got "
                              f"{self.leak_guard!r}")

    def _check_dataset(self) -> None:
        if self.dataset is None:
            if self.dataset_config is not None:
                raise ConfigError("data.transfer.dataset_config: only used with "
                                  "data.transfer.dataset")
            return
        if self.files:
            raise ConfigError("data.transfer: set either files or dataset, not both")
        if not isinstance(self.split, str) or not self.split:
            raise ConfigError(f"data.transfer.split: expected a split name, got {self.split!r}")
        if file_format(self.split) in (TEXT_FILE_EXTENSION, *DATA_EXTENSIONS):
            raise ConfigError(f"data.transfer.split: {self.split!r} looks like a file; local "
                              "files go in data.transfer.files")

    @property
    def enabled(self) -> bool:
        return bool(self.files) or self.dataset is not None

    @property
    def source_name(self) -> str:
        """A short name of the source, for notes (file names, or ``dataset[split]``)."""
        if self.dataset is not None:
            config = f" ({self.dataset_config})" if self.dataset_config else ""
            return f"{self.dataset}{config} [{self.split}]"
        return ", ".join(Path(path).name for path in self.files)


def check_transfer_columns(transfer: TransferConfig, data_text_columns: Sequence[str]) -> None:
    """The transfer source can fill ``data_text_columns``: as many columns, and ``.txt``
    files only for single-text data.

    Raises:
        ConfigError: naming the ``data.transfer`` key.
    """
    if transfer.text_columns is not None and len(transfer.text_columns) != len(data_text_columns):
        raise ConfigError(
            f"data.transfer.text_columns: give as many columns as data.text_columns "
            f"({list(data_text_columns)}), got {list(transfer.text_columns)}")
    if len(data_text_columns) == 2:
        for i, path in enumerate(transfer.files):
            if file_format(path) == TEXT_FILE_EXTENSION:
                raise ConfigError(
                    f"data.transfer.files[{i}]: a .txt file holds one text per line, but "
                    "data.text_columns names a sentence pair; use a csv, tsv, json, jsonl or "
                    "parquet file with two text columns")


# ------------------------------------------------------------------------------ loading


def _as_texts(split: datasets.Dataset, source_columns: Sequence[str],
              target_columns: Sequence[str], where: str) -> datasets.Dataset:
    """``split`` reduced to its text columns, renamed to ``target_columns``, as strings,
    without the rows that miss a text."""
    missing = [c for c in source_columns if c not in split.column_names]
    if missing:
        raise ConfigError(f"data.transfer.text_columns: column(s) {missing} not in {where}; "
                          f"its columns are {split.column_names} (unset, the key defaults to "
                          "data.text_columns)")
    split = split.select_columns(list(source_columns))
    # Renamed in two steps: a target name may be another column's source name.
    temporary = {c: f"__transfer_text_{i}" for i, c in enumerate(source_columns)}
    split = split.rename_columns(temporary)
    split = split.rename_columns({temporary[s]: t for s, t in zip(source_columns,
                                                                   target_columns)})
    for column in target_columns:
        if split.features[column] != datasets.Value("string"):
            split = split.cast_column(column, datasets.Value("string"))
    return split.filter(
        lambda batch: [all(t is not None and t.strip() for t in texts)
                       for texts in zip(*(batch[c] for c in target_columns))],
        batched=True, desc="Dropping empty transfer texts")


def _load_transfer_file(path: str, index: int, source_columns: Sequence[str],
                        target_columns: Sequence[str], cache_dir: str | None
                        ) -> datasets.Dataset:
    key = f"transfer.files[{index}]"
    if file_format(path) != TEXT_FILE_EXTENSION:
        return _as_texts(load_table(path, key, cache_dir), source_columns, target_columns,
                         path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.{key}: no such file: {path}")
    lines = datasets.load_dataset("text", data_files=str(path), split="train",
                                  cache_dir=cache_dir)
    return _as_texts(lines, ["text"], target_columns, path)


def _load_transfer_dataset(transfer: TransferConfig, source_columns: Sequence[str],
                           target_columns: Sequence[str], cache_dir: str | None
                           ) -> datasets.Dataset:
    try:
        split = datasets.load_dataset(transfer.dataset, transfer.dataset_config,
                                      split=transfer.split, cache_dir=cache_dir)
    except ValueError as err:
        if "split" in str(err).lower():
            raise ConfigError(f"data.transfer.split: {err}") from None
        raise
    except ConnectionError as err:
        raise ConfigError(
            f"data.transfer.dataset: cannot load Hub dataset {transfer.dataset!r}: "
            f"{' '.join(str(err).split())}. Without internet access, point "
            "data.transfer.files at local copies") from None
    return _as_texts(split, source_columns, target_columns,
                     f"dataset {transfer.dataset!r} split {transfer.split!r}")


def load_transfer(data: DataConfig) -> datasets.Dataset:
    """Every transfer text ``data.transfer`` names, in source order.

    Returns:
        A dataset with exactly the columns ``data.text_columns`` (strings; rows with an
        empty or missing text left out), before the leak guard and the subsample.

    Raises:
        ConfigError: a text column or split does not exist, or the Hub is unreachable.
        FileNotFoundError: a transfer file is missing.
    """
    transfer = data.transfer
    target = list(data.text_columns)
    source = list(transfer.text_columns) if transfer.text_columns is not None else target
    if transfer.dataset is not None:
        return _load_transfer_dataset(transfer, source, target, data.cache_dir)
    parts = [_load_transfer_file(path, i, source, target, data.cache_dir)
             for i, path in enumerate(transfer.files)]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def text_key(texts: Sequence[Any]) -> tuple[str, ...]:
    """What the leak guard compares: each text case-folded, runs of whitespace as one
    space."""
    return tuple(" ".join(("" if t is None else str(t)).split()).casefold() for t in texts)


def drop_leaks(transfer: datasets.Dataset, evaluation: datasets.Dataset,
               text_columns: Sequence[str]) -> tuple[datasets.Dataset, int]:
    """``transfer`` without the rows whose texts (:func:`text_key`) are an eval row's.

    Returns:
        ``(kept rows, number dropped)``.
    """
    columns = list(text_columns)
    seen = {text_key(texts) for texts in zip(*(evaluation[c] for c in columns))}
    keep = [i for i, texts in enumerate(zip(*(transfer[c] for c in columns)))
            if text_key(texts) not in seen]
    dropped = len(transfer) - len(keep)
    if not dropped:
        return transfer, 0
    return transfer.select(keep).flatten_indices(), dropped


def append_transfer(raw: datasets.DatasetDict,
                    data: DataConfig) -> tuple[datasets.DatasetDict, str]:
    """``raw`` with the transfer texts appended to its train split.

    The train split keeps only its text and label columns (tokenization drops the rest
    anyway) and gains the bool column ``transfer``. A transfer row carries the first
    train row's label value, only so that tokenization can map it; the caller replaces it
    with -100 (:func:`textdistill.prepare.unlabel_rows`).

    Returns:
        ``(raw, note)``: the new ``DatasetDict`` (eval unchanged) and a line for the user
        saying how many texts were added and what the leak guard dropped.

    Raises:
        ConfigError, FileNotFoundError: as :func:`load_transfer`; ConfigError also when
            the train split is empty or a text or label column is named ``transfer``.
    """

    transfer_cfg = data.transfer
    train = raw["train"]
    if len(train) == 0:
        raise ConfigError("data.transfer: the train split is empty; transfer texts are added "
                          "to labelled training data, not used alone")
    columns = [*data.text_columns, data.label_column]
    if TRANSFER_COLUMN in columns:
        raise ConfigError(f"data.transfer: {TRANSFER_COLUMN!r} names the flag column of "
                          "transfer rows; rename your text or label column")
    texts = load_transfer(data)
    pool = len(texts)
    dropped = 0
    if transfer_cfg.leak_guard:
        texts, dropped = drop_leaks(texts, raw["eval"], data.text_columns)
    texts = seeded_subset(texts, transfer_cfg.max_samples, transfer_cfg.seed)

    train = train.select_columns(columns)
    placeholder = train[0][data.label_column]
    texts = texts.add_column(data.label_column, [placeholder] * len(texts))
    texts = texts.cast(train.features)
    flags = datasets.Value("bool")
    combined = datasets.concatenate_datasets([
        train.add_column(TRANSFER_COLUMN, [False] * len(train), feature=flags),
        texts.add_column(TRANSFER_COLUMN, [True] * len(texts), feature=flags),
    ])
    return datasets.DatasetDict({**raw, "train": combined}), _note(
        transfer_cfg, len(texts), pool, dropped)


def _note(transfer: TransferConfig, added: int, pool: int, dropped: int) -> str:
    drawn = "" if transfer.max_samples is None or added == pool - dropped else (
        f" (drawn from {pool - dropped} with seed {transfer.seed})")
    guard = (f"leak guard dropped {dropped} of {pool} that appear in the eval split"
             if transfer.leak_guard else "leak guard off (data.transfer.leak_guard: false)")
    return (f"transfer data: {added} unlabelled texts from {transfer.source_name}{drawn}; "
            f"{guard}")


def train_sources(split: datasets.Dataset) -> dict[str, int]:
    """How many rows of a built train split are labelled, transfer texts and augmented.

    Reads the ``transfer`` and ``augmented`` flag columns (a missing one counts as all
    False); an augmented variant of a transfer text counts as augmented.

    Returns:
        ``{"labelled": n, "transfer": n, "augmented": n}``, summing to ``len(split)``.
    """
    columns = split.column_names
    none = [False] * len(split)
    transfer = split[TRANSFER_COLUMN] if TRANSFER_COLUMN in columns else none
    augmented = split[AUGMENTED_COLUMN] if AUGMENTED_COLUMN in columns else none
    counts = {"labelled": 0, "transfer": 0, "augmented": 0}
    for is_transfer, is_augmented in zip(transfer, augmented):
        counts["augmented" if is_augmented else "transfer" if is_transfer else "labelled"] += 1
    return counts


__all__ = ["TRANSFER_COLUMN", "TransferConfig", "append_transfer",
           "check_transfer_columns", "drop_leaks", "load_transfer", "text_key",
           "train_sources"]
