"""``textdistill evaluate``: a classifier's accuracy, F1, MCC, size and speed on data.

The data is named by a spec: ``sst2``, a recipe (its eval split) or a data file.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .build import load_classifier, load_tokenizer
from .config import TrainingConfig
from .data.files import DATA_EXTENSIONS
from .errors import ConfigError
from .prepare import tokenize_with_labels
from .recipe import load_recipe
from .refs import normalize_model_ref
from .speed import latency_profile


def data_config_for(spec: str, *, text_columns: Sequence[str] | None = None,
                    label_column: str | None = None, label_names: Sequence[str] | None = None,
                    max_samples: int | None = None, max_length: int | None = None):
    """The :class:`DataConfig` of an evaluation data spec, reading only its eval split.

    ``spec`` is ``sst2`` (GLUE SST-2 validation: the copy in ``$TEXTDISTILL_SST2_DIR``,
    else the Hub), a recipe (``.yaml``: its data section's eval split) or a data file
    (csv, tsv, json, jsonl, parquet). The options replace the corresponding settings.

    Raises:
        ConfigError: an unrecognised spec.
        FileNotFoundError: a missing file.
    """
    from .data.loading import DataConfig
    from .data.sst2 import sst2_data_config

    overrides: dict[str, Any] = {}
    if text_columns:
        overrides["text_columns"] = list(text_columns)
    if label_column:
        overrides["label_column"] = label_column
    if label_names:
        overrides["label_names"] = list(label_names)
    if max_length is not None:
        overrides["max_length"] = max_length
    suffix = Path(spec).suffix.lower()
    if spec.lower() == "sst2":
        cfg = sst2_data_config()
    elif suffix in (".yaml", ".yml"):
        cfg = load_recipe(spec).data
    elif suffix in DATA_EXTENSIONS:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--data: no such file: {path}")
        cfg = DataConfig(train=str(path.absolute()), eval=str(path.absolute()))
    else:
        raise ConfigError(f"--data: {spec!r} is not 'sst2', a recipe (.yaml) or a data file "
                          f"({', '.join(DATA_EXTENSIONS)})")
    # Only the eval split is needed: read it as the "train" split too (label names are
    # inferred from "train"), so nothing else is loaded.
    cfg = dataclasses.replace(cfg, train=cfg.eval)
    try:
        return dataclasses.replace(cfg, max_train_samples=max_samples,
                                   max_eval_samples=max_samples, **overrides)
    except ConfigError as err:
        raise ConfigError(f"--data {spec}: {err}") from None


def evaluate_model(model_ref: str, spec: str, *, text_columns: Sequence[str] | None = None,
                   label_column: str | None = None, label_names: Sequence[str] | None = None,
                   max_samples: int | None = None, max_length: int | None = None,
                   batch_size: int = 64, latency: bool = True,
                   latency_repeats: int = 10) -> dict[str, Any]:
    """Accuracy, F1 and MCC of a classifier on an eval split, plus its size and speed.

    The data's classes are matched to the model's by name (a reordering is undone);
    for a data file without ``label_names`` the model's classes are used (integer labels
    are ids, strings are names).

    Returns:
        ``{"model", "data", "examples", "label_names", "metrics", "params",
        "latency_ms": {"1", "32"}, "samples_per_second": {"1", "32"}, "seq_len",
        "eval_seconds", "device"}``.

    Raises:
        ConfigError, FileNotFoundError: bad model or data.
    """
    from .data.loading import infer_label_names, load_raw_splits
    from .distiller import Distiller
    from .models.student import check_label_mapping
    from .speed import count_parameters

    ref = normalize_model_ref(model_ref, "MODEL_DIR")
    model = load_classifier(ref, "MODEL_DIR")
    tokenizer = load_tokenizer(ref, "MODEL_DIR")
    model_names = [str(model.config.id2label[k]) for k in sorted(model.config.id2label, key=int)]
    is_file = Path(spec).suffix.lower() in DATA_EXTENSIONS
    if is_file and not label_names:
        label_names = model_names
    positions = getattr(model.config, "max_position_embeddings", None)
    cfg = data_config_for(spec, text_columns=text_columns, label_column=label_column,
                          label_names=label_names, max_samples=max_samples,
                          max_length=max_length)
    if max_length is None and isinstance(positions, int) and cfg.max_length > positions:
        cfg = dataclasses.replace(cfg, max_length=positions)
    try:
        raw = load_raw_splits(cfg)
    except ConnectionError as err:
        raise ConfigError(f"--data: {' '.join(str(err).split())}") from None
    try:
        names = infer_label_names(raw, cfg)
        remap = check_label_mapping(model.config, names, remap=True)
    except ValueError as err:
        raise ConfigError(f"--data: {err}") from None
    order = names if remap is None else [names[d] for d, _ in
                                         sorted(remap.items(), key=lambda kv: kv[1])]
    data = tokenize_with_labels(raw, tokenizer, cfg, names, remap, order)["eval"]

    with tempfile.TemporaryDirectory(prefix="textdistill-eval-") as scratch:
        training = TrainingConfig(output_dir=scratch, report_to=[], progress_bar=False,
                                  eval_batch_size=batch_size)
        distiller = Distiller(None, model, training_config=training, tokenizer=tokenizer)
        start = time.perf_counter()
        metrics = distiller.evaluate(data, model)
        seconds = time.perf_counter() - start
        device = str(distiller.accelerator.device)
    result = {"model": model_ref, "data": spec, "examples": len(data), "label_names": order,
              "metrics": metrics, "params": count_parameters(model), "eval_seconds": seconds,
              "device": device}
    if latency:
        speed = latency_profile(model, cfg.max_length, repeats=latency_repeats)
        result.update(latency_ms=speed["latency_ms"],
                      samples_per_second=speed["samples_per_second"], seq_len=speed["seq_len"])
    return result


__all__ = ["data_config_for", "evaluate_model"]
