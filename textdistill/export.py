"""The trained student as a Hub-format model directory, and pushing it to the Hub.

:func:`export_model` writes a directory that plain ``transformers`` loads
(``AutoModelForSequenceClassification.from_pretrained(dir)``): ``config.json`` with the
class names, ``model.safetensors``, the tokenizer files and a ``README.md`` model card
(:func:`build_model_card`). The directory appears complete or not at all: everything is
written to a temporary sibling first and renamed into place (:func:`publish_directory`,
which ``textdistill quantize`` shares).

:func:`push_to_hub` uploads such a directory; without network access it fails with
:class:`HubUnavailableError` and leaves the directory alone, to be pushed later.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import plain_data
from .errors import HubUnavailableError
from .models.adaptors import unwrap_model
from .nonfinite import check_finite_weights
from .permissions import with_usual_permissions

_README = "README.md"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
# What the Hub accepts as a repo id ("name" or "owner/name").
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TAGS = ["textdistill", "knowledge-distillation", "text-classification"]


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


# --------------------------------------------------------------------------- model card


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and "param" in key.lower():
        return f"{value / 1e6:.1f}M"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def results_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of ``rows`` (columns in order of first appearance)."""
    if not rows:
        return "_No results recorded._"
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _hub_id(name: str | None) -> str | None:
    """``name`` if it can be a Hub repo id (not a local path), else None."""
    if not name or not _REPO_ID.match(name) or Path(name).exists():
        return None
    return name


def _link(name: str | None) -> str:
    if name is None:
        return "an unspecified model"
    return f"[{name}](https://huggingface.co/{name})" if _hub_id(name) else f"`{name}`"


_CARD_TEMPLATE = """\
---
{metadata}
---

# {model_name}

{model_name} is a text classifier {origin} on {dataset}. {contents}.

## Results

{eval_summary}{results}

## Usage

```python
{usage}
```

## {config_title}

```yaml
{config_yaml}```
"""

_TRANSFORMERS_USAGE = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model = AutoModelForSequenceClassification.from_pretrained("{model_id}")
tokenizer = AutoTokenizer.from_pretrained("{model_id}")

classifier = pipeline("text-classification", model="{model_id}")
print(classifier({pipeline_input}))"""

_ONNX_USAGE = """\
import onnxruntime
from transformers import AutoConfig, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{model_id}")
config = AutoConfig.from_pretrained("{model_id}")
session = onnxruntime.InferenceSession("{model_id}/model.onnx")

batch = tokenizer({tokenizer_input}, return_tensors="np")
feed = {{i.name: batch[i.name].astype("int64") for i in session.get_inputs()}}
logits = session.run(["logits"], feed)[0]
print(config.id2label[int(logits.argmax(-1)[0])])"""


# The usage snippets' input when the card knows no text of the model's own data.
_PLACEHOLDER_TEXT = "Replace me by any text you'd like to classify."


def _usage(model_name: str, example: Mapping[str, str] | None, onnx: bool) -> str:
    """The usage snippet, run on ``example`` (``{"text"}`` or ``{"text", "text_pair"}``)."""
    text = (example or {}).get("text") or _PLACEHOLDER_TEXT
    pair = (example or {}).get("text_pair")
    if onnx:
        texts = f"[{text!r}]" + (f", [{pair!r}]" if pair else "")
        return _ONNX_USAGE.format(model_id=model_name, tokenizer_input=texts)
    pipeline_input = repr(text) if not pair else f"{{'text': {text!r}, 'text_pair': {pair!r}}}"
    return _TRANSFORMERS_USAGE.format(model_id=model_name, pipeline_input=pipeline_input)


def _origin(teacher_name: str | None, fine_tuned: bool) -> str:
    if fine_tuned:
        return f"fine-tuned with textdistill from {_link(teacher_name)}"
    if teacher_name is None:
        return "trained"
    return f"distilled with textdistill from the teacher {_link(teacher_name)}"


def _contents(fine_tuned: bool, onnx_graph: str | None) -> str:
    if onnx_graph is not None:
        return f"It is an ONNX model for ONNX Runtime, with its tokenizer: {onnx_graph}"
    return ("It is a standard Hugging Face model: " +
            ("the fine-tuned model as it was trained" if fine_tuned else
             "the student alone, with no distillation-only parts"))


def build_model_card(
    *,
    model_name: str,
    teacher_name: str | None,
    dataset_name: str | None,
    metrics: Mapping[str, Any],
    results_table: Sequence[Mapping[str, Any]],
    distill_config: Mapping[str, Any],
    fine_tuned: bool = False,
    onnx_graph: str | None = None,
    eval_summary: str | None = None,
    example: Mapping[str, str] | None = None,
    license: str = "apache-2.0",
    language: str = "en",
) -> ModelCard:
    """A model card (README.md) for an exported student; builds offline.

    Args:
        model_name: the model's Hub id or name (used in the usage snippet).
        teacher_name: the teacher's Hub id (for ``fine_tuned``: the model it started
            from); becomes ``base_model`` when it is one.
        dataset_name: the training data's Hub id (``datasets`` metadata) or a description.
        metrics: final eval metrics, e.g. ``{"accuracy": 0.91}``; their names go in the
            metadata and numeric values in ``model-index``.
        results_table: rows of the results table, e.g. ``{"model": "teacher",
            "accuracy": 0.899, "params": 22700000, "latency_ms_b1": 5.1}``.
        distill_config: the distillation settings, shown as YAML.
        fine_tuned: the model was fine-tuned on labels (``textdistill finetune``), not
            distilled: the card says so instead of naming a teacher.
        onnx_graph: the directory holds an ONNX graph (``textdistill quantize``), not
            PyTorch weights: this sentence describes it (how it was made), and the card
            shows ONNX Runtime usage and ``library_name: onnx``.
        eval_summary: what the results were measured on (which data, how many
            examples, when), a paragraph above the table.
        example: an input from the model's own data for the usage snippet,
            ``{"text": ...}`` (``"text_pair"`` too for sentence pairs); without it the
            snippet runs on a placeholder sentence.
        license / language: card metadata.
    """
    dataset_id = _hub_id(dataset_name)
    # model-index entries (the Hub's evaluation results) need a dataset id and numbers.
    eval_results = [
        EvalResult(task_type="text-classification", dataset_type=dataset_id,
                   dataset_name=dataset_id, metric_type=name, metric_value=float(value))
        for name, value in metrics.items()
        if dataset_id and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    data = ModelCardData(
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
        base_model=_hub_id(teacher_name),
        datasets=[dataset_id] if dataset_id else None,
        metrics=list(metrics) or None,
        license=license,
        language=language,
        library_name="transformers" if onnx_graph is None else "onnx",
        pipeline_tag="text-classification",
        tags=list(TAGS) if onnx_graph is None else [*TAGS, "onnx"],
    )
    config_yaml = yaml.safe_dump(plain_data(dict(distill_config)), sort_keys=False,
                                 default_flow_style=False) if distill_config else "{}\n"
    content = _CARD_TEMPLATE.format(
        metadata=data.to_yaml(),
        model_name=model_name,
        origin=_origin(teacher_name, fine_tuned),
        contents=_contents(fine_tuned, onnx_graph),
        usage=_usage(model_name, example, onnx=onnx_graph is not None),
        eval_summary=f"{eval_summary}\n\n" if eval_summary else "",
        config_title="Training config" if fine_tuned else "Distillation config",
        dataset=f"`{dataset_name}`" if dataset_name else "its training data",
        results=results_markdown(results_table),
        config_yaml=config_yaml,
    )
    return ModelCard(content)


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
