"""Static (calibrated) int8 of an ONNX classifier directory: the compression section's
``student_onnx_int8_static`` row. Bench code: the library does not offer it.

``textdistill quantize`` offers dynamic int8 (``onnx-int8``: activations quantized per
batch at run time, no data needed). Static quantization fixes each activation's scale
beforehand from a calibration set; issue 16 asked for it where it is faster, so the
section measures both on the same CPU and ``docs/deploy.md`` says which the library
chose and why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

METHOD = "onnx-int8-static"   # its notes.json ``method``
# 256 sentences: a throwaway run on the quickstart student calibrated on that many reached
# the dynamic row's SST-2 accuracy (0.8624 both; float32 0.8601), and each one costs a
# forward pass with every MatMul input recorded.
CALIBRATION_SENTENCES = 256
CALIBRATION_BATCH = 32
# Percentile (each activation's range clipped at the 99.999th percentile of its
# histogram), not MinMax: in that run MinMax reached 0.8544, a few outliers stretching
# the int8 range over the bulk of the values.
CALIBRATION_METHOD = "Percentile"
# The MatMul/Gemm layers only: with every op type quantized (MinMax) that run fell to 0.7695.
QUANTIZED_OPS = ("MatMul", "Gemm")
# onnxruntime.quantization's names, as in that run: QDQ (the float graph with
# Quantize/Dequantize pairs, which ONNX Runtime fuses into int8 kernels when it loads it),
# unsigned activations and signed weights.
FORMAT, ACTIVATIONS, WEIGHTS = "QDQ", "QUInt8", "QInt8"
# What made a graph, for notes.json: a change to any of them makes it again.
RECIPE = {"method": CALIBRATION_METHOD, "sentences": CALIBRATION_SENTENCES,
          "batch_size": CALIBRATION_BATCH, "ops": list(QUANTIZED_OPS),
          "format": FORMAT, "activations": ACTIVATIONS, "weights": WEIGHTS}
_README = """\
# {name}

Made by the benchmark's compression section (`textdistill/bench/static_int8.py`), not by
`textdistill quantize`, which offers dynamic int8 only (see `docs/deploy.md`).

`model.onnx` is ONNX Runtime's static quantization, in {format} format, of the float32
graph in `{source}`: {weights} weights and {activations} activations for the {ops} layers,
each activation's scale fixed by {method} calibration on {sentences} sentences of the
train split of `{spec}`. `config.json` and the tokenizer are the float32 directory's.
"""


def _calibration_feeds(source: Path, spec: str, input_names: list[str]) -> list[dict[str, Any]]:
    """The calibration batches, as ONNX Runtime feeds of the graph's inputs."""
    from transformers import AutoConfig

    from ..build import load_tokenizer
    from ..data.batching import pad_batch
    from ..evaluation import labelled_data

    tokenizer = load_tokenizer(source, "calibration model")
    data, _, _ = labelled_data(AutoConfig.from_pretrained(source), tokenizer, spec,
                               max_samples=CALIBRATION_SENTENCES, split="train")
    # The histogram calibrators (Percentile, Entropy) stack every batch's values of a
    # tensor, so all batches must have one shape: padded to the longest sentence, and a
    # short last batch left out (none is with CALIBRATION_SENTENCES of a larger split).
    longest = max(len(ids) for ids in data["input_ids"])
    size = min(CALIBRATION_BATCH, len(data))
    feeds = []
    for start in range(0, len(data) - size + 1, size):
        batch = pad_batch(data[start:start + size], tokenizer.pad_token_id, pad_to=longest)
        feeds.append({name: batch[name].long().numpy() for name in input_names})
    return feeds


def quantize_static_qdq(source: Path, out_dir: Path, spec: str) -> Path:
    """Write ``out_dir``: the float32 ONNX directory ``source`` (``textdistill quantize
    --method onnx``'s) with its graph statically quantized (:data:`RECIPE`), calibrated
    on :data:`CALIBRATION_SENTENCES` sentences of ``spec``'s train split (a recipe,
    ``sst2`` or a data file; drawn after a shuffle seeded with its data seed, as
    ``max_train_samples`` draws them); written atomically, replacing ``out_dir``.

    Raises:
        MissingExtraError: onnx or onnxruntime is not installed.
        ConfigError, FileNotFoundError: bad calibration data.
    """
    from ..export import publish_directory
    from ..onnx_model import ONNX_FILE, require_deploy_extra, without_preprocessing_plea

    require_deploy_extra("static int8 quantization")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    graph = source / ONNX_FILE
    inputs = onnx.load(str(graph), load_external_data=False).graph.input
    input_names = [node.name for node in inputs]
    feeds = _calibration_feeds(source, spec, input_names)
    sentences = sum(len(feed[input_names[0]]) for feed in feeds)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, Any]] = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    def write(staging: Path) -> None:
        # The float32 directory's config and tokenizer; not its graph, nor its card,
        # which describes the float32 graph.
        for path in source.iterdir():
            if path.is_file() and not path.name.startswith("model") and path.name != "README.md":
                shutil.copy(path, staging / path.name)
        with without_preprocessing_plea():
            quantize_static(str(graph), str(staging / ONNX_FILE), Batches(),
                            quant_format=QuantFormat[FORMAT],
                            activation_type=QuantType[ACTIVATIONS],
                            weight_type=QuantType[WEIGHTS],
                            op_types_to_quantize=list(QUANTIZED_OPS),
                            calibrate_method=CalibrationMethod[CALIBRATION_METHOD])
        (staging / "README.md").write_text(_README.format(
            name=out_dir.name, source=source, format=FORMAT, weights=WEIGHTS,
            activations=ACTIVATIONS, ops="/".join(QUANTIZED_OPS), method=CALIBRATION_METHOD,
            sentences=sentences, spec=spec), encoding="utf-8")

    return publish_directory(out_dir, write, overwrite=True)
