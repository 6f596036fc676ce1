"""A classifier as an ONNX graph: export from PyTorch, int8 quantization, and running it.

A deployable directory (written by ``textdistill quantize``) holds ``model.onnx`` - the
one graph it serves, float32 or int8 - beside the Hugging Face ``config.json`` (class
names) and the tokenizer. :class:`OnnxClassifier` runs such a directory through an ONNX
Runtime ``InferenceSession`` behind the ``forward`` of a Hugging Face classifier, so the
evaluation loop and :func:`~textdistill.speed.latency_profile` measure it exactly as they
measure the PyTorch model.

onnx and onnxruntime are the ``deploy`` extra: they are imported here only inside
functions, after :func:`require_deploy_extra` has said what to install when they are
missing, so the core package never needs them.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import MissingExtraError

ONNX_FILE = "model.onnx"
OPSET = 17
# The inputs a BERT-family classifier may take, in the graph's input order.
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_DEPLOY_PACKAGES = ("onnx", "onnxruntime")
# Method name -> what the card says the graph is; the names `textdistill quantize
# --method` and a recipe's output.quantize accept.
METHODS = {
    "onnx": f"`{ONNX_FILE}` is the float32 graph exported from PyTorch (opset {OPSET}), "
            "made by `textdistill quantize --method onnx`",
    "onnx-int8": f"`{ONNX_FILE}` has int8 weights (ONNX Runtime dynamic quantization, QInt8 "
                 "weights, activations quantized per batch at run time) of the float32 graph "
                 f"exported from PyTorch (opset {OPSET}), made by "
                 "`textdistill quantize --method onnx-int8`",
}


def require_deploy_extra(purpose: str) -> None:
    """Import onnx and onnxruntime, or say in one line what to install.

    Raises:
        MissingExtraError: either package is missing (``purpose`` starts the message).
    """
    missing = []
    for name in _DEPLOY_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"{purpose} needs {' and '.join(missing)}: "
                                "pip install 'textdistill[deploy]'")


def is_onnx_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory that :class:`OnnxClassifier` loads."""
    return (Path(path) / ONNX_FILE).is_file()


def _graph_inputs(model: torch.nn.Module) -> list[str]:
    accepted = inspect.signature(type(model).forward).parameters
    return [name for name in _INPUT_NAMES if name in accepted]


