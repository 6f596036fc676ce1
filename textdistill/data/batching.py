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

**Teachers with their own tokenizer.** A teacher that reads the text through another
tokenizer than the student's gets its own token columns, ``t{i}_input_ids``,
``t{i}_attention_mask`` (and ``t{i}_token_type_ids``) for teacher ``i``
(:func:`teacher_column`). :func:`pad_batch` pads them with that teacher's pad id, to
their own longest sequence, and :func:`teacher_batch` turns a padded batch into the view
teacher ``i``'s forward reads. The batch plan keeps following the student's
``input_ids`` lengths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# The token columns of a tokenized example, the student's under these names and a
# teacher's own under teacher_column(i, name).
TOKEN_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
# Keys the collator pads besides input_ids (which use the tokenizer's pad id).
_PADDED_KEYS = {"attention_mask": 0, "token_type_ids": 0}
# Per-example scalars carried through as tensors (idx keys the teacher cache).
_SCALAR_KEYS = ("labels", "idx")
_TEACHER_COLUMN = re.compile(r"t(\d+)_(input_ids|attention_mask|token_type_ids)")


def teacher_column(index: int, name: str) -> str:
    """The column holding token column ``name`` as teacher ``index`` reads it
    (``teacher_column(1, "input_ids") == "t1_input_ids"``)."""
    return f"{teacher_prefix(index)}{name}"


def teacher_prefix(index: int) -> str:
    """The prefix of teacher ``index``'s own token columns (``"t1_"``)."""
    return f"t{index}_"


def teacher_column_index(column: str) -> int | None:
    """The teacher whose own token column ``column`` is, or ``None`` for any other."""
    found = _TEACHER_COLUMN.fullmatch(column)
    return int(found.group(1)) if found else None


def _pad_group(features: Mapping[str, Sequence[Any]], prefix: str, pad_token_id: int,
               pad_to: int | None) -> dict[str, torch.Tensor]:
    """The token columns named ``prefix + name``, padded into (B, T) tensors."""
    input_ids = features[prefix + "input_ids"]
    longest = max(len(ids) for ids in input_ids)
    length = longest if pad_to is None else max(pad_to, longest)
    batch_size = len(input_ids)

    batch: dict[str, torch.Tensor] = {}
    ids = torch.full((batch_size, length), pad_token_id, dtype=torch.long)
    for row, seq in enumerate(input_ids):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    batch[prefix + "input_ids"] = ids
    if prefix + "attention_mask" not in features:
        mask = torch.zeros((batch_size, length), dtype=torch.long)
        for row, seq in enumerate(input_ids):
            mask[row, : len(seq)] = 1
        batch[prefix + "attention_mask"] = mask
    for key, pad_value in _PADDED_KEYS.items():
        if prefix + key not in features:
            continue
        out = torch.full((batch_size, length), pad_value, dtype=torch.long)
        for row, seq in enumerate(features[prefix + key]):
            out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        batch[prefix + key] = out
    return batch


def pad_batch(
    features: Mapping[str, Sequence[Any]],
    pad_token_id: int,
    pad_to: int | None = None,
    *,
    teacher_pad_ids: Mapping[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a column-major batch of tokenized examples into tensors.

    Args:
        features: ``{"input_ids": [[...], ...], "attention_mask": [[...]], "labels": [...],
            "idx": [...]}`` as returned by ``datasets.Dataset.__getitem__(list)``, plus
            ``t{i}_input_ids`` ... for teachers with their own tokenizer; keys other than
            the token columns, ``labels`` and ``idx`` are dropped.
        pad_token_id: id used to pad ``input_ids``.
        pad_to: pad to this length (``max_length`` padding); ``None`` pads to the
            longest sequence of the batch (each teacher's columns to their own longest).
        teacher_pad_ids: ``{teacher index: pad id}`` of the teachers whose own token
            columns the batch carries.

    Returns:
        ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present):
        (B, T) long tensors, the same for each teacher's ``t{i}_*`` columns (B, T_i);
        ``labels`` and ``idx``: (B,) long tensors when present.

    Raises:
        ValueError: the batch has a teacher's token columns but ``teacher_pad_ids`` gives
            no pad id for that teacher.
    """
    teacher_pad_ids = dict(teacher_pad_ids or {})
    unknown = sorted({i for key in features if (i := teacher_column_index(key)) is not None}
                     - set(teacher_pad_ids))
    if unknown:
        raise ValueError(
            f"the data has token columns for teacher(s) {unknown} "
            f"({teacher_column(unknown[0], 'input_ids')}, ...) but no pad id for them: give "
            "the Distiller those teachers' tokenizers (teacher_tokenizers={index: tokenizer})")
    batch = _pad_group(features, "", pad_token_id, pad_to)
    for index, pad_id in sorted(teacher_pad_ids.items()):
        if teacher_column(index, "input_ids") in features:
            batch.update(_pad_group(features, teacher_prefix(index), pad_id, pad_to))
    for key in _SCALAR_KEYS:
        if key in features:
            batch[key] = torch.as_tensor(features[key], dtype=torch.long)
    return batch


def teacher_batch(batch: Mapping[str, Any], index: int) -> dict[str, Any]:
    """What teacher ``index``, which reads the text through its own tokenizer, is given:
    ``batch`` with its ``t{index}_*`` columns as ``input_ids``, ``attention_mask`` and
    ``token_type_ids``, and no other model's token columns.

    Raises:
        ValueError: ``batch`` has no ``t{index}_input_ids``.
    """
    if teacher_column(index, "input_ids") not in batch:
        raise ValueError(
            f"teacher {index} reads the text through its own tokenizer, but the data has no "
            f"{teacher_column(index, 'input_ids')} column: tokenize it for that teacher "
            "too (textdistill.data.add_teacher_columns)")
    view = {key: value for key, value in batch.items()
            if key not in TOKEN_COLUMNS and teacher_column_index(key) is None}
    for name in TOKEN_COLUMNS:
        if teacher_column(index, name) in batch:
            view[name] = batch[teacher_column(index, name)]
    return view


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


MODEL_INPUT_COLUMNS = (*TOKEN_COLUMNS, "labels")


def model_inputs(data: Any):
    """``data`` (a ``datasets.Dataset`` or a list of dicts) as a ``datasets.Dataset``
    holding only the columns the loop reads (``label`` is renamed ``labels``): the
    student's token columns, the teachers' own (``t{i}_*``) and ``labels``.

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
    extra = [c for c in data.column_names
             if c not in MODEL_INPUT_COLUMNS and teacher_column_index(c) is None]
    return data.remove_columns(extra) if extra else data

