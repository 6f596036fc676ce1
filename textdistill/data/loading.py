"""Raw text datasets in, tokenized datasets out.

Two steps, both built on ``datasets``:

* :func:`load_raw_splits` reads a Hub dataset or local files (csv, tsv, json, jsonl,
  parquet) into a ``DatasetDict`` with the splits ``"train"`` and ``"eval"``, taking a
  seeded random subset when ``max_train_samples`` / ``max_eval_samples`` ask for one.
* :func:`tokenize_splits` turns each split into ``input_ids``, ``attention_mask``
  (``token_type_ids`` when the tokenizer makes them), integer ``labels`` and ``idx``, the
  example's row in its split, which keys the teacher-logit cache. Sequences are truncated
  but not padded: batches are padded to their own longest sequence later.

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

from ..config import _positive, from_dict
from ..errors import ConfigError
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

SST2_HUB_DATASET = "stanfordnlp/sst2"
# The checkout's root: the parent of the ``textdistill`` package directory.
_REPO_ROOT = Path(__file__).resolve().parents[2]
SST2_LABEL_NAMES = ["negative", "positive"]


def _file_format(path: str) -> str:
    """The lower-case extension of ``path`` (``".tsv"``)."""
    return os.path.splitext(path)[1].lower()


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes model inputs.

    Give exactly one source: ``dataset`` (a Hub name, optionally with ``dataset_config``)
    or local ``train_file`` + ``validation_file``.

    Attributes:
        dataset: Hub dataset name, e.g. ``"stanfordnlp/sst2"`` or ``"nyu-mll/glue"``.
        dataset_config: the Hub dataset's configuration, e.g. ``"mnli"``.
        train_file / validation_file: local csv, tsv, json, jsonl or parquet files; the
            format comes from the extension (tsv: tab-separated, no quoting).
        train_split / eval_split: Hub split names (slices like ``"train[:10%]"`` work).
            Ignored for local files, whose split is the file.
        text_columns: one column (single text) or two (sentence pair, e.g.
            ``["premise", "hypothesis"]``).
        label_column: the column holding the label (an int id, or a string name).
        label_names: the class names, index = label id. ``None`` infers them from a
            ``ClassLabel`` feature, else from the sorted unique train labels.
        max_length: truncation length in tokens (no padding here).
        max_train_samples / max_eval_samples: keep a random subset of this many examples
            (``None`` keeps all); the subset is drawn after a shuffle seeded with
            ``shuffle_seed``, so it is a fair sample and the same on every run.
        shuffle_seed: seed of that shuffle.
        cache_dir: ``datasets`` cache directory (``None``: the library default).
        augment: transfer-set augmentation of the train split
            (:class:`~textdistill.data.augment.AugmentConfig`; off by default). Used by
            distillation only: the variants have no gold labels.
    """

    _section: typing.ClassVar[str] = "data"

    dataset: str | None = None
    dataset_config: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    text_columns: list[str] = field(default_factory=lambda: ["sentence"])
    label_column: str = "label"
    label_names: list[str] | None = None
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    shuffle_seed: int = 42
    cache_dir: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.train_file is None):
            raise ConfigError(
                "data.dataset / data.train_file: give exactly one source, a Hub dataset "
                "(data.dataset) or local files (data.train_file + data.validation_file)"
            )
        if self.dataset is not None:
            for name in ("train_file", "validation_file"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"data.{name}: not used with data.dataset; give one source")
        else:
            if self.dataset_config is not None:
                raise ConfigError("data.dataset_config: only used with data.dataset")
            if self.validation_file is None:
                raise ConfigError("data.validation_file: required with data.train_file")
            for name in ("train_file", "validation_file"):
                path = getattr(self, name)
                if _file_format(path) not in _FORMATS:
                    raise ConfigError(
                        f"data.{name}: cannot tell the format of {path!r} from its extension;"
                        f" use one of {sorted(_FORMATS)}"
                    )
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
            _positive(f"data.{name}", value)
        _positive("data.shuffle_seed", self.shuffle_seed, allow_zero=True)
        if isinstance(self.augment, Mapping):
            self.augment = from_dict(AugmentConfig, self.augment, "data.augment")
        elif not isinstance(self.augment, AugmentConfig):
            keys = sorted(f.name for f in dataclasses.fields(AugmentConfig))
            raise ConfigError(f"data.augment: expected a mapping with keys {keys}, got "
                              f"{self.augment!r}")

    @property
    def source_name(self) -> str:
        """A short name of the data source, for logs and model cards."""
        if self.dataset is not None:
            return self.dataset + (f" ({self.dataset_config})" if self.dataset_config else "")
        return str(Path(self.train_file).parent.name or self.train_file)


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
            "point data.train_file / data.validation_file at local copies"
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
        train = _load_hub_split(cfg, cfg.train_split, "train_split")
        evaluation = _load_hub_split(cfg, cfg.eval_split, "eval_split")
    else:
        train = _load_file(cfg.train_file, "train_file", cfg.cache_dir)
        evaluation = _load_file(cfg.validation_file, "validation_file", cfg.cache_dir)
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
        "train": _subset(train, cfg.max_train_samples, cfg.shuffle_seed),
        "eval": _subset(evaluation, cfg.max_eval_samples, cfg.shuffle_seed),
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
        variable-length int lists, ``labels`` (``ClassLabel`` with the label names)
        and ``idx`` (the row index in that split, 0..n-1).

    Raises:
        ValueError: a label value is not one of the label names (or out of range).
    """
    label_names = infer_label_names(raw, cfg)
    out = {}
    for split_name, split in raw.items():
        to_id = _label_mapper(split.features[cfg.label_column], label_names, cfg.label_column)

        def encode(batch: dict[str, list], indices: list[int], to_id=to_id) -> dict[str, list]:
            # A missing text is an empty text; the tokenizer would reject None.
            texts = [["" if t is None else str(t) for t in batch[c]] for c in cfg.text_columns]
            encoded = tokenizer(*texts, truncation=True, max_length=cfg.max_length)
            result = {key: encoded[key] for key in ("input_ids", "attention_mask",
                                                    "token_type_ids") if key in encoded}
            result["labels"] = [to_id(v) for v in batch[cfg.label_column]]
            result["idx"] = list(indices)
            return result

        tokenized = split.map(encode, batched=True, with_indices=True,
                              remove_columns=split.column_names,
                              desc=f"Tokenizing {split_name}")
        out[split_name] = tokenized.cast_column("labels", datasets.ClassLabel(names=label_names))
    return datasets.DatasetDict(out)


# ------------------------------------------------------------------------------- SST-2


def default_sst2_dir() -> Path | None:
    """The GLUE SST-2 copy shipped beside the repo, or ``None`` when there is none.

    Looks at ``$TEXTDISTILL_SST2_DIR``, then ``<repo root>/../shared/data/sst2``; a
    directory counts when it holds ``train.tsv`` and ``validation.tsv``.
    """
    candidates = []
    if os.environ.get("TEXTDISTILL_SST2_DIR"):
        candidates.append(Path(os.environ["TEXTDISTILL_SST2_DIR"]).expanduser())
    candidates.append(_REPO_ROOT.parent / "shared" / "data" / "sst2")
    for directory in candidates:
        if (directory / "train.tsv").is_file() and (directory / "validation.tsv").is_file():
            return directory
    return None


_SOURCE_KEYS = ("dataset", "dataset_config", "train_file", "validation_file")


def sst2_data_config(**overrides: Any) -> DataConfig:
    """A :class:`DataConfig` for GLUE SST-2: the local copy when there is one, else the Hub.

    ``overrides`` replace any field; giving ``dataset`` or ``train_file`` replaces the
    source as a whole.
    """
    local = default_sst2_dir()
    if local is not None:
        values: dict[str, Any] = {"train_file": str(local / "train.tsv"),
                                  "validation_file": str(local / "validation.tsv")}
    else:
        values = {"dataset": SST2_HUB_DATASET}
    values.update(text_columns=["sentence"], label_column="label",
                  label_names=list(SST2_LABEL_NAMES))
    if "dataset" in overrides or "train_file" in overrides:
        values = {k: v for k, v in values.items() if k not in _SOURCE_KEYS}
    values.update(overrides)
    return DataConfig(**values)
