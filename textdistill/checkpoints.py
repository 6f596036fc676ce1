"""Writing checkpoints and ``best/`` so that a crash never leaves half of one behind.

Both are written under a staging name (:func:`~textdistill.run_dir.staging_path`) and
renamed into place when complete. Under several processes every rank writes its share of
a checkpoint (Accelerate's ``save_state``), and rank 0 renames.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from .permissions import with_usual_permissions
from .run_dir import RunDir, staging_path


def save_checkpoint(accelerator: Accelerator, run_dir: RunDir, step: int,
                    keep: int | None) -> Path:
    """Accelerate's full state at ``step``; only the newest ``keep`` checkpoints stay."""
    path = run_dir.checkpoint(step)
    tmp = staging_path(path)
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
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


__all__ = ["checkpoint_to_resume", "save_best", "save_checkpoint"]