def export_onnx(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Export a Hugging Face sequence classifier to an ONNX graph at ``path``.

    The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
    model does) as int64 (batch, sequence) with both axes dynamic, and returns
    ``logits`` (batch, num_labels). The model is switched to eager attention: sdpa's
    fast paths are data-dependent branches a trace would freeze. Attention heads whose
    weights are zero (``textdistill prune`` stores removed heads so) are left out of the
    graph, which PyTorch's one-head-count configs cannot do (see
    :func:`~textdistill.pruning.slice_zeroed_heads`); they are cut from a copy, and
    ``model`` keeps them.
    """
    from .models.adaptors import ensure_eager_attention
    from .pruning import slice_zeroed_heads

    require_deploy_extra("ONNX export")
    path = Path(path)
    ensure_eager_attention(model)
    model.eval()
    model = slice_zeroed_heads(model)
    names = _graph_inputs(model)
    # The example has a padded row, so no "mask is all ones" shortcut can be traced in.
    vocab_size = int(getattr(model.config, "vocab_size", 2))
    input_ids = torch.arange(16).remainder(vocab_size).view(2, 8)
    attention_mask = torch.ones(2, 8, dtype=torch.long)
    attention_mask[1, 5:] = 0
    example = {"input_ids": input_ids, "attention_mask": attention_mask,
               "token_type_ids": torch.zeros(2, 8, dtype=torch.long)}
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with warnings.catch_warnings():
        # Known and harmless, each checked by the export parity test (other batch sizes
        # and lengths, with padding): transformers' mask code compares the mask's length
        # with the key length (always equal in an encoder) and indexes the mask with
        # aranges (never negative), which the tracer and opset-17 index warn about; and
        # the TorchScript exporter is deprecated, which is known (see the comment below).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                module=r"transformers\.masking_utils")
        warnings.filterwarnings("ignore", message=".*advanced indexing.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        with torch.no_grad():
            # The TorchScript exporter (dynamo=False), not torch.export's: with torch 2.13
            # and transformers 5.24 both give the PyTorch logits to ~1e-8, but dynamo=True
            # needs two more packages (onnxscript, onnx-ir), has no opset 17 (it writes 18
            # and down-converts), and takes ~3 s instead of ~0.3 s even for a tiny model.
            torch.onnx.export(
                model, (), str(path), kwargs={name: example[name] for name in names},
                input_names=names, output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}},
                opset_version=OPSET, dynamo=False)
    return path


def quantize_onnx_int8(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """ONNX Runtime dynamic quantization of ``source``: int8 weights (``QInt8``) for the
    MatMul layers and the embedding lookups (Gather), activations quantized per batch at
    run time; needs no calibration data."""
    require_deploy_extra("int8 quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with without_preprocessing_plea():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return Path(target)


@contextlib.contextmanager
def without_preprocessing_plea() -> Iterator[None]:
    """Drop the plea ONNX Runtime's quantizers log (on the root logger) to run its
    pre-processing first: that step's symbolic shape inference fails on transformers'
    graphs ("Incomplete symbolic shape inference"), and the int8 parity tests hold
    without it."""
    root = logging.getLogger()
    plea = _DropMessage("pre-processing before quantization")
    root.addFilter(plea)
    try:
        yield
    finally:
        root.removeFilter(plea)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_parameter_count(path: str | os.PathLike) -> int:
    """Elements in the graph's initializers: its weights (an int8 weight counts once,
    plus a scale and zero point per tensor)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(math.prod(tensor.dims) for tensor in graph.initializer)


class OnnxClassifier(torch.nn.Module):
    """An ONNX model directory that runs like a Hugging Face classifier.

    ``forward`` takes the same tensors as the PyTorch model (on any device) and returns
    an output with ``.logits`` (float32, on the CPU); ``config`` is the directory's
    ``config.json``. Holds no torch parameters: see :attr:`parameter_count`.
    """

    def __init__(self, directory: str | os.PathLike, *, threads: int | None = None):
        """Load ``directory/model.onnx`` on ONNX Runtime's CPU provider.

        Args:
            threads: intra-op threads; default ``torch.get_num_threads()``, so a latency
                compares with the PyTorch model's under the same budget.

        Raises:
            MissingExtraError: onnx or onnxruntime is not installed.
            FileNotFoundError: no ``model.onnx`` in ``directory``.
        """
        super().__init__()
        from transformers import AutoConfig

        require_deploy_extra(f"running the ONNX model in {directory}")
        self.directory = Path(directory)
        graph = self.directory / ONNX_FILE
        if not graph.is_file():
            raise FileNotFoundError(f"{self.directory} has no {ONNX_FILE}")
        self.config = AutoConfig.from_pretrained(self.directory)
        self.session = _session(graph, threads or torch.get_num_threads())
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.parameter_count = graph_parameter_count(graph)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: Any) -> Any:
        """Logits of a batch. Options such as ``return_dict`` or ``output_attentions``
        (which the evaluation loop passes) are accepted and ignored: the graph returns
        logits only."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": token_type_ids}
        if given["attention_mask"] is None:
            given["attention_mask"] = torch.ones_like(input_ids)
        if given["token_type_ids"] is None:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feed = {name: given[name].detach().cpu().long().numpy() for name in self.input_names}
        logits = self.session.run(["logits"], feed)[0]
        return SequenceClassifierOutput(logits=torch.from_numpy(logits).float())


__all__ = ["METHODS", "ONNX_FILE", "OPSET", "OnnxClassifier", "export_onnx",
           "graph_parameter_count", "is_onnx_dir", "quantize_onnx_int8", "require_deploy_extra",
           "without_preprocessing_plea"]
