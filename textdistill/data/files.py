"""Local data files: which formats are read, and how.

The one list of table formats; :mod:`~textdistill.data.loading` (train and eval files)
and :mod:`~textdistill.data.transfer` (transfer files) both read through it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import datasets

# Extension -> (``datasets`` builder, extra builder options).
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
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
DATA_EXTENSIONS = tuple(FORMATS)


def file_format(path: str) -> str:
    """The lower-case extension of ``path`` (``".tsv"``)."""
    return os.path.splitext(path)[1].lower()


def load_table(path: str, key: str, cache_dir: str | None) -> datasets.Dataset:
    """The rows of the table file ``path``; ``key`` names it in errors (``data.<key>``).

    Raises:
        FileNotFoundError: no such file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.{key}: no such file: {path}")
    builder, options = FORMATS[file_format(path)]
    return datasets.load_dataset(builder, data_files=str(path), split="train",
                                 cache_dir=cache_dir, **options)


def seeded_subset(split: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    """``limit`` rows of ``split`` drawn after a shuffle seeded with ``seed`` (all when
    ``limit`` is None or not smaller)."""
    if limit is None or limit >= len(split):
        return split
    # flatten_indices: later steps (map, fingerprints) see a plain table, not an index
    # mapping over the full one.
    return split.shuffle(seed=seed).select(range(limit)).flatten_indices()


__all__ = ["DATA_EXTENSIONS", "FORMATS", "file_format", "load_table", "seeded_subset"]
