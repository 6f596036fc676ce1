"""The trained student as a Hub-format model directory, and pushing it to the Hub.

:func:`export_model` writes a directory that plain ``transformers`` loads
(``AutoModelForSequenceClassification.from_pretrained(dir)``): ``config.json`` with the
class names, ``model.safetensors``, the tokenizer files and a ``README.md`` model card
(:func:`~textdistill.model_card.build_model_card`). The directory appears complete or not
at all: everything is written to a temporary sibling first and renamed into place
(:func:`publish_directory`, which ``textdistill quantize`` shares).

:func:`push_to_hub` uploads such a directory; without network access it fails with
:class:`HubUnavailableError` and leaves the directory alone, to be pushed later.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard

from .errors import HubUnavailableError
from .model_card import build_model_card
from .models.adaptors import unwrap_model
from .nonfinite import check_finite_weights
from .permissions import with_usual_permissions

_README = "README.md"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


# ------------------------------------------------------------------------------ export


def _write_model(model: Any, tokenizer: Any, directory: Path, card: ModelCard | None,
                 name: str) -> None:
    model.save_pretrained(directory)
    if not any((directory / name).is_file() for name in _WEIGHTS):
        # transformers 5 always writes safetensors (``safe_serialization`` is gone);
        # check rather than trust, since the Hub format promises model.safetensors.
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {directory}")
    fix_label_maps(directory / "config.json")
    tokenizer.save_pretrained(directory)
    if card is None:
        card = build_model_card(model_name=name, teacher_name=None, dataset_name=None,
                                metrics={}, results_table=[], distill_config={})
    card.save(directory / _README)


def fix_label_maps(config_path: Path) -> None:
    """Make ``label2id`` the inverse of ``id2label`` in a saved ``config.json``.

    Code that sets ``config.id2label`` alone leaves the default ``label2id``
    (``LABEL_0`` ...); the pipeline and the Hub widget read both.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    id2label = config.get("id2label")
    if not id2label:
        return
    label2id = {name: int(i) for i, name in id2label.items()}
    if config.get("label2id") != label2id:
        config["label2id"] = label2id
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                               encoding="utf-8")


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a target directory that a publish would damage or wrongly replace.

    Raises:
        FileExistsError: ``target`` is a symbolic link or a file, or a non-empty
            directory and ``overwrite`` is False.
    """
    if target.is_symlink():
        # Renaming onto a link replaces the link, not what it points to: refuse rather
        # than half-replace it.
        raise FileExistsError(f"{target} is a symbolic link (to {os.readlink(target)}); "
                              "export to the directory it points to, or to a new path")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{target} exists and is not empty; pass --overwrite (overwrite=True) to replace it"
        )


def publish_directory(directory: str | os.PathLike, write: Callable[[Path], None], *,
                      overwrite: bool = False) -> Path:
    """Create ``directory`` atomically: ``write(staging)`` fills a temporary sibling, which
    is renamed onto ``directory`` only once complete. With ``overwrite`` an existing
    directory is replaced only then, so a failed or interrupted write never leaves a
    half-written directory, and the old one survives it.

    Raises:
        FileExistsError: see :func:`check_target` (checked before ``write`` runs).
    """
    target = Path(directory)
    check_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same parent: the final rename stays on one file system, so it is atomic.
    tag = uuid.uuid4().hex[:8]
    staging = target.parent / f".{target.name}.tmp-{tag}"
    staging.mkdir()
    try:
        write(staging)
        with_usual_permissions(staging)
        if target.is_dir() and any(target.iterdir()):
            backup = target.parent / f".{target.name}.old-{tag}"
            target.rename(backup)
            try:
                staging.rename(target)
            except BaseException:
                backup.rename(target)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            # rename() replaces an empty directory atomically on POSIX.
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def export_model(model: Any, tokenizer: Any, hub_dir: str | os.PathLike, *,
                 card: ModelCard | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` (the student alone) and ``tokenizer`` as a Hub-format directory.

    Writes ``config.json``, ``model.safetensors``, the tokenizer files and ``README.md``
    (``card``, or a minimal card). The files go to a temporary sibling of ``hub_dir``
    that is renamed into place once complete; with ``overwrite`` an existing directory is
    replaced only then, so an interrupted export never leaves a half-written model.

    Args:
        model: the student (wrappers such as DDP or ``torch.compile`` are unwrapped).
        tokenizer: the tokenizer the student reads.
        hub_dir: the directory to create.
        card: the model card (see :func:`build_model_card`).
        overwrite: replace a non-empty ``hub_dir``.

    Returns:
        ``hub_dir`` as a ``Path``.

    Raises:
        FileExistsError: ``hub_dir`` is a file or a symbolic link, or a non-empty
            directory and ``overwrite`` is False.
        NonFiniteError: the model's weights hold NaN or infinity (nothing is written).
    """
    model = unwrap_model(model)
    check_finite_weights(model, f"export {hub_dir}")
    name = Path(hub_dir).name
    return publish_directory(
        hub_dir, lambda staging: _write_model(model, tokenizer, staging, card, name),
        overwrite=overwrite)


