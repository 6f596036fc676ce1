"""``textdistill quantize``: a trained classifier as a self-contained ONNX Runtime directory.

The directory holds ``model.onnx`` - the one graph it serves: float32 for ``--method
onnx``, int8 for ``onnx-int8`` (the float32 export is an intermediate, not kept) - with
``config.json`` (class names), the tokenizer and a ``README.md`` model card that states
the method and what was measured: latency at batch sizes 1 and 32 always, accuracy and F1
when there is eval data, each next to the PyTorch model it came from, measured in the
same process with the same threads. ``textdistill evaluate`` runs the directory.

The directory is written like ``textdistill export`` writes one: staged and renamed into
place (:func:`~textdistill.export.publish_directory`), never over a non-empty directory
without ``overwrite``, never through a symbolic link.

A recipe's ``output.quantize`` runs it on the finished run (:func:`quantize_run`, into
:attr:`RunDir.onnx <textdistill.run_dir.RunDir.onnx>`); :func:`check_run_quantize`
checks before training that it will be able to.

PyTorch's own dynamic int8 (``torch.ao.quantization.quantize_dynamic``) is not offered:
in torch 2.13 it runs but warns that it is deprecated and due for removal, and its
quantized modules have no format that ``from_pretrained`` or a weights-only load reads
back.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .build import load_classifier, load_tokenizer
from .errors import ConfigError
from .evaluation import data_config_for, evaluate_model, load_evaluable, model_costs
from .export import check_target, fix_label_maps, publish_directory
from .model_card import build_model_card, run_card_inputs
from .onnx_model import (
    METHODS,
    ONNX_FILE,
    export_onnx,
    is_onnx_dir,
    quantize_onnx_int8,
    require_deploy_extra,
)
from .prune import RECORD_KEY
from .pruning import zeroed_heads
from .recipe import Recipe
from .run_dir import RunDir

_KEY = "MODEL_OR_RUN_DIR"


def _source(path: Path) -> tuple[Path, RunDir | None]:
    """The model directory to convert, and the run it belongs to (for a run directory)."""
    run = RunDir(path)
    if (run.best / "config.json").is_file():
        return run.best, run
    if is_onnx_dir(path):
        raise ConfigError(f"{_KEY}: {path} is already an ONNX directory; quantize the PyTorch "
                          "model it was made from")
    if (path / "config.json").is_file():
        return path, None
    raise FileNotFoundError(f"{path}: neither a run directory (no best/config.json) nor a "
                            "saved classifier (no config.json)")


def _default_seq_len() -> int:
    """Latency length without eval data: ``data.max_length``'s default, what runs use."""
    from .data.config import DataConfig

    return next(f.default for f in dataclasses.fields(DataConfig) if f.name == "max_length")


def _measure(ref: str, name: str, data: str | None, latency_repeats: int) -> dict[str, Any]:
    """One row of the card's results table: the model at ``ref``, on ``data`` if given."""
    if data is None:
        model, _, resolved = load_evaluable(ref)
        result = model_costs(model, resolved, seq_len=_default_seq_len(),
                             latency_repeats=latency_repeats)
        metrics: dict[str, Any] = {}
    else:
        result = evaluate_model(ref, data, latency_repeats=latency_repeats)
        metrics = result["metrics"]
    return {"model": name, "runtime": result["runtime"], "accuracy": metrics.get("accuracy"),
            "f1": metrics.get("f1"), "params": result["params"], "size_mb": result["size_mb"],
            "latency_ms_b1": result["latency_ms"]["1"],
            "latency_ms_b32": result["latency_ms"]["32"], "seq_len": result["seq_len"],
            "threads": torch.get_num_threads()}


def _recorded_heads(record: Any) -> set[tuple[int, int]]:
    """``(block, head)`` of every head ``textdistill prune`` recorded as zeroed, in the
    last prune and the earlier ones it keeps under ``previous``."""
    heads: set[tuple[int, int]] = set()
    while isinstance(record, dict):
        zeroed = record.get("heads_zeroed")
        for block, indices in (zeroed.items() if isinstance(zeroed, dict) else ()):
            if str(block).isdigit() and isinstance(indices, list):
                heads.update((int(block), h) for h in indices if isinstance(h, int))
        record = record.get("previous")
    return heads


def _note_zeroed_heads(model: torch.nn.Module, log: Callable[[str], None]) -> None:
    """Say how many zeroed heads the export leaves out, and which heads the prune record
    names that the weights say are live: the weights decide, so a record carried into a
    model that does not match it costs speed, never correctness."""
    found = {(block, head) for block, heads in enumerate(zeroed_heads(model))
             for head in heads}
    if found:
        log(f"leaving {len(found)} zeroed attention heads out of the graph")
    live = sorted(_recorded_heads(getattr(model.config, RECORD_KEY, None)) - found)
    if live:
        shown = ", ".join(f"block {block} head {head}" for block, head in live[:4])
        log(f"note: config.json's {RECORD_KEY} names {len(live)} zeroed heads whose weights "
            f"are not zero ({shown}{', ...' if len(live) > 4 else ''}); the graph keeps them")


