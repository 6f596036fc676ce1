"""Choose on a dev split, report on validation: the rule of every benchmark section.

A dev split is carved from SST-2's training file: its texts, each once (a repeated text
stays with its first occurrence, so that no text can be in two parts), shuffled with a
seed. The files are written into ``<runs>/<prefix>-<digest>/``, the digest taken from
their content: rows name their data files by path, so a different split gets other
paths and retrains the rows that read it.

Every choice among candidates (:func:`best_index`) reads their dev accuracies; SST-2's
validation set is read once per finished run (:func:`validation_accuracy`), for the page,
and which sentences the run got right is saved with it (:func:`validation_correct`), for
breakdowns of that accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from . import recipes
from .sweep import NOTE_PREFIX

VALIDATION_NOTE = NOTE_PREFIX + "validation.json"
# The note's key of its per-sentence list (1: right), in the validation file's order.
CORRECT_KEY = "correct"

TsvRow = tuple[str, str]  # (sentence, label)


def distinct_rows(train_file: Path) -> tuple[list[TsvRow], int]:
    """(sentence, label) rows of a GLUE TSV, each text (:func:`text_key`) once, and the
    number of rows read."""
    from ..data.transfer import text_key

    lines = train_file.read_text(encoding="utf-8").splitlines()
    if lines[0].split("\t")[:2] != ["sentence", "label"]:
        raise ValueError(f"{train_file}: expected a 'sentence<TAB>label' header, got "
                         f"{lines[0]!r}")
    seen: set[tuple[str, ...]] = set()
    rows = []
    for line in lines[1:]:
        sentence, label = line.split("\t")[:2]
        key = text_key([sentence])
        if key not in seen:
            seen.add(key)
            rows.append((sentence, label))
    return rows, len(lines) - 1


def shuffled(rows: list[TsvRow], seed: int) -> list[TsvRow]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in order]


def tsv_text(rows: list[TsvRow], labelled: bool) -> str:
    """``rows`` as a TSV file (without their labels unless ``labelled``)."""
    for sentence, _ in rows:
        if "\t" in sentence or "\n" in sentence:
            raise ValueError(f"cannot write {sentence!r} to a TSV without quoting")
    lines = ["sentence\tlabel" if labelled else "sentence"]
    lines += [f"{s}\t{y}" if labelled else s for s, y in rows]
    return "\n".join(lines) + "\n"


def write_folder(runs: Path, prefix: str, texts: dict[str, str]) -> Path:
    """``texts`` (file name -> content) in ``<runs>/<prefix>-<digest of the contents>/``;
    files already there with the same content are kept."""
    digest = hashlib.sha256("".join(texts.values()).encode()).hexdigest()[:12]
    folder = runs / f"{prefix}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return folder


def best_index(scores: list[float | None]) -> int | None:
    """The candidate with the best dev score, the first on a tie; None while any is
    missing (or there is none)."""
    if not scores or any(score is None for score in scores):
        return None
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def run_model(run: Path, step: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of ``run``: its ``best/``, or the checkpoint of ``step`` (the
    model the run ended with is its last checkpoint; ``best/`` may be an earlier step)."""
    from ..build import load_classifier, load_tokenizer

    model = load_classifier(str(run / "best"), "run")
    if step is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(
            run / "checkpoints" / f"checkpoint-{step}" / "model.safetensors"))
    return model, load_tokenizer(str(run / "best"), "run")


def validation_accuracy(run: Path, validation_file: Path,
                        step: int | None = None) -> tuple[float, int]:
    """(accuracy, sentences) on ``validation_file`` of ``run``'s model (:func:`run_model`),
    computed once and saved beside the run (a rerun of the row deletes the note)."""
    note = run / VALIDATION_NOTE
    saved = json.loads(note.read_text()) if note.is_file() else _evaluate(
        run, validation_file, step)
    return saved["accuracy"], saved["examples"]


def validation_correct(run: Path, validation_file: Path,
                       step: int | None = None) -> list[int]:
    """1 or 0 per sentence of ``validation_file``, in the order the library reads it: did
    ``run``'s model get it right; read from the note of :func:`validation_accuracy`. A note
    written before the note kept these is evaluated again, once, and saved with them."""
    note = run / VALIDATION_NOTE
    saved = json.loads(note.read_text()) if note.is_file() else {}
    if CORRECT_KEY not in saved:
        saved = _evaluate(run, validation_file, step)
    return saved[CORRECT_KEY]


def _evaluate(run: Path, validation_file: Path, step: int | None) -> dict[str, Any]:
    """The validation note of ``run``, computed and saved."""
    from ..data.config import DataConfig
    from ..data.loading import load_raw_splits, tokenize_splits
    from ..schema import from_dict
    from .fidelity import logits

    cfg = from_dict(DataConfig, recipes.transfer_data(validation_file, validation_file), "data")
    model, tokenizer = run_model(run, step)
    split = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)["eval"]
    predicted = logits(model, split, tokenizer.pad_token_id).argmax(-1).tolist()
    correct = [int(p == y) for p, y in zip(predicted, split["labels"])]
    saved = {"accuracy": sum(correct) / len(correct), "examples": len(correct),
             CORRECT_KEY: correct}
    # Replaced whole: an interrupted rewrite of an older note leaves that note readable.
    staged = run / (VALIDATION_NOTE + ".tmp")
    staged.write_text(json.dumps(saved) + "\n")
    os.replace(staged, run / VALIDATION_NOTE)
    return saved
