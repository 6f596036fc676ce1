"""``textdistill evaluate``: a classifier's accuracy, F1, MCC, size and speed on data.

The data is named by a spec: ``sst2``, a recipe (its eval split) or a data file. The
model is a PyTorch classifier (a directory or Hub id) or an ONNX directory written by
``textdistill quantize``, which runs through ONNX Runtime in the same loop.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .build import check_vocabulary, load_classifier, load_tokenizer
from .config import TrainingConfig
from .data.files import DATA_EXTENSIONS
from .errors import ConfigError
from .onnx_model import OnnxClassifier, is_onnx_dir
from .prepare import tokenize_with_labels
from .recipe import load_recipe
from .refs import normalize_model_ref
from .speed import latency_profile


def data_config_for(spec: str, *, text_columns: Sequence[str] | None = None,
                    label_column: str | None = None, label_names: Sequence[str] | None = None,
                    max_samples: int | None = None, max_length: int | None = None,
                    split: str = "eval"):
    """The :class:`DataConfig` of a data spec, reading only one split (``split``:
    ``"eval"`` or ``"train"``).

    ``spec`` is ``sst2`` (GLUE SST-2: the copy in ``$TEXTDISTILL_SST2_DIR``, else the
    Hub), a recipe (``.yaml``: its data section) or a data file (csv, tsv, json, jsonl,
    parquet: both splits). The options replace the corresponding settings.

    Raises:
        ConfigError: an unrecognised spec.
        FileNotFoundError: a missing file.
    """
    from .data.config import DataConfig
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
    # Only one split is needed: read it as both (label names are inferred from "train",
    # the rows come from "eval"), so nothing else is loaded.
    chosen = cfg.eval if split == "eval" else cfg.train
    cfg = dataclasses.replace(cfg, train=chosen, eval=chosen)
    try:
        return dataclasses.replace(cfg, max_train_samples=max_samples,
                                   max_eval_samples=max_samples, **overrides)
    except ConfigError as err:
        raise ConfigError(f"--data {spec}: {err}") from None


# Files that hold a model's weights or graph (model.safetensors, its shards and index,
# model.onnx); the tokenizer and config are the same size whatever the model's format.
_MODEL_FILES = "model*"


def load_evaluable(model_ref: str) -> tuple[Any, Any, str]:
    """``(model, tokenizer, ref)``: an ONNX directory as an :class:`OnnxClassifier`,
    anything else as a PyTorch classifier; ``ref`` is the normalized reference.

    Raises:
        ConfigError: the model or tokenizer cannot be loaded (or, for an ONNX directory,
            the ``deploy`` extra is missing).
    """
    ref = normalize_model_ref(model_ref, "MODEL_DIR")
    if is_onnx_dir(ref):
        return OnnxClassifier(ref), load_tokenizer(ref, "MODEL_DIR"), ref
    model, tokenizer = load_classifier(ref, "MODEL_DIR"), load_tokenizer(ref, "MODEL_DIR")
    check_vocabulary(model, tokenizer, "MODEL_DIR")
    return model, tokenizer, ref


def model_costs(model: Any, ref: str, *, seq_len: int, latency: bool = True,
                latency_repeats: int = 10) -> dict[str, Any]:
    """Size and speed of a model from :func:`load_evaluable`.

    Returns:
        ``{"runtime", "params", "size_mb"}`` (``size_mb``: MiB of the ``model*`` files,
        None for a Hub id), with ``latency`` also ``"latency_ms": {"1", "32"},
        "samples_per_second": {"1", "32"}, "seq_len"``.
    """
    from .speed import count_parameters

    onnx = isinstance(model, OnnxClassifier)
    directory = Path(ref)
    size = (sum(f.stat().st_size for f in directory.glob(_MODEL_FILES) if f.is_file()) / 2**20
            if directory.is_dir() else None)
    result: dict[str, Any] = {
        "runtime": "onnxruntime" if onnx else "pytorch",
        "params": model.parameter_count if onnx else count_parameters(model),
        "size_mb": size}
    if latency:
        speed = latency_profile(model, seq_len, repeats=latency_repeats)
        result.update(latency_ms=speed["latency_ms"],
                      samples_per_second=speed["samples_per_second"], seq_len=speed["seq_len"])
    return result


def labelled_data(model_config: Any, tokenizer: Any, spec: str, *,
                  text_columns: Sequence[str] | None = None, label_column: str | None = None,
                  label_names: Sequence[str] | None = None, max_samples: int | None = None,
                  max_length: int | None = None, split: str = "eval") -> tuple[Any, list[str], Any]:
    """One split of a data spec (see :func:`data_config_for`), tokenized, its labels
    renumbered to the model's class ids (classes are matched by name).

    For a data file without ``label_names`` the model's classes are used (integer labels
    are ids, strings are names); ``max_length`` defaults to the data's, at most the
    model's positions.

    Returns:
        ``(dataset, class names by model id, the DataConfig read)``.

    Raises:
        ConfigError, FileNotFoundError: bad data, or classes the model does not have.
    """
    from .data.loading import infer_label_names, load_raw_splits
    from .models.student import check_label_mapping

    model_names = [str(model_config.id2label[k]) for k in sorted(model_config.id2label, key=int)]
    is_file = Path(spec).suffix.lower() in DATA_EXTENSIONS
    if is_file and not label_names:
        label_names = model_names
    positions = getattr(model_config, "max_position_embeddings", None)
    cfg = data_config_for(spec, text_columns=text_columns, label_column=label_column,
                          label_names=label_names, max_samples=max_samples,
                          max_length=max_length, split=split)
    if max_length is None and isinstance(positions, int) and cfg.max_length > positions:
        cfg = dataclasses.replace(cfg, max_length=positions)
    try:
        raw = load_raw_splits(cfg)
    except ConnectionError as err:
        raise ConfigError(f"--data: {' '.join(str(err).split())}") from None
    try:
        names = infer_label_names(raw, cfg)
        remap = check_label_mapping(model_config, names, remap=True)
    except ValueError as err:
        raise ConfigError(f"--data: {err}") from None
    order = names if remap is None else [names[d] for d, _ in
                                         sorted(remap.items(), key=lambda kv: kv[1])]
    return tokenize_with_labels(raw, tokenizer, cfg, names, remap, order)["eval"], order, cfg


def evaluate_model(model_ref: str, spec: str, *, text_columns: Sequence[str] | None = None,
                   label_column: str | None = None, label_names: Sequence[str] | None = None,
                   max_samples: int | None = None, max_length: int | None = None,
                   batch_size: int = 64, latency: bool = True,
                   latency_repeats: int = 10, progress_bar: bool = True) -> dict[str, Any]:
    """Accuracy, F1 and MCC of a classifier on an eval split, plus its size and speed.

    ``progress_bar`` shows the evaluation pass as a tqdm bar on stderr (a large split
    takes minutes on a CPU).

    The data's classes are matched to the model's by name (a reordering is undone);
    for a data file without ``label_names`` the model's classes are used (integer labels
    are ids, strings are names).

    Returns:
        ``{"model", "data", "examples", "label_names", "metrics", "eval_seconds",
        "device"}`` and :func:`model_costs`' ``"runtime", "params", "size_mb"``, with
        ``latency`` also ``"latency_ms": {"1", "32"}, "samples_per_second": {"1", "32"},
        "seq_len"``.

    Raises:
        ConfigError, FileNotFoundError: bad model or data.
    """
    from .distiller import Distiller

    model, tokenizer, ref = load_evaluable(model_ref)
    data, order, cfg = labelled_data(model.config, tokenizer, spec, text_columns=text_columns,
                                     label_column=label_column, label_names=label_names,
                                     max_samples=max_samples, max_length=max_length)

    with tempfile.TemporaryDirectory(prefix="textdistill-eval-") as scratch:
        training = TrainingConfig(output_dir=scratch, report_to=[], progress_bar=progress_bar,
                                  eval_batch_size=batch_size)
        distiller = Distiller(None, model, training_config=training, tokenizer=tokenizer)
        start = time.perf_counter()
        metrics = distiller.evaluate(data, model)
        seconds = time.perf_counter() - start
        # An ONNX model runs on ONNX Runtime's CPU provider wherever the batches are.
        device = "cpu" if isinstance(model, OnnxClassifier) else str(distiller.accelerator.device)
    result = {"model": model_ref, "data": spec, "examples": len(data), "label_names": order,
              "metrics": metrics, "eval_seconds": seconds, "device": device}
    result.update(model_costs(model, ref, seq_len=cfg.max_length, latency=latency,
                              latency_repeats=latency_repeats))
    return result


__all__ = ["data_config_for", "evaluate_model", "labelled_data", "load_evaluable",
           "model_costs"]