def quantize_model(source: str | os.PathLike, out_dir: str | os.PathLike, *,
                   method: str = "onnx-int8", data: str | None = None,
                   overwrite: bool = False, latency_repeats: int = 10,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write ``source`` as an ONNX Runtime directory ``out_dir`` with a measured card.

    Args:
        source: a run directory (its ``best/`` is converted, its ``results.json`` and
            ``recipe.yaml`` fill the card) or a saved Hugging Face classifier directory.
        out_dir: the directory to create.
        method: one of :data:`METHODS`.
        data: the eval data for accuracy (``sst2``, a recipe or a data file, as
            ``textdistill evaluate --data``); default: a run directory's own recipe, and
            no accuracy for a model directory.
        overwrite: replace a non-empty ``out_dir``.
        latency_repeats: timed passes at batch size 32 (3x at batch size 1).
        log: progress lines.

    Returns:
        ``{"path", "method", "data", "rows"}``: ``rows`` are the card's results, the
        PyTorch source first.

    Raises:
        MissingExtraError: onnx or onnxruntime is not installed.
        ConfigError: an unknown method, an ONNX directory as source, bad eval data.
        FileExistsError: see :func:`~textdistill.export.check_target`.
        FileNotFoundError: ``source`` is neither a run nor a model directory.
    """
    if method not in METHODS:
        raise ConfigError(f"--method: {method!r} is not one of {list(METHODS)}")
    require_deploy_extra(f"textdistill quantize --method {method}")
    target = Path(out_dir)
    # Before the minutes of export and measurement, not after.
    check_target(target, overwrite=overwrite)
    model_dir, run = _source(Path(source))
    if data is None and run is not None and run.recipe.is_file():
        data = str(run.recipe)
    if data is not None:
        data_config_for(data)  # a wrong spec fails here, not after the export
    model = load_classifier(str(model_dir.absolute()), _KEY)
    tokenizer = load_tokenizer(str(model_dir.absolute()), _KEY)
    card_inputs: dict[str, Any] = (run_card_inputs(run) if run is not None else
                                   {"teacher_name": None, "dataset_name": None,
                                    "distill_config": {}})
    rows: list[dict[str, Any]] = []

    def write(staging: Path) -> None:
        log(f"exporting {model_dir} to ONNX ({method})")
        _note_zeroed_heads(model, log)
        if method == "onnx-int8":
            with tempfile.TemporaryDirectory(prefix="textdistill-onnx-") as scratch:
                float_graph = export_onnx(model, Path(scratch) / ONNX_FILE)
                quantize_onnx_int8(float_graph, staging / ONNX_FILE)
        else:
            export_onnx(model, staging / ONNX_FILE)
        model.config.save_pretrained(staging)
        fix_label_maps(staging / "config.json")
        tokenizer.save_pretrained(staging)
        log("measuring the PyTorch model and the ONNX one"
            + (f" on {data}" if data else " (latency only: no eval data)"))
        rows.append(_measure(str(model_dir.absolute()), "pytorch (source)", data,
                             latency_repeats))
        rows.append(_measure(str(staging), f"{method} (this model)", data, latency_repeats))
        metrics = {k: rows[-1][k] for k in ("accuracy", "f1") if rows[-1][k] is not None}
        # The run's eval summary describes the run's rows, not these.
        card = build_model_card(model_name=target.name, **{
            **card_inputs, "metrics": metrics, "results_table": rows,
            "onnx_graph": METHODS[method], "eval_summary": None})
        card.save(staging / "README.md")

    publish_directory(target, write, overwrite=overwrite)
    return {"path": str(target), "method": method, "data": data, "rows": rows}


# ------------------------------------------------------------------- a recipe's run


def check_run_quantize(recipe: Recipe) -> Path | None:
    """Whether ``output.quantize`` can run once training is over, checked before it
    starts: the deploy extra is installed and ``<output.dir>/onnx`` is not a symbolic link
    or a file. Returns that directory (``None`` without ``output.quantize``).

    Raises:
        MissingExtraError: onnx or onnxruntime is missing (the one-line install hint).
        FileExistsError: see :func:`~textdistill.export.check_target`.
    """
    method = recipe.output.quantize
    if method is None:
        return None
    require_deploy_extra(f"output.quantize: {method}")
    target = RunDir(recipe.output_dir).onnx
    # The run owns onnx/ as it owns best/: a resumed or repeated run replaces it.
    check_target(target, overwrite=True)
    return target


def quantize_run(recipe: Recipe, log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """``output.quantize``: the finished run's ``best/`` as an ONNX Runtime directory in
    ``<output.dir>/onnx``, measured with ``best/`` on the recipe's eval split (all of it,
    as ``textdistill quantize`` measures). Reads the run's ``results.json`` for the card.

    Returns:
        ``results.json``'s ``onnx`` entry: ``path``, ``method``, ``data``, ``accuracy``,
        ``f1``, ``latency_ms`` (``"1"``, ``"32"``), ``seq_len``, ``size_mb``, and
        ``pytorch``: ``best/``'s ``accuracy``, ``latency_ms`` and ``size_mb`` measured
        alongside; ``None`` without ``output.quantize``.
    """
    target = check_run_quantize(recipe)
    if target is None:
        return None
    run = RunDir(recipe.output_dir)
    out = quantize_model(run.root, target, method=recipe.output.quantize,
                         data=str(run.recipe), overwrite=True, log=log)
    source, onnx = out["rows"]

    def measured(row: dict[str, Any]) -> dict[str, Any]:
        return {"accuracy": row["accuracy"], "f1": row["f1"], "size_mb": row["size_mb"],
                "latency_ms": {"1": row["latency_ms_b1"], "32": row["latency_ms_b32"]}}

    return {"path": out["path"], "method": out["method"], "data": out["data"],
            **measured(onnx), "seq_len": onnx["seq_len"], "pytorch": measured(source)}


__all__ = ["METHODS", "check_run_quantize", "quantize_model", "quantize_run"]
