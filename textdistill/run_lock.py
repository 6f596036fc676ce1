"""One run per output directory: an exclusive lock file that names the run holding it.

Two runs writing one ``output.dir`` would interleave their checkpoints and replace each
other's ``best/``. A run creates :attr:`RunDir.lock <textdistill.run_dir.RunDir.lock>`
atomically (``O_CREAT | O_EXCL``) before it writes anything, holding its pid and host,
and deletes it when it ends, on an exception too. A lock left by a killed run (this host,
its pid gone) is taken over with a note; a lock from another host cannot be checked, so
it is refused with the path to delete by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import RunLockedError
from .run_dir import RunDir

# The locks this process holds: a lock file naming this pid is ours only if listed here.
_HELD: set[Path] = set()


def _read_holder(path: Path) -> dict[str, Any] | None:
    """The lock's content; ``None`` when it is unreadable (or mid-write)."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _is_gone(holder: dict[str, Any], path: Path) -> bool:
    """Whether the process that wrote ``holder`` (the lock at ``path``) certainly no longer
    runs."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        # Not held by this process, so a leftover of a killed run whose pid this process
        # got again (containers reuse small pids).
        return path.resolve() not in _HELD
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


class RunLock:
    """The lock of ``root`` as a context manager: taken on enter, released on exit.

    Directories it had to create for the lock are removed again on exit when nothing
    else was written into them, so a run refused by a later check leaves no trace.

    Raises (on enter):
        RunLockedError: another live run (or one on another host) holds ``root``.
    """

    def __init__(self, root: str | os.PathLike, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.path = RunDir(self.root).lock
        self.log = log
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._created: list[Path] = []

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(self.holder, file)
        return True

    def _refuse(self, holder: dict[str, Any] | None) -> RunLockedError:
        who = "an unknown run" if holder is None else \
            f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
        return RunLockedError(
            f"{self.root} is in use by another run ({who}); wait for it to end or choose "
            f"another output.dir (if that run is gone, delete {self.path})")

    def __enter__(self) -> RunLock:
        self._created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if not self._create():
                holder = _read_holder(self.path)
                if holder is None or not _is_gone(holder, self.path):
                    raise self._refuse(holder)
                self.log(f"note: taking over {self.path}, left by pid {holder['pid']} "
                         "which no longer runs")
                self.path.unlink(missing_ok=True)
                if not self._create():  # another run took it over first
                    raise self._refuse(_read_holder(self.path))
        except BaseException:
            self._remove_created()
            raise
        _HELD.add(self.path.resolve())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _HELD.discard(self.path.resolve())
        # Delete the lock only while it is still ours.
        if _read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)
        self._remove_created()

    def _remove_created(self) -> None:
        for path in self._created:  # deepest first
            try:
                path.rmdir()
            except OSError:  # holds what the run wrote
                return


__all__ = ["RunLock"]
