"""The model card (``README.md``) of an exported model, and its inputs from a run.

:func:`build_model_card` writes the card from explicit inputs: what the model was made
from and on, its results table, its config and a usage snippet run on an input of its own
data; it builds offline. :func:`run_card_inputs` reads those inputs from a finished run's
``results.json`` and ``recipe.yaml``, for ``textdistill export`` and ``quantize``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .config import DistillationConfig, plain_data
from .refs import PYTHON_PREFIX
from .run_dir import RunDir

# What the Hub accepts as a repo id ("name" or "owner/name").
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TAGS = ["textdistill", "knowledge-distillation", "text-classification"]


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


# ------------------------------------------------------------------ inputs of a run


def _display_name(ref: str | None) -> str | None:
    """A model reference as a model card shows it: Hub ids as they are, local directories
    relative to the cwd or as ``local:<parent>/<name>`` (never mistaken for a Hub id)."""
    if ref is None or ref.startswith(PYTHON_PREFIX) or not Path(ref).is_absolute():
        return ref
    path = Path(ref)
    try:
        relative = path.relative_to(Path.cwd())
        if len(relative.parts) > 2:  # "a/b" could pass for a Hub id
            return str(relative)
    except ValueError:
        pass
    return f"local:{path.parent.name}/{path.name}"


def _non_default(section: dict[str, Any], cls: type, keep: Sequence[str] = ()) -> dict[str, Any]:
    """``section`` without the entries left at ``cls``'s defaults (``keep`` always stays)."""
    defaults = plain_data(cls())
    return {k: v for k, v in section.items() if k in keep or defaults.get(k, object()) != v}


def _card_inputs(results: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    fine_tuned = results.get("mode") == "finetune"
    teachers = results.get("teacher") or (recipe.get("teacher") or {}).get("model")
    if fine_tuned:  # the card names the model it started from, not a teacher
        teachers = (recipe.get("student") or {}).get("pretrained") or teachers
    if isinstance(teachers, str):
        teachers = [teachers]
    teacher_name = _display_name(teachers[0]) if teachers else None
    data = recipe.get("data") or {}
    if data.get("dataset"):
        dataset_name = data["dataset"]
    elif data.get("train"):
        train = Path(data["train"])
        dataset_name = f"{train.parent.name} (local {train.name})"
    else:
        dataset_name = None
    rows = []
    params = results.get("params") or {}
    latency = results.get("latency") or {}
    if results.get("teacher_eval"):
        rows.append(_card_row("teacher", results["teacher_eval"], params.get("teacher"),
                              latency.get("teacher")))
    rows.append(_card_row("this model" if fine_tuned else "student (this model)",
                          results.get("best_eval") or {}, params.get("student"),
                          latency.get("student")))
    config = {key: recipe[key] for key in ("student",) if key in recipe}
    if not fine_tuned and isinstance(recipe.get("distill"), dict):
        # The settings that shape this student, not every default.
        config["distill"] = _non_default(recipe["distill"], DistillationConfig, keep=(
            "temperature", "logit_loss", "soft_weight", "hard_weight", "intermediate_weight",
            "matches"))
    train = recipe.get("train") or {}
    config["train"] = {k: train[k] for k in ("epochs", "max_steps", "batch_size", "lr", "seed",
                                             "precision") if k in train}
    config["data"] = {k: data[k] for k in ("max_length", "max_train_samples") if k in data}
    return {"teacher_name": teacher_name, "dataset_name": dataset_name,
            "fine_tuned": fine_tuned,
            "metrics": results.get("best_eval") or {}, "results_table": rows,
            "distill_config": config, "eval_summary": _eval_summary(results, data),
            "example": results.get("eval_example")}


def _eval_summary(results: dict[str, Any], data: dict[str, Any]) -> str | None:
    """What the card's results were measured on: the run's eval data, how many examples
    (a subset says so), and when; ``None`` when ``results.json`` does not say."""
    examples = results.get("eval_examples")
    if not isinstance(examples, int):
        return None
    if data.get("dataset"):
        source = f"the `{data.get('eval')}` split of `{data['dataset']}`"
    elif data.get("eval"):
        source = f"`{Path(data['eval']).name}`"
    else:
        source = "the run's evaluation data"
    subset = data.get("max_eval_samples")
    amount = (f"{examples:,} examples of {source} (a seeded random subset, "
              f"`data.max_eval_samples: {subset}`)" if isinstance(subset, int)
              and examples >= subset else f"all {examples:,} examples of {source}")
    when = []
    if results.get("teacher_eval"):
        when.append("the teacher before training")
    best, final = results.get("best_step"), results.get("final_step")
    step = f" (step {best} of {final})" if best is not None and final is not None else ""
    when.append(f"this model at its best evaluation{step}, the weights published here")
    text = f"Accuracy and F1 were measured on {amount}: {', '.join(when)}."
    latency = results.get("latency") or {}
    if latency.get("seq_len"):
        text += (f" Latency: ms per forward pass at batch sizes 1 and 32, "
                 f"{latency['seq_len']} tokens, on {latency.get('device', '?')}.")
    return text


def _card_row(name: str, metrics: dict[str, Any], params: Any, latency: Any) -> dict[str, Any]:
    latency = latency or {}
    return {"model": name, "accuracy": metrics.get("accuracy"), "f1": metrics.get("f1"),
            "params": params, "latency_ms_b1": latency.get("1"),
            "latency_ms_b32": latency.get("32")}


def run_card_inputs(run: RunDir) -> dict[str, Any]:
    """The model-card arguments (teacher, dataset, metrics, results table, config) of a
    run, from its ``results.json`` and ``recipe.yaml`` (either may be missing)."""
    results: dict[str, Any] = {}
    if run.results.is_file():
        results = json.loads(run.results.read_text(encoding="utf-8"))
    recipe: dict[str, Any] = {}
    if run.recipe.is_file():
        recipe = yaml.safe_load(run.recipe.read_text(encoding="utf-8")) or {}
    return _card_inputs(results, recipe)