def is_export_of(hub_dir: str | os.PathLike, model: Any) -> bool:
    """Whether ``hub_dir`` holds a complete export (config, weights, model card) of
    exactly ``model``'s weights: one that a later ``--push`` may upload as it is."""
    from transformers import AutoModelForSequenceClassification

    directory = Path(hub_dir)
    if not all((directory / name).is_file() for name in ("config.json", _README)) or \
            not any((directory / name).is_file() for name in _WEIGHTS):
        return False
    exported = AutoModelForSequenceClassification.from_pretrained(directory).state_dict()
    weights = unwrap_model(model).state_dict()
    return exported.keys() == weights.keys() and all(
        torch.equal(exported[k].cpu(), weights[k].cpu()) for k in weights)


def replace_model_card(hub_dir: str | os.PathLike, card: ModelCard) -> None:
    """Write ``card`` as ``hub_dir``'s README.md, atomically (a rename of a full file)."""
    target = Path(hub_dir) / _README
    staging = target.with_name(f".{_README}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        card.save(staging)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- hub


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exception types meaning "could not reach the Hub" (not "the Hub said no")."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    # huggingface_hub's HTTP client: httpx2 (hub >= 2), httpx (1.x) or requests (older).
    for module_name, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                               ("requests", ("ConnectionError", "Timeout"))):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        for name in names:
            error = getattr(module, name, None) or getattr(
                getattr(module, "exceptions", None), name, None)
            if isinstance(error, type) and issubclass(error, BaseException):
                errors.append(error)
    return tuple(errors)


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "true", "yes", "on")


def push_to_hub(hub_dir: str | os.PathLike, repo_id: str, *, private: bool = False,
                token: str | None = None) -> str:
    """Upload an exported directory to the Hub repo ``repo_id`` (created if needed).

    Returns:
        The URL of the Hub repo.

    Raises:
        FileNotFoundError: ``hub_dir`` is not an exported model directory.
        HubUnavailableError: offline mode is on or the Hub cannot be reached; the local
            directory is untouched and can be pushed later.
    """
    from huggingface_hub import HfApi

    directory = Path(hub_dir)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} is not an exported model directory "
                                "(no config.json); run `textdistill export` first")
    # `hf` is huggingface_hub's CLI (>= 1.0); a folder uploads to the repo's root.
    later = (f"the local model directory is complete at {directory}; push it later with "
             f"`hf upload {repo_id} {directory}{' --private' if private else ''}`, or run "
             f"the same `textdistill export` again: with --push it uploads a complete "
             f"export of the same weights as it is")
    if _offline():
        raise HubUnavailableError(f"cannot push to the Hub: offline mode (HF_HUB_OFFLINE) is "
                                  f"on; {later}")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(directory), repo_type="model",
                          commit_message="Upload distilled model (textdistill)")
    except _transport_errors() as err:
        raise HubUnavailableError(f"cannot reach the Hub ({type(err).__name__}: {err}); "
                                  f"{later}") from err
    return str(url)
