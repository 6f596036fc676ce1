"""Batches: which examples go together (the plan) and how they become tensors (padding).

The training order is a pure function of ``(seed, epoch)``. The loop needs that for two
promises:

* **exact resume**: a run restarted at step ``k`` rebuilds the epoch's plan and starts at
  its ``k``-th step, with no data loaded to skip ahead and no RNG consumed;
* **the same global batches on any number of processes**: the plan is made of *global*
  batches (``batch_size * num_processes`` examples) and each rank takes its slice, so a
  2-process run sees exactly the batches of a 1-process run with twice the batch size.

Padding is dynamic by default: each batch is padded to its own longest sequence, and
length-grouped sampling puts sequences of similar length together so little is padded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Keys the collator pads, with their padding value (input_ids use the tokenizer's pad id).
_PADDED_KEYS = {"attention_mask": 0, "token_type_ids": 0}
# Per-example scalars carried through as tensors (idx keys the teacher cache).
_SCALAR_KEYS = ("labels", "idx")


def pad_batch(
    features: Mapping[str, Sequence[Any]],
    pad_token_id: int,
    pad_to: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a column-major batch of tokenized examples into tensors.

    Args:
        features: ``{"input_ids": [[...], ...], "attention_mask": [[...]], "labels": [...],
            "idx": [...]}`` as returned by ``datasets.Dataset.__getitem__(list)``; keys
            other than the token columns, ``labels`` and ``idx`` are dropped.
        pad_token_id: id used to pad ``input_ids``.
        pad_to: pad to this length (``max_length`` padding); ``None`` pads to the
            longest sequence of the batch.

    Returns:
        ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present):
        (B, T) long tensors; ``labels`` and ``idx``: (B,) long tensors when present.
    """
    input_ids = features["input_ids"]
    longest = max(len(ids) for ids in input_ids)
    length = longest if pad_to is None else max(pad_to, longest)
    batch_size = len(input_ids)

    batch: dict[str, torch.Tensor] = {}
    ids = torch.full((batch_size, length), pad_token_id, dtype=torch.long)
    for row, seq in enumerate(input_ids):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    batch["input_ids"] = ids
    if "attention_mask" not in features:
        mask = torch.zeros((batch_size, length), dtype=torch.long)
        for row, seq in enumerate(input_ids):
            mask[row, : len(seq)] = 1
        batch["attention_mask"] = mask
    for key, pad_value in _PADDED_KEYS.items():
        if key not in features:
            continue
        out = torch.full((batch_size, length), pad_value, dtype=torch.long)
        for row, seq in enumerate(features[key]):
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        batch[key] = out
    for key in _SCALAR_KEYS:
        if key in features:
            batch[key] = torch.as_tensor(features[key], dtype=torch.long)
    return batch


@dataclass(frozen=True)
class BatchPlan:
    """The deterministic order of global batches for every epoch.

    Attributes:
        lengths: token count of each example (drives length grouping).
        batch_size: per-process batch size.
        num_processes: world size; a global batch holds ``batch_size * num_processes``.
        seed: base seed; epoch ``e`` is shuffled with ``seed + e``.
        group_by_length: sort examples by length inside shuffled mega-batches of
            ``mega_batch_factor`` global batches, then shuffle the batch order.
        mega_batch_factor: how many global batches are sorted together.
    """

    lengths: tuple[int, ...]
    batch_size: int
    num_processes: int = 1
    seed: int = 42
    group_by_length: bool = True
    mega_batch_factor: int = 50

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.num_processes

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.lengths) // self.global_batch_size)

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Example positions of every global batch of ``epoch``, in training order."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.global_batch_size
        if self.group_by_length:
            mega = size * self.mega_batch_factor
            order = [
                i
                for start in range(0, len(order), mega)
                for i in sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            ]
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        if self.group_by_length and len(batches) > 1:
            # Sorted mega-batches would otherwise run long-to-short inside each mega-batch.
            perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in perm]
        # Every rank needs an equal share of the last batch, so it is topped up with the
        # epoch's first examples (as DistributedSampler does). One process needs nothing.
        last = batches[-1]
        short = -len(last) % self.num_processes
        if short:
            batches[-1] = last + order[:short]
        return batches

    def local_batches(self, epoch: int, rank: int) -> list[list[int]]:
        """This rank's slice of each global batch of ``epoch``."""
        local = []
        for batch in self.global_batches(epoch):
            share = len(batch) // self.num_processes
            local.append(batch[rank * share : (rank + 1) * share])
        return local


MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def model_inputs(data: Any):
    """``data`` (a ``datasets.Dataset`` or a list of dicts) as a ``datasets.Dataset``
    holding only the columns the loop reads (``label`` is renamed ``labels``).

    Raises:
        ValueError: the data is not tokenized (no ``input_ids``).
    """
    import datasets

    if not isinstance(data, datasets.Dataset):
        data = datasets.Dataset.from_list(list(data))
    if "labels" not in data.column_names and "label" in data.column_names:
        data = data.rename_column("label", "labels")
    if "input_ids" not in data.column_names:
        raise ValueError("training data must be tokenized: it has no 'input_ids' column "
                         f"(columns: {data.column_names})")
    extra = [c for c in data.column_names if c not in MODEL_INPUT_COLUMNS]
    return data.remove_columns(extra) if extra else data

