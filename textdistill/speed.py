"""Cost measurements: parameter counts, inference latency and peak memory.

The run reports of :mod:`textdistill.runner` (``results.json`` of ``finetune`` and
``distill``, the ``evaluate`` command, the model card's results table) and the benchmark
scripts use them to put the student's size and speed next to the teacher's.
"""

from __future__ import annotations

import inspect
import math
import statistics
import sys
import time
from typing import Any

import torch

from .models.adaptors import unwrap_model


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``; tied weights count once.

    Args:
        model: any ``nn.Module`` (wrappers with ``.module`` are fine).
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in unwrap_model(model).parameters()
               if p.requires_grad or not trainable_only)


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``numpy.percentile``'s default), ``q`` in [0, 100]."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously; without a sync the timer measures the launch only.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _checked_vocab_size(config: Any, vocab_size: int | None, seq_len: int) -> int:
    """``vocab_size``, else the model's; refuses a ``seq_len`` the model cannot embed."""
    if vocab_size is None:
        vocab_size = getattr(config, "vocab_size", None)
        if vocab_size is None:
            raise ValueError("model has no config.vocab_size; pass vocab_size=")
    max_positions = getattr(config, "max_position_embeddings", None)
    if isinstance(max_positions, int) and seq_len > max_positions:
        raise ValueError(f"seq_len={seq_len} exceeds the model's max_position_embeddings="
                         f"{max_positions}")
    return vocab_size


def _random_inputs(model: torch.nn.Module, batch_size: int, seq_len: int, vocab_size: int,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """Seeded random ids plus the mask and token types ``model.forward`` takes."""
    # A fixed seed makes every call time the same batch.
    generator = torch.Generator().manual_seed(0)
    inputs: dict[str, torch.Tensor] = {
        "input_ids": torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)}
    accepted = inspect.signature(model.forward).parameters
    if "attention_mask" in accepted:
        inputs["attention_mask"] = torch.ones(batch_size, seq_len, dtype=torch.long)
    if "token_type_ids" in accepted:
        inputs["token_type_ids"] = torch.zeros(batch_size, seq_len, dtype=torch.long)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def _time_forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                  device: torch.device, original_device: torch.device, *, warmup: int,
                  repeats: int) -> list[float]:
    """Seconds per timed forward pass on ``device``; ``model``'s train/eval modes and
    device are restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    moved = device != original_device
    timings: list[float] = []
    try:
        if moved:
            model.to(device)
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(**inputs)
            _sync(device)
            for _ in range(repeats):
                start = time.perf_counter()
                model(**inputs)
                _sync(device)
                timings.append(time.perf_counter() - start)
    finally:
        for module, training in modes.items():
            module.training = training
        if moved:
            model.to(original_device)
    return timings


def measure_latency(
    model: torch.nn.Module,
    *,
    batch_size: int,
    seq_len: int = 64,
    vocab_size: int | None = None,
    warmup: int = 3,
    repeats: int = 10,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Inference latency of a sequence classifier on random token ids.

    Every batch is ``(batch_size, seq_len)`` random ids with an all-ones attention mask,
    plus all-zero ``token_type_ids`` when the model's ``forward`` takes them. The model
    runs in eval mode under ``torch.inference_mode``; its train/eval mode (per
    submodule) and its device are restored afterwards.

    Args:
        model: a Hugging Face ``*ForSequenceClassification`` model, or a wrapper of one
            with ``.module``.
        batch_size: rows per forward pass.
        seq_len: tokens per row (fixed: no padding).
        vocab_size: ids are drawn from ``[0, vocab_size)``; defaults to
            ``model.config.vocab_size``.
        warmup: untimed passes first (allocator, kernel selection, caches).
        repeats: timed passes.
        device: where to run; defaults to the device of the model's parameters. A model
            elsewhere is moved there for the measurement and moved back after.

    Returns:
        ``{"batch_size", "seq_len", "latency_ms" (median per batch), "latency_ms_p90",
        "samples_per_second" (batch_size / median latency)}``.
    """
    if batch_size < 1 or seq_len < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size, seq_len, repeats >= 1 and warmup >= 0; got "
                         f"batch_size={batch_size}, seq_len={seq_len}, repeats={repeats}, "
                         f"warmup={warmup}")
    inner = unwrap_model(model)
    vocab_size = _checked_vocab_size(getattr(inner, "config", None), vocab_size, seq_len)
    first = next(inner.parameters(), None)
    original_device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device) if device is not None else original_device
    inputs = _random_inputs(inner, batch_size, seq_len, vocab_size, device)
    timings = _time_forward(inner, inputs, device, original_device, warmup=warmup,
                            repeats=repeats)

    median = statistics.median(timings)
    return {"batch_size": batch_size, "seq_len": seq_len, "latency_ms": median * 1e3,
            "latency_ms_p90": _percentile(timings, 90) * 1e3,
            "samples_per_second": batch_size / max(median, 1e-12)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    try:
        import resource
    except ImportError:  # Windows has no ``resource``; psutil reports the peak working set.
        import psutil

        info = psutil.Process().memory_info()
        return float(getattr(info, "peak_wset", info.rss)) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


LATENCY_BATCH_SIZES = (1, 32)


def latency_profile(model: Any, seq_len: int, *, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Latency (ms, median) and throughput (samples/s) at batch sizes 1 and 32.

    Kept cheap (2 warm-up and ``repeats`` timed passes; 3x as many at batch size 1, whose
    passes are short and noisier): a guide, not a benchmark.
    """
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int):
        seq_len = min(seq_len, positions)
    timings = {b: measure_latency(model, batch_size=b, seq_len=seq_len, warmup=2,
                                  repeats=repeats * 3 if b == 1 else repeats)
               for b in LATENCY_BATCH_SIZES}
    return {"latency_ms": {str(b): t["latency_ms"] for b, t in timings.items()},
            "samples_per_second": {str(b): t["samples_per_second"] for b, t in timings.items()},
            "seq_len": seq_len}


