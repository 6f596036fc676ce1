"""The Accelerator a run trains with, and the optimizer it steps."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, ProjectConfiguration

from .config import DistillationConfig, TrainingConfig
from .run_dir import RunDir
from .schema import plain_data


def _multi_process_cpu() -> bool:
    """Whether this is a multi-process launch on a machine without a GPU.

    Accelerate picks the gloo (MULTI_CPU) backend only when told ``cpu=True``; without
    it, ``torchrun --nproc_per_node 2`` on CPU silently gives N independent
    single-process runs.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size > 1 and not torch.cuda.is_available()


def make_accelerator(cfg: TrainingConfig) -> Accelerator:
    """An Accelerator for ``cfg``.

    Accelerate keeps one process-wide state and refuses a second Accelerator with another
    ``mixed_precision`` ("restart your runtime"). In a single process nothing depends on
    the old state, so a notebook that switches precision between runs gets a fresh one.
    """
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != cfg.precision and \
            shared.get("distributed_type") in (None, DistributedType.NO):
        AcceleratorState._reset_state()
    return Accelerator(
        cpu=_multi_process_cpu(),
        mixed_precision=cfg.precision,
        log_with=cfg.report_to or None,
        project_config=ProjectConfiguration(
            project_dir=cfg.output_dir, logging_dir=str(RunDir(cfg.output_dir).logs)),
    )


def make_adamw(param_groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the device has one.

    The default (single-tensor) AdamW on CPU spends about 1.7 s per step on a 17M-parameter
    student, more than its forward and backward together; the fused kernel does the same
    update (equal to ~1e-7) about 8x faster, on CPU as on GPU.
    """
    try:
        return torch.optim.AdamW(param_groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(param_groups, lr=lr)


def make_optimizer(student: torch.nn.Module, projections: torch.nn.Module,
                   cfg: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the student and the projections (their own group and learning rate).

    Biases and LayerNorm weights (1-D parameters) are not decayed.
    """
    decay, no_decay = [], []
    for param in student.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    projection_params = list(projections.parameters())
    if projection_params:
        groups.append({"params": projection_params, "weight_decay": cfg.weight_decay,
                       "lr": cfg.projection_lr or cfg.lr})
    return make_adamw(groups, lr=cfg.lr)


def total_steps(cfg: TrainingConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: ``max_steps``, else ``epochs`` worth."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * steps_per_epoch))


def tracker_config(training: TrainingConfig, distill: DistillationConfig,
                   num_teachers: int) -> dict[str, Any]:
    """Scalar hyper-parameters for trackers (TensorBoard's hparams take no lists)."""
    flat: dict[str, Any] = {}
    for prefix, config in (("train", training), ("distill", distill)):
        for key, value in plain_data(config).items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{prefix}.{key}"] = value
            elif value is not None:
                flat[f"{prefix}.{key}"] = str(value)
    flat["num_teachers"] = num_teachers
    return flat


__all__ = ["make_accelerator", "make_adamw", "make_optimizer", "total_steps", "tracker_config"]
