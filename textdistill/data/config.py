"""The data section of a recipe: where the text comes from and how it becomes model
inputs (:class:`DataConfig`), validated when it is made.

:mod:`.loading` reads and tokenizes what it describes.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..schema import check_number, from_dict
from .augment import AugmentConfig
from .files import DATA_EXTENSIONS, DELIMITED_FORMATS, file_format
from .transfer import TransferConfig, check_transfer_columns


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes model inputs.

    The source is a Hub dataset (``dataset`` set: ``train`` and ``eval`` are its split
    names) or two local files (``dataset`` unset: ``train`` and ``eval`` are the files).
    """

    _section: typing.ClassVar[str] = "data"

    dataset: str | None = field(default=None, metadata={"help": (
        "Hub dataset name (anything `datasets.load_dataset` takes), e.g. "
        "\"stanfordnlp/sst2\" or \"nyu-mll/glue\". Unset: `train` and `eval` are local "
        "files.")})
    dataset_config: str | None = field(default=None, metadata={"help": (
        "The Hub dataset's configuration, e.g. \"mnli\". Only with `dataset`.")})
    train: str = field(default="train", metadata={"help": (
        "The training data. With `dataset`: a split name (slices like \"train[:10%]\" "
        "work). Without: a local csv, tsv, json, jsonl or parquet file, its format taken "
        "from the extension (tsv: tab-separated, no quoting).")})
    eval: str = field(default="validation", metadata={"help": (
        "The evaluation data: a split name with `dataset` (e.g. \"validation_matched\"), "
        "else a local file like `train`.")})
    text_columns: list[str] = field(default_factory=lambda: ["sentence"], metadata={"help": (
        "One column (single text) or two (a sentence pair, e.g. [premise, hypothesis]). "
        "Rows with an empty (or blank) text are dropped, and the run says how many.")})
    label_column: str = field(default="label", metadata={"help": (
        "The column holding the label: an integer id or a class name.")})
    column_names: list[str] | None = field(default=None, metadata={"help": (
        "Local csv/tsv files without a header row: their column names, in file order, "
        "e.g. [sentence, label] (the first row is then data). Unset: the first row is the "
        "header.")})
    label_names: list[str] | None = field(default=None, metadata={"help": (
        "The class names, index = label id. Unset: the names of a ClassLabel feature, "
        "else the sorted unique training labels.")})
    max_length: int = field(default=128, metadata={"help": (
        "Truncation length in tokens. Nothing is padded here: each batch is padded to its "
        "longest sequence.")})
    max_train_samples: int | None = field(default=None, metadata={"help": (
        "Train on a random subset of this many examples, drawn with `seed` (the same "
        "subset on every run). Unset: all.")})
    max_eval_samples: int | None = field(default=None, metadata={"help": (
        "Evaluate on a random subset of this many examples, drawn with `seed`. Unset: "
        "all.")})
    seed: int = field(default=42, metadata={"help": (
        "Seed of the shuffle that draws the max_train_samples / max_eval_samples "
        "subsets.")})
    cache_dir: str | None = field(default=None, metadata={"help": (
        "The `datasets` cache directory. Unset: the library's default.")})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": (
        "Transfer-set augmentation of the train split (off by default; distillation "
        "only, since the variants have no gold labels).")})
    transfer: TransferConfig = field(default_factory=TransferConfig, metadata={"help": (
        "Unlabeled text added to the train split (off by default; distillation only, since "
        "the texts have no gold labels): local files or a dataset split, a seeded "
        "subsample, and a guard against texts of the eval split.")})

    def __post_init__(self) -> None:
        self._check_source()
        if isinstance(self.text_columns, str):
            self.text_columns = [self.text_columns]
        if not 1 <= len(self.text_columns) <= 2:
            raise ConfigError(
                "data.text_columns: give 1 column (single text) or 2 (sentence pair), "
                f"got {len(self.text_columns)}: {self.text_columns!r}"
            )
        if len(set(self.text_columns)) != len(self.text_columns):
            raise ConfigError(f"data.text_columns: columns repeat: {self.text_columns!r}")
        if self.label_column in self.text_columns:
            raise ConfigError(f"data.label_column: {self.label_column!r} is also a text column")
        if self.label_names is not None:
            names = [str(n) for n in self.label_names]
            if len(names) < 2:
                raise ConfigError(f"data.label_names: need >= 2 classes, got {names!r}")
            if len({n.lower() for n in names}) != len(names):
                raise ConfigError(f"data.label_names: names repeat (case-insensitively): "
                                  f"{names!r}")
            self.label_names = names
        for name in ("max_length", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"data.{name}: expected an integer, got {value!r}")
            check_number(f"data.{name}", value)
        check_number("data.seed", self.seed, allow_minimum=True)
        if isinstance(self.augment, Mapping):
            self.augment = from_dict(AugmentConfig, self.augment, "data.augment")
        elif not isinstance(self.augment, AugmentConfig):
            keys = sorted(f.name for f in dataclasses.fields(AugmentConfig))
            raise ConfigError(f"data.augment: expected a mapping with keys {keys}, got "
                              f"{self.augment!r}")
        if isinstance(self.transfer, Mapping):
            self.transfer = from_dict(TransferConfig, self.transfer, "data.transfer")
        elif not isinstance(self.transfer, TransferConfig):
            keys = sorted(f.name for f in dataclasses.fields(TransferConfig))
            raise ConfigError(f"data.transfer: expected a mapping with keys {keys}, got "
                              f"{self.transfer!r}")
        check_transfer_columns(self.transfer, self.text_columns)
        self._check_column_names()

    def _check_column_names(self) -> None:
        """``column_names`` name the columns of header-less local csv/tsv files."""
        if self.column_names is None:
            return
        names = self.column_names
        if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"data.column_names: expected a list of column names, got "
                              f"{names!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"data.column_names: names repeat: {names!r}")
        if self.dataset is not None:
            raise ConfigError("data.column_names: only for local csv/tsv files without a "
                              "header row; a Hub dataset names its own columns")
        for key in ("train", "eval"):
            if file_format(getattr(self, key)) not in DELIMITED_FORMATS:
                raise ConfigError(f"data.column_names: only csv/tsv files have a header row "
                                  f"to replace, but data.{key} is {getattr(self, key)!r}")
        missing = [c for c in [*self.text_columns, self.label_column] if c not in names]
        if missing:
            raise ConfigError(f"data.column_names: {names} lacks {missing}, named by "
                              "data.text_columns / data.label_column")

    def _check_source(self) -> None:
        """``train`` and ``eval`` are split names with ``dataset``, else local data files."""
        for key in ("train", "eval"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise ConfigError(f"data.{key}: expected a split name or a file path, got "
                                  f"{value!r}")
        if self.dataset is not None:
            for key in ("train", "eval"):
                value = getattr(self, key)
                if file_format(value) in DATA_EXTENSIONS:
                    raise ConfigError(
                        f"data.{key}: {value!r} looks like a local file, but with "
                        "data.dataset set it is a split name; unset data.dataset to read "
                        "local files"
                    )
            return
        if self.dataset_config is not None:
            raise ConfigError("data.dataset_config: only used with data.dataset")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key in ("train", "eval"):
            value = getattr(self, key)
            if value == defaults[key]:
                raise ConfigError(
                    f"data.{key}: without data.dataset, data.train and data.eval are local "
                    f"files ({', '.join(sorted(DATA_EXTENSIONS))}), got the split name {value!r}; "
                    "set data.dataset to read a Hub dataset"
                )
            if file_format(value) not in DATA_EXTENSIONS:
                raise ConfigError(f"data.{key}: cannot tell the format of {value!r} from its "
                                  f"extension; use one of {sorted(DATA_EXTENSIONS)}")

    @property
    def source_name(self) -> str:
        """A short name of the data source, for logs and model cards."""
        if self.dataset is not None:
            return self.dataset + (f" ({self.dataset_config})" if self.dataset_config else "")
        return str(Path(self.train).parent.name or self.train)
