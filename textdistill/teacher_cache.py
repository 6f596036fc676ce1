"""Teacher-output caching: the teacher's logits for the train set, computed once.

Logit-only KD with a cache never runs the teacher's forward during training: the loop
looks each batch's logits up by example index. The cache lives next to the run
(``<output_dir>/teacher_cache/``) as one safetensors file per fingerprint, so a second
run over the same teacher(s) and data reuses it, and a changed teacher or dataset gets a
new file instead of stale logits.

Multi-process safety: every rank computes the logits of its own share of the examples,
the shares are gathered, and only the main process writes (to a temporary name, then an
atomic rename) while the others wait at a barrier before reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data.batching import pad_batch

CACHE_DIRNAME = "teacher_cache"


# The columns a teacher's forward reads (see data.batching.pad_batch): its logits are a
# function of these and the teacher alone.
TEACHER_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def data_fingerprint(dataset) -> str:
    """A hash of the token columns the teacher reads, in example order.

    ``datasets`` fingerprints a file-backed dataset by its files' paths and modification
    times, so a copied or re-downloaded dataset would miss a valid cache. Hashing the
    token ids themselves keeps the cache valid for the same inputs wherever they came
    from, and gives changed inputs a new file. Datasets without Arrow columns (plain
    indexables) fall back to their ``_fingerprint`` or their length.
    """
    import pyarrow.compute as pc

    columns = [c for c in TEACHER_INPUT_COLUMNS if c in getattr(dataset, "column_names", ())]
    if not columns or not hasattr(dataset, "with_format"):
        return getattr(dataset, "_fingerprint", "") or str(len(dataset))
    table = dataset.select_columns(columns).with_format("arrow")[:]
    digest = hashlib.sha256(str(table.num_rows).encode())
    for name in columns:
        column = table.column(name)
        digest.update(name.encode())
        # Lengths and flattened values, as int64: independent of chunking, slicing and
        # the integer width the tokenizer's map happened to store.
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        digest.update(lengths.astype("int64").tobytes())
        digest.update(values.astype("int64").tobytes())
    return digest.hexdigest()[:16]


def teacher_fingerprint(teachers: Sequence[torch.nn.Module], data_digest: str,
                        max_length: int) -> str:
    """A short hash of what the cached logits depend on.

    It covers each teacher's class, config and a cheap digest of its weights (sums of
    every parameter), ``data_digest`` (from :func:`data_fingerprint`) and the
    truncation length.
    """
    digest = hashlib.sha256()
    for teacher in teachers:
        model = getattr(teacher, "module", teacher)
        digest.update(type(model).__name__.encode())
        config = getattr(model, "config", None)
        if config is not None:
            digest.update(config.to_json_string(use_diff=False).encode())
        with torch.no_grad():
            for name, param in model.named_parameters():
                digest.update(name.encode())
                digest.update(f"{param.double().sum().item():.10e}".encode())
    digest.update(data_digest.encode())
    digest.update(str(max_length).encode())
    return digest.hexdigest()[:16]


class TeacherLogitCache:
    """Per-example teacher logits, shape (num_teachers, num_examples, num_labels).

    Build with :meth:`load_or_build`; read a batch's rows with :meth:`lookup`.
    """

    def __init__(self, logits: torch.Tensor, path: Path | None = None):
        self.logits = logits
        self.path = path

    def lookup(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The cached logits of examples ``idx`` (B,), one (B, C) tensor per teacher."""
        rows = self.logits[:, idx.cpu()]
        return list(rows.to(idx.device).unbind(0))

    @staticmethod
    def file_for(directory: str | os.PathLike, fingerprint: str) -> Path:
        """Where the logits for ``fingerprint`` are (or will be) saved in ``directory``."""
        return Path(directory) / f"logits-{fingerprint}.safetensors"

    @classmethod
    def load_or_build(
        cls,
        *,
        directory: str | os.PathLike,
        fingerprint: str,
        dataset,
        num_examples: int,
        teacher_logits_fn: Callable[[dict[str, torch.Tensor]], list[torch.Tensor]],
        accelerator,
        pad_token_id: int,
        batch_size: int,
        pad_to: int | None = None,
        progress_bar: bool = True,
    ) -> TeacherLogitCache:
        """Load the cache for ``fingerprint`` or compute it with ``teacher_logits_fn``.

        Args:
            directory: the cache folder (created if missing).
            fingerprint: from :func:`teacher_fingerprint`.
            dataset: indexable by a list of positions, returning column-major features.
            num_examples: number of examples (positions 0..n-1 are cached).
            teacher_logits_fn: batch (on the accelerator's device) -> one (B, C) logits
                tensor per teacher.
            accelerator: the run's ``accelerate.Accelerator``.
        """
        directory = Path(directory)
        path = cls.file_for(directory, fingerprint)
        if not path.exists():
            logits = cls._compute(dataset, num_examples, teacher_logits_fn, accelerator,
                                  pad_token_id, batch_size, pad_to, progress_bar)
            if accelerator.is_main_process:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp-{os.getpid()}")
                save_file({"logits": logits.contiguous()}, str(tmp),
                          metadata={"num_examples": str(num_examples)})
                os.replace(tmp, path)
                path.with_suffix(".json").write_text(json.dumps(
                    {"shape": list(logits.shape), "fingerprint": fingerprint}, indent=2))
            accelerator.wait_for_everyone()
        logits = load_file(str(path))["logits"]
        if logits.shape[1] != num_examples:
            raise RuntimeError(
                f"teacher cache {path} holds {logits.shape[1]} examples, expected "
                f"{num_examples}; delete it to rebuild"
            )
        return cls(logits, path)

    @staticmethod
    @torch.no_grad()
    def _compute(dataset, num_examples, teacher_logits_fn, accelerator, pad_token_id,
                 batch_size, pad_to, progress_bar) -> torch.Tensor:
        from tqdm.auto import tqdm

        rank, world = accelerator.process_index, accelerator.num_processes
        # Sort by length so that dynamic padding wastes little on this one full pass.
        positions = list(range(rank, num_examples, world))
        lengths = [len(ids) for ids in dataset[positions]["input_ids"]] if positions else []
        positions = [p for _, p in sorted(zip(lengths, positions), key=lambda x: -x[0])]
        rows: list[torch.Tensor] = []
        keys: list[torch.Tensor] = []
        bar = tqdm(total=len(positions), desc="caching teacher logits", unit="ex",
                   disable=not (progress_bar and accelerator.is_local_main_process))
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            batch = pad_batch(dataset[chunk], pad_token_id, pad_to)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            per_teacher = teacher_logits_fn(batch)
            rows.append(torch.stack([t.float() for t in per_teacher]).cpu())
            keys.append(torch.as_tensor(chunk, dtype=torch.long))
            bar.update(len(chunk))
        bar.close()
        local = torch.cat(rows, dim=1) if rows else None
        local_keys = torch.cat(keys) if keys else torch.empty(0, dtype=torch.long)
        if world == 1:
            out = torch.empty_like(local)
            out[:, local_keys] = local
            return out
        # Ranks hold different counts; pad to a common length, gather, then scatter by key.
        num_teachers, num_labels = (local.shape[0], local.shape[2]) if local is not None \
            else (None, None)
        shape = torch.tensor([local_keys.numel(), num_teachers or 0, num_labels or 0],
                             device=accelerator.device)
        shapes = accelerator.gather(shape).view(world, 3)
        num_teachers, num_labels = int(shapes[:, 1].max()), int(shapes[:, 2].max())
        longest = int(shapes[:, 0].max())
        padded = torch.zeros(num_teachers, longest, num_labels)
        padded_keys = torch.full((longest,), -1, dtype=torch.long)
        if local is not None:
            padded[:, : local.shape[1]] = local
            padded_keys[: local_keys.numel()] = local_keys
        all_logits = accelerator.gather(padded.permute(1, 0, 2).contiguous()
                                        .to(accelerator.device)).cpu()
        all_keys = accelerator.gather(padded_keys.to(accelerator.device)).cpu()
        valid = all_keys >= 0
        out = torch.empty(num_teachers, num_examples, num_labels)
        out[:, all_keys[valid]] = all_logits[valid].permute(1, 0, 2)
        return out
