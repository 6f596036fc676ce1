"""CPU latency of the benchmark's architectures (it does not depend on the weights)."""

from __future__ import annotations

import statistics
from pathlib import Path

from . import recipes

SEQ_LEN = recipes.MAX_LENGTH
BATCH_SIZES = (1, 32)


def latencies(teacher_dir: Path, smoke: bool) -> dict[str, dict]:
    """Per architecture (teacher, 3-layer, 2-layer student): parameters, threads, rounds,
    and latency (ms) and throughput (samples/s) at each batch size.

    The models alternate in rounds, so that drift in the machine's speed hits every model
    alike; each figure is the median of the per-round medians.
    """
    from ..build import load_classifier
    from ..models.student import student_from_teacher

    teacher = load_classifier(str(teacher_dir), "teacher")
    return alternating({"teacher": teacher,
                        "3-layer": student_from_teacher(teacher, recipes.THREE_LAYERS),
                        "2-layer": student_from_teacher(teacher, recipes.TWO_LAYERS)}, smoke)


def alternating(models: dict, smoke: bool) -> dict[str, dict]:
    """Per model: parameters, threads, rounds, layers, and latency (ms) and throughput
    (samples/s) at each batch size, measured in alternating rounds (see :func:`latencies`)."""
    import torch

    from ..speed import count_parameters, measure_latency

    rounds, repeats = (1, {1: 3, 32: 2}) if smoke else (5, {1: 12, 32: 4})
    timings: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for name, model in models.items():
            for batch in BATCH_SIZES:
                timings.setdefault((name, batch), []).append(measure_latency(
                    model, batch_size=batch, seq_len=SEQ_LEN, warmup=2,
                    repeats=repeats[batch])["latency_ms"])
    out = {}
    for name, model in models.items():
        out[name] = {"params": count_parameters(model), "threads": torch.get_num_threads(),
                     "rounds": rounds, "layers": model.config.num_hidden_layers}
        for batch in BATCH_SIZES:
            ms = statistics.median(timings[(name, batch)])
            out[name][f"latency_ms_b{batch}"] = ms
            out[name][f"samples_per_second_b{batch}"] = batch * 1000.0 / ms
    return out
