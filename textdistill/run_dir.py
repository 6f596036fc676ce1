"""The layout of a run directory (``output.dir``): every name a run writes, in one place.

A run directory holds::

    recipe.yaml        the resolved recipe
    best/              the best student, loadable with plain transformers
    best.tmp/          best/ while it is being written (renamed over best/ when complete)
    checkpoints/       checkpoint-<step>/ folders (Accelerate state)
    logs/              tracker logs (TensorBoard)
    teacher_cache/     cached teacher logits (unless the recipe points elsewhere)
    history.json       losses, evaluations, throughput
    results.json       metrics, parameter counts, latencies, timings
    onnx/              best/ as an ONNX Runtime directory (output.quantize)
    run.lock           pid and host of the run using the directory (while it runs)
    previous-run.tmp/  an earlier run set aside by output.overwrite, until the new run
                       has written its first checkpoint

Code that reads or writes any of these goes through :class:`RunDir`, so a renamed entry
or a new one is one edit here, and starting a run over (``output.overwrite``) deletes
exactly what a run writes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

_BEST = "best"
_CHECKPOINTS = "checkpoints"
_CHECKPOINT_PREFIX = "checkpoint-"
_LOGS = "logs"
_TEACHER_CACHE = "teacher_cache"
_HISTORY = "history.json"
_RESULTS = "results.json"
_RECIPE = "recipe.yaml"
_ONNX = "onnx"
_LOCK = "run.lock"
_PREVIOUS_RUN = "previous-run"
# Folders are written under this suffix and renamed when complete, so a crash mid-write
# never leaves a half-written best/ or checkpoint behind.
_STAGING_SUFFIX = ".tmp"


def staging_path(path: Path) -> Path:
    """Where ``path`` is written before the atomic rename onto ``path``."""
    return path.with_name(path.name + _STAGING_SUFFIX)


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory. Creates nothing; ``root`` may not exist yet."""

    root: Path

    def __post_init__(self) -> None:
        # Accept a str or any PathLike (config fields hold strings).
        object.__setattr__(self, "root", Path(self.root))

    @property
    def best(self) -> Path:
        return self.root / _BEST

    @property
    def best_staging(self) -> Path:
        return staging_path(self.best)

    @property
    def checkpoints(self) -> Path:
        return self.root / _CHECKPOINTS

    def checkpoint(self, step: int) -> Path:
        """The checkpoint folder of optimizer step ``step``."""
        return self.checkpoints / f"{_CHECKPOINT_PREFIX}{step}"

    def saved_checkpoints(self) -> list[Path]:
        """Complete checkpoints on disk, oldest (lowest step) first."""
        if not self.checkpoints.is_dir():
            return []
        steps = {}
        for path in self.checkpoints.iterdir():
            step = path.name.removeprefix(_CHECKPOINT_PREFIX)
            if path.is_dir() and path.name.startswith(_CHECKPOINT_PREFIX) and step.isdigit():
                steps[int(step)] = path
        return [steps[step] for step in sorted(steps)]

    @property
    def logs(self) -> Path:
        return self.root / _LOGS

    @property
    def teacher_cache(self) -> Path:
        """The default teacher-logit cache folder (a recipe may share one elsewhere)."""
        return self.root / _TEACHER_CACHE

    @property
    def history(self) -> Path:
        return self.root / _HISTORY

    @property
    def results(self) -> Path:
        return self.root / _RESULTS

    @property
    def recipe(self) -> Path:
        return self.root / _RECIPE

    @property
    def onnx(self) -> Path:
        """``best/`` as an ONNX Runtime directory, written after training when the recipe
        sets ``output.quantize``."""
        return self.root / _ONNX

    @property
    def lock(self) -> Path:
        """The lock file of the run using this directory (see :mod:`textdistill.run_lock`)."""
        return self.root / _LOCK

    @property
    def set_aside(self) -> Path:
        """Where ``output.overwrite`` keeps the earlier run's entries until the new run has
        a checkpoint: a failure before that puts them back."""
        return staging_path(self.root / _PREVIOUS_RUN)

    def entries(self) -> tuple[Path, ...]:
        """Everything a run writes here; starting over deletes these and nothing else."""
        return (self.checkpoints, self.best, self.best_staging, self.logs, self.teacher_cache,
                self.history, self.results, self.recipe, self.onnx)

    def previous_run(self) -> list[str]:
        """What shows that a run already used this directory, as names to show a user
        (``checkpoints/``, ``best/``, ``results.json``); empty when there is none."""
        found = []
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            found.append(f"{_CHECKPOINTS}/")
        if self.best.is_dir():
            found.append(f"{_BEST}/")
        if self.results.is_file():
            found.append(_RESULTS)
        if self.set_aside.is_dir():
            found.append(f"{self.set_aside.name}/")
        return found

    def clear(self) -> None:
        """Delete what an earlier run wrote (:meth:`entries`); other files stay."""
        for path in self.entries():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def set_aside_run(self) -> None:
        """Move the earlier run's entries into :attr:`set_aside` (renames, no copies)."""
        self.set_aside.mkdir()
        for path in self.entries():
            if path.exists() or path.is_symlink():
                path.rename(self.set_aside / path.name)

    def restore_set_aside(self) -> None:
        """Delete what the new run wrote and put the set-aside run back."""
        self.clear()
        for path in self.set_aside.iterdir():
            path.rename(self.root / path.name)
        self.set_aside.rmdir()

    def drop_set_aside(self) -> None:
        """Delete the set-aside run: the new one has a checkpoint to resume from."""
        shutil.rmtree(self.set_aside, ignore_errors=True)

    def settle_set_aside(self) -> bool | None:
        """The rule for a set-aside run once the run replacing it stops (or was killed):
        delete it if the new run has a checkpoint, else put it back. Returns whether it
        was put back; ``None`` when nothing was set aside."""
        if not self.set_aside.is_dir():
            return None
        if self.saved_checkpoints():
            self.drop_set_aside()
            return False
        self.restore_set_aside()
        return True


__all__ = ["RunDir", "staging_path"]
