"""Teacher-output caching: the teacher's logits for the train set, computed once.

Logit-only KD with a cache never runs the teacher's forward during training: the loop
looks each batch's logits up by example index. The cache lives next to the run
(:attr:`~textdistill.run_dir.RunDir.teacher_cache`, unless a recipe shares a folder
between runs) as one safetensors file per fingerprint, so a second run over the same
teacher(s) and data reuses it, and a changed teacher or dataset gets a new file instead
of stale logits.

Multi-process safety: every rank computes the logits of its own share of the examples
(:func:`~textdistill.inference.run_inference`), the shares are gathered, and only the
main process writes (to a temporary name, then an atomic rename) while the others wait
at a barrier before reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data.batching import TOKEN_COLUMNS
from .inference import Forward, run_inference
from .permissions import with_usual_permissions

# The columns a teacher's forward reads (see data.batching.pad_batch): its logits are a
# function of these and the teacher alone. A teacher with its own tokenizer reads them
# under its prefix (t1_input_ids, ...).
TEACHER_INPUT_COLUMNS = TOKEN_COLUMNS


def data_fingerprint(dataset, prefixes: Sequence[str] = ("",)) -> str:
    """A hash of the token columns the teachers read, in example order.

    ``datasets`` fingerprints a file-backed dataset by its files' paths and modification
    times, so a copied or re-downloaded dataset would miss a valid cache. Hashing the
    token ids themselves keeps the cache valid for the same inputs wherever they came
    from, and gives changed inputs a new file. Datasets without Arrow columns (plain
    indexables) fall back to their ``_fingerprint`` or their length.

    Args:
        dataset: the tokenized training examples.
        prefixes: the column prefixes the teachers read: ``""`` for the student's token
            columns, ``"t1_"`` for teacher 1's own (see
            :func:`~textdistill.data.batching.teacher_prefix`). A teacher with its own
            tokenizer is keyed by the ids it reads, whatever the student's are.
    """
    import pyarrow.compute as pc

    present = getattr(dataset, "column_names", ())
    columns = [prefix + c for prefix in prefixes for c in TEACHER_INPUT_COLUMNS
               if prefix + c in present]
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
                        pad_to: int | None) -> str:
    """A short hash of what the cached logits depend on.

    It covers each teacher's class, config and a cheap digest of its weights (sums of
    every parameter), ``data_digest`` (from :func:`data_fingerprint`: the token ids, so
    truncation too) and the fixed padding length (``None``: dynamic padding), which
    moves the logits by float rounding.
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
    digest.update(str(pad_to).encode())
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
        teacher_logits_fn: Forward,
        accelerator,
        pad_token_id: int,
        batch_size: int,
        pad_to: int | None = None,
        teacher_pad_ids: Mapping[int, int] | None = None,
        progress_bar: bool = True,
    ) -> TeacherLogitCache:
        """Load the cache for ``fingerprint`` or compute it with ``teacher_logits_fn``.

        Args:
            directory: the cache folder (created if missing).
            fingerprint: from :func:`teacher_fingerprint`.
            dataset: the tokenized training examples (see
                :func:`~textdistill.inference.run_inference`); positions key the cache.
            teacher_logits_fn: batch (on the accelerator's device) -> one (B, C) logits
                tensor per teacher; it runs under the accelerator's autocast.
            accelerator: the run's ``accelerate.Accelerator``.
            pad_token_id, batch_size, pad_to, teacher_pad_ids, progress_bar: as for
                :func:`~textdistill.inference.run_inference`.
        """
        directory = Path(directory)
        path = cls.file_for(directory, fingerprint)
        num_examples = len(dataset)
        if not path.exists():
            logits = run_inference(dataset, teacher_logits_fn, accelerator,
                                   batch_size=batch_size, pad_token_id=pad_token_id,
                                   pad_to=pad_to, teacher_pad_ids=teacher_pad_ids,
                                   progress_bar=progress_bar,
                                   description="caching teacher logits")
            if accelerator.is_main_process:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp-{os.getpid()}")
                save_file({"logits": logits.contiguous()}, str(tmp),
                          metadata={"num_examples": str(num_examples)})
                with_usual_permissions(tmp)
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
