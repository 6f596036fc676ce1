"""Files textdistill writes get the permissions the user's umask gives any new file.

safetensors creates its files with mode 0600, so a model directory would hold one
owner-only weight file beside world-readable configs, and a copied or served model
could not be read by anyone else. Every weight file is passed through here once written.
"""

from __future__ import annotations

import os
from pathlib import Path


def _default_file_mode() -> int:
    # os.umask is the only way to read it; set it back at once.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def with_usual_permissions(*paths: str | os.PathLike) -> None:
    """Give each file in ``paths`` (and every file below each directory among them) the
    mode a new file gets under the current umask (0644 under the usual 022)."""
    mode = _default_file_mode()
    for path in map(Path, paths):
        files = path.rglob("*") if path.is_dir() else [path]
        for file in files:
            if file.is_file() and not file.is_symlink():
                file.chmod(mode)


__all__ = ["with_usual_permissions"]
