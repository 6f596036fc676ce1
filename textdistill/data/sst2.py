"""GLUE SST-2, the project's sentiment data: a local copy or the Hub dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import DataConfig

SST2_HUB_DATASET = "stanfordnlp/sst2"
SST2_LABEL_NAMES = ["negative", "positive"]
# Names a local GLUE SST-2 copy (a directory with SST2_FILES) for sst2_data_config().
SST2_DIR_ENV = "TEXTDISTILL_SST2_DIR"
SST2_FILES = ("train.tsv", "validation.tsv")


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


__all__ = ["SST2_DIR_ENV", "SST2_FILES", "SST2_HUB_DATASET", "SST2_LABEL_NAMES",
           "default_sst2_dir", "sst2_data_config"]
