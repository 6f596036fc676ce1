"""Writing checkpoints and ``best/`` so that a crash never leaves half of one behind.

Both are written under a staging name (:func:`~textdistill.run_dir.staging_path`) and
renamed into place when complete. Under several processes every rank writes its share of
a checkpoint (Accelerate's ``save_state``), and rank 0 renames.

A checkpoint holds Accelerate's files (model weights as safetensors; optimizer, RNG and
grad-scaler states, which Accelerate loads with ``torch.load(weights_only=True)``) and
textdistill's own state without any pickle: :data:`LOOP_STATE` (JSON: the train state and
the scheduler's state_dict) and :data:`TENSORS` (safetensors: the projections). Nothing is
registered with Accelerate's ``register_for_checkpointing``, whose
``custom_checkpoint_*.pkl`` files it unpickles with ``weights_only=False``: a crafted one
would run code on ``--resume``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from .permissions import with_usual_permissions
from .run_dir import RunDir, staging_path

LOOP_STATE = "loop_state.json"
TENSORS = "loop_tensors.safetensors"
# Checkpoints written before LOOP_STATE existed: register_for_checkpointing's pickles, in
# registration order (scheduler, train state, projections when there are any).
_LEGACY_CUSTOM = "custom_checkpoint_{}.pkl"


def save_checkpoint(accelerator: Accelerator, run_dir: RunDir, step: int,
                    keep: int | None, state: dict[str, Any],
                    tensors: dict[str, torch.Tensor]) -> Path:
    """Accelerate's full state at ``step``, with the loop's ``state`` (plain JSON data) and
    ``tensors``; only the newest ``keep`` checkpoints stay."""
    path = run_dir.checkpoint(step)
    tmp = staging_path(path)
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / LOOP_STATE).write_text(json.dumps(state), encoding="utf-8")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(tmp / TENSORS))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with_usual_permissions(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
        if keep:
            for old in run_dir.saved_checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator: Accelerator, path: Path
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore Accelerate's state from ``path``; return the loop's state and tensors (as
    :func:`save_checkpoint` got them). Nothing is unpickled beyond ``weights_only``.

    Raises:
        FileNotFoundError: ``path`` holds neither :data:`LOOP_STATE` nor an older
            checkpoint's train state.
    """
    legacy = not (path / LOOP_STATE).is_file()
    if legacy and not (path / _LEGACY_CUSTOM.format(1)).is_file():
        raise FileNotFoundError(f"{path} is no textdistill checkpoint: it has no {LOOP_STATE}")
    pickles = set(path.glob(_LEGACY_CUSTOM.format("*")))
    if pickles:
        # Accelerate refuses a folder with more custom_checkpoint_*.pkl files than
        # registered objects (none here), and unpickles them fully when there are as many;
        # it reads a view of the folder without them (those of older checkpoints are read
        # below, weights_only).
        with tempfile.TemporaryDirectory() as view:
            for entry in path.iterdir():
                if entry not in pickles:
                    (Path(view) / entry.name).symlink_to(entry.resolve())
            accelerator.load_state(view)
    else:
        accelerator.load_state(str(path))
    if not legacy:
        state = json.loads((path / LOOP_STATE).read_text(encoding="utf-8"))
        tensors = load_file(str(path / TENSORS)) if (path / TENSORS).is_file() else {}
        return state, tensors

    def load_legacy(index: int) -> Any:
        # weights_only: these states are plain numbers, strings and tensors.
        return torch.load(path / _LEGACY_CUSTOM.format(index), map_location="cpu",
                          weights_only=True)

    projections = path / _LEGACY_CUSTOM.format(2)
    return ({"scheduler": load_legacy(0), "train": load_legacy(1)},
            dict(load_legacy(2)) if projections.is_file() else {})


def checkpoint_to_resume(run_dir: RunDir, resume: bool | str) -> Path | None:
    """The checkpoint ``resume`` names: the newest one for ``True`` (``None`` if there
    is none), else the given path.

    Raises:
        FileNotFoundError: an explicit checkpoint path that does not exist.
    """
    if resume is True:
        found = run_dir.saved_checkpoints()
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def save_best(model: Any, tokenizer: Any, run_dir: RunDir) -> None:
    """``model`` (and ``tokenizer``) as ``best/``, loadable with plain transformers."""
    best, tmp = run_dir.best, run_dir.best_staging
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    with_usual_permissions(tmp)
    if best.exists():
        shutil.rmtree(best)
    tmp.rename(best)


__all__ = ["LOOP_STATE", "TENSORS", "checkpoint_to_resume", "load_checkpoint", "save_best",
           "save_checkpoint"]
