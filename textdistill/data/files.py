"""Local data files: which formats are read, and how.

The one list of table formats; :mod:`~textdistill.data.loading` (train and eval files)
and :mod:`~textdistill.data.transfer` (transfer files) both read through it.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from ..errors import ConfigError

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


# Formats whose files are text; they are checked to be UTF-8 before they are parsed.
TEXT_FORMATS = (".csv", ".tsv", ".json", ".jsonl")
# Formats with a header row, which ``column_names`` replaces.
DELIMITED_FORMATS = (".csv", ".tsv")
_CHUNK_BYTES = 1 << 20


def check_utf8(path: Path, key: str) -> None:
    """Refuse a text file that is empty (or blank) or not valid UTF-8, naming the first bad
    byte's offset and line, before a parser fails on it with a traceback.

    Raises:
        ConfigError: the file is empty or not UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, blank = 0, 1, True
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            # The decoder holds back the bytes of a character cut by the chunk boundary.
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                data = pending + chunk
                line = lines + data[:err.start].count(b"\n")
                raise ConfigError(
                    f"data.{key}: {path} is not UTF-8 text: byte 0x{data[err.start]:02x} at "
                    f"offset {offset - len(pending) + err.start} (line {line}) cannot be "
                    "decoded; save the file as UTF-8") from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
            blank = blank and not chunk.strip()
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ConfigError(f"data.{key}: {path} is not UTF-8 text: it ends inside a "
                          "multi-byte character; save the file as UTF-8") from None
    if blank:
        raise ConfigError(f"data.{key}: {path} is empty")


def load_table(path: str, key: str, cache_dir: str | None,
               column_names: Sequence[str] | None = None) -> datasets.Dataset:
    """The rows of the table file ``path``; ``key`` names it in errors (``data.<key>``).

    ``column_names`` names the columns of a csv/tsv file that has no header row (its
    first row is then data).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is empty, not UTF-8, holds no rows or cannot be parsed.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.{key}: no such file: {path}")
    suffix = file_format(path)
    if suffix in TEXT_FORMATS:
        check_utf8(Path(path), key)
    builder, options = FORMATS[suffix]
    if column_names is not None and suffix in DELIMITED_FORMATS:
        options = {**options, "column_names": list(column_names)}
    try:
        rows = datasets.load_dataset(builder, data_files=str(path), split="train",
                                     cache_dir=cache_dir, **options)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err
        raise ConfigError(f"data.{key}: cannot read {path}: "
                          f"{' '.join(str(cause).split())}") from None
    except ValueError as err:
        # datasets' words for a table without a single row.
        if "corresponds to no data" not in str(err):
            raise
        rows = None
    if rows is None or len(rows) == 0:
        what = "a header row but no data rows" if suffix in DELIMITED_FORMATS else "no rows"
        raise ConfigError(f"data.{key}: {path} has {what}")
    return rows


def seeded_subset(split: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    """``limit`` rows of ``split`` drawn after a shuffle seeded with ``seed`` (all when
    ``limit`` is None or not smaller)."""
    if limit is None or limit >= len(split):
        return split
    # flatten_indices: later steps (map, fingerprints) see a plain table, not an index
    # mapping over the full one.
    return split.shuffle(seed=seed).select(range(limit)).flatten_indices()


__all__ = ["DATA_EXTENSIONS", "DELIMITED_FORMATS", "FORMATS", "TEXT_FORMATS", "check_utf8",
           "file_format", "load_table", "seeded_subset"]
