"""Raw text datasets in, tokenized datasets out.

Two steps, both built on ``datasets``:

* :func:`load_raw_splits` reads two splits of a Hub dataset or two local files (csv, tsv,
  json, jsonl, parquet) into a ``DatasetDict`` with the splits ``"train"`` and ``"eval"``,
  taking a seeded random subset when ``max_train_samples`` / ``max_eval_samples`` ask
  for one.
* :func:`tokenize_splits` turns each split into ``input_ids``, ``attention_mask``
  (``token_type_ids`` when the tokenizer makes them) and integer ``labels``. Sequences
  are truncated but not padded: batches are padded to their own longest sequence later.

Labels end up as ids into :attr:`DataConfig.label_names`, and the tokenized ``labels``
column is a ``ClassLabel`` carrying those names, so later steps (the teacher's label
check, the exported model's ``id2label``) read them from the data.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..errors import ConfigError
from ..schema import check_number, from_dict
from .augment import AugmentConfig

# Extension -> (``datasets`` builder, extra builder options).
_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    # keep_default_na=False: pandas would otherwise read texts such as "NA", "null" or
    # "nan" (MNLI has "N/A" hypotheses) as missing values.
    ".csv": ("csv", {"keep_default_na": False}),
    # GLUE's tsv files are unquoted: a sentence may begin with a '"' that pandas would
    # take as the start of a quoted field spanning lines. quoting=3 is csv.QUOTE_NONE.
    ".tsv": ("csv", {"delimiter": "\t", "quoting": 3, "keep_default_na": False}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
DATA_EXTENSIONS = tuple(_FORMATS)

SST2_HUB_DATASET = "stanfordnlp/sst2"
SST2_LABEL_NAMES = ["negative", "positive"]
# Names a local GLUE SST-2 copy (a directory with SST2_FILES) for sst2_data_config().
SST2_DIR_ENV = "TEXTDISTILL_SST2_DIR"
SST2_FILES = ("train.tsv", "validation.tsv")


def _file_format(path: str) -> str:
    """The lower-case extension of ``path`` (``".tsv"``)."""
    return os.path.splitext(path)[1].lower()


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
        "One column (single text) or two (a sentence pair, e.g. [premise, hypothesis]).")})
    label_column: str = field(default="label", metadata={"help": (
        "The column holding the label: an integer id or a class name.")})
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
                if _file_format(value) in _FORMATS:
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
                    f"files ({', '.join(sorted(_FORMATS))}), got the split name {value!r}; "
                    "set data.dataset to read a Hub dataset"
                )
            if _file_format(value) not in _FORMATS:
                raise ConfigError(f"data.{key}: cannot tell the format of {value!r} from its "
                                  f"extension; use one of {sorted(_FORMATS)}")

    @property
    def source_name(self) -> str:
        """A short name of the data source, for logs and model cards."""
        if self.dataset is not None:
            return self.dataset + (f" ({self.dataset_config})" if self.dataset_config else "")
        return str(Path(self.train).parent.name or self.train)


# ------------------------------------------------------------------------------ loading


def _load_file(path: str, key: str, cache_dir: str | None) -> datasets.Dataset:
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.{key}: no such file: {path}")
    builder, options = _FORMATS[_file_format(path)]
    return datasets.load_dataset(builder, data_files=str(path), split="train",
                                 cache_dir=cache_dir, **options)


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


def _subset(split: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    if limit is None or limit >= len(split):
        return split
    # flatten_indices: later steps (map, fingerprints) see a plain table, not an index
    # mapping over the full one.
    return split.shuffle(seed=seed).select(range(limit)).flatten_indices()


def load_raw_splits(cfg: DataConfig) -> datasets.DatasetDict:
    """Read the train and eval data described by ``cfg``.

    Returns:
        ``DatasetDict`` with ``"train"`` and ``"eval"``, holding the source's columns
        (at most ``max_train_samples`` / ``max_eval_samples`` rows each).

    Raises:
        ConfigError: a configured column or split does not exist.
        FileNotFoundError: a local file is missing.
    """
    if cfg.dataset is not None:
        train = _load_hub_split(cfg, cfg.train, "train")
        evaluation = _load_hub_split(cfg, cfg.eval, "eval")
    else:
        train = _load_file(cfg.train, "train", cfg.cache_dir)
        evaluation = _load_file(cfg.eval, "eval", cfg.cache_dir)
    for split_name, split in (("train", train), ("eval", evaluation)):
        for key, columns in (("text_columns", cfg.text_columns),
                             ("label_column", [cfg.label_column])):
            missing = [c for c in columns if c not in split.column_names]
            if missing:
                raise ConfigError(
                    f"data.{key}: column(s) {missing} not in the {split_name} split; "
                    f"its columns are {split.column_names}"
                )
    return datasets.DatasetDict({
        "train": _subset(train, cfg.max_train_samples, cfg.seed),
        "eval": _subset(evaluation, cfg.max_eval_samples, cfg.seed),
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


# ------------------------------------------------------------------------------- SST-2


def default_sst2_dir() -> Path | None:
    """The local GLUE SST-2 copy that ``$TEXTDISTILL_SST2_DIR`` names; ``None`` when unset.

    The library never guesses a location from its own install or checkout: a script that
    knows where its data lives passes the directory to :func:`sst2_data_config`.

    Raises:
        FileNotFoundError: the variable names a directory without ``train.tsv`` and
            ``validation.tsv``.
    """
    value = os.environ.get(SST2_DIR_ENV)
    if not value:
        return None
    return _checked_sst2_dir(Path(value).expanduser(), f"${SST2_DIR_ENV}")


def _checked_sst2_dir(directory: Path, origin: str) -> Path:
    missing = [name for name in SST2_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{origin}: {directory} is not a GLUE SST-2 copy: it lacks "
                                f"{', '.join(missing)}")
    return directory


def sst2_data_config(directory: str | os.PathLike[str] | None = None,
                     **overrides: Any) -> DataConfig:
    """A :class:`DataConfig` for GLUE SST-2.

    The source is the local copy in ``directory`` when given, else the one
    ``$TEXTDISTILL_SST2_DIR`` names, else the Hub dataset ``stanfordnlp/sst2``.
    ``overrides`` replace any other field (``max_train_samples``, ``max_length``, ...).

    Raises:
        FileNotFoundError: the chosen directory lacks ``train.tsv`` or ``validation.tsv``.
    """
    if directory is not None:
        local: Path | None = _checked_sst2_dir(Path(directory).expanduser(), "SST-2 directory")
    else:
        local = default_sst2_dir()
    if local is not None:
        values: dict[str, Any] = {"train": str(local / "train.tsv"),
                                  "eval": str(local / "validation.tsv")}
    else:
        values = {"dataset": SST2_HUB_DATASET}
    values.update(text_columns=["sentence"], label_column="label",
                  label_names=list(SST2_LABEL_NAMES))
    values.update(overrides)
    return DataConfig(**values)
