"""One pass of inference over a dataset, sharded over processes, in dataset order.

Evaluation (:meth:`~textdistill.distiller.Distiller.predict`) and the teacher-logit cache
(:mod:`textdistill.teacher_cache`) both need every example's logits once, from one or
several models, on however many processes the run has. :func:`run_inference` is that
loop: each rank takes every ``num_processes``-th example, runs them longest first (so
dynamic padding wastes little), and the ranks' rows are gathered and put back in dataset
order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from .data.batching import pad_batch

Forward = Callable[[dict[str, torch.Tensor]], Sequence[torch.Tensor]]


@torch.no_grad()
def run_inference(
    dataset: Any,
    forward: Forward,
    accelerator: Any,
    *,
    batch_size: int,
    pad_token_id: int,
    pad_to: int | None = None,
    teacher_pad_ids: Mapping[int, int] | None = None,
    progress_bar: bool = False,
    description: str = "inference",
) -> torch.Tensor:
    """Every example's logits from every model ``forward`` runs, in dataset order.

    Args:
        dataset: tokenized examples, indexable by a list of positions and returning
            column-major features (a ``datasets.Dataset``): ``input_ids``, maybe
            ``attention_mask``, ``token_type_ids``, ``labels``.
        forward: padded batch (on the accelerator's device) -> one (B, C) logits tensor
            per model. It runs under the accelerator's autocast and ``torch.no_grad``.
        accelerator: the run's ``accelerate.Accelerator`` (device, rank, gathering).
        batch_size: examples per forward call on each process.
        pad_token_id: id that pads ``input_ids``.
        pad_to: pad every batch to this length; ``None`` pads to each batch's longest.
        teacher_pad_ids: pad ids of the teachers' own token columns (see
            :func:`~textdistill.data.batching.pad_batch`).
        progress_bar: show a bar (on the local main process only).
        description: the bar's label.

    Returns:
        (num_models, len(dataset), C) float32 on the CPU; ``[:, i]`` is example ``i``.

    Raises:
        ValueError: ``dataset`` is empty.
    """
    if len(dataset) == 0:
        raise ValueError("inference needs at least one example; the dataset is empty")
    rank, world = accelerator.process_index, accelerator.num_processes
    positions = list(range(rank, len(dataset), world))
    lengths = [len(ids) for ids in dataset[positions]["input_ids"]] if positions else []
    positions = [p for _, p in sorted(zip(lengths, positions), key=lambda x: -x[0])]

    rows: list[torch.Tensor] = []
    # leave=False: the bar is gone when the pass is, so one under a training bar (an
    # evaluation during train()) leaves no line per pass behind.
    bar = tqdm(total=len(positions), desc=description, unit="ex", leave=False,
               disable=not (progress_bar and accelerator.is_local_main_process))
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        batch = pad_batch(dataset[chunk], pad_token_id, pad_to, teacher_pad_ids=teacher_pad_ids)
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        with accelerator.autocast():
            per_model = forward(batch)
        # (B, num_models, C): examples first, so shards concatenate and gather on dim 0.
        rows.append(torch.stack([logits.float() for logits in per_model], dim=1))
        bar.update(len(chunk))
    bar.close()
    local = torch.cat(rows) if rows else None
    keys = torch.as_tensor(positions, dtype=torch.long, device=accelerator.device)
    if world > 1:
        local, keys = _gather(local, keys, accelerator)
    out = torch.empty(local.shape[1], len(dataset), local.shape[2])
    out[:, keys.cpu()] = local.permute(1, 0, 2).cpu()
    return out


def _gather(local: torch.Tensor | None, keys: torch.Tensor,
            accelerator: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All processes' rows (N, num_models, C) and their dataset positions (N,).

    Shards differ in size (and a process with no examples has no rows to take a shape
    from), so shapes are exchanged first and every shard is padded to the longest, with
    position -1 marking the padding rows, which are dropped after the gather.
    """
    world, device = accelerator.num_processes, accelerator.device
    num_models, num_labels = local.shape[1:] if local is not None else (0, 0)
    shape = torch.tensor([keys.numel(), num_models, num_labels], device=device)
    shapes = accelerator.gather(shape).view(world, 3)
    longest, num_models, num_labels = (int(n) for n in shapes.max(dim=0).values)
    padded = torch.zeros(longest, num_models, num_labels, device=device)
    padded_keys = torch.full((longest,), -1, dtype=torch.long, device=device)
    if local is not None:
        padded[: len(local)] = local
        padded_keys[: keys.numel()] = keys
    all_rows = accelerator.gather(padded)
    all_keys = accelerator.gather(padded_keys)
    valid = all_keys >= 0
    return all_rows[valid], all_keys[valid]


__all__ = ["Forward", "run_inference"]
