"""Fidelity: the share of evaluation sentences on which a row's final student predicts the
teacher's class.

A KD student can beat the label-only baseline only where it sides with the teacher and
the baseline does not, so this shows how much of the teacher a method transfers. Each
row's figure is saved next to its run, keyed by the teacher's fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .dev_split import run_model
from .sweep import NOTE_PREFIX, Row, Sweep

AGREEMENT_FILE = NOTE_PREFIX + "agreement.json"


def logits(model: Any, dataset: Any, pad_token_id: int):
    """``model``'s (N, C) logits for every example of the tokenized ``dataset``."""
    import accelerate

    from ..inference import run_inference
    from ..teacher_cache import TEACHER_INPUT_COLUMNS

    model.eval()

    def forward(batch):
        return [model(**{k: batch[k] for k in TEACHER_INPUT_COLUMNS if k in batch}).logits]

    return run_inference(dataset, forward, accelerate.Accelerator(cpu=True), batch_size=64,
                         pad_token_id=pad_token_id)[0]


class Fidelity:
    """Agreements with ``sweep``'s teacher on the evaluation split of ``eval_recipe``."""

    def __init__(self, sweep: Sweep, eval_recipe: dict[str, Any]):
        self.sweep = sweep
        self.eval_recipe = eval_recipe
        self._eval = None
        self._teacher_predictions: list[int] | None = None

    def final_predictions(self, run: Path, result: dict) -> list[int]:
        """The class the model that ``run`` ended with (its last checkpoint: ``best/`` may
        be an earlier step) predicts for every evaluation sentence."""
        model, tokenizer = run_model(run, result["final_step"])
        return logits(model, self._eval_split(tokenizer), tokenizer.pad_token_id) \
            .argmax(-1).tolist()

    def _eval_split(self, tokenizer: Any):
        if self._eval is None:
            from ..data.loading import load_raw_splits, tokenize_splits
            from ..recipe import recipe_from_dict

            data = recipe_from_dict(self.eval_recipe, source="bench:fidelity").data
            self._eval = tokenize_splits(load_raw_splits(data), tokenizer, data)["eval"]
        return self._eval

    def agreement(self, row: Row, result: dict, teacher_result: dict) -> float:
        """The share of evaluation sentences on which ``row``'s final student predicts
        the teacher's class."""
        saved = self.sweep.runs / row.key / AGREEMENT_FILE
        fingerprint = self.sweep.teacher_fingerprint()
        if saved.is_file():
            cached = json.loads(saved.read_text())
            if cached.get("teacher_fingerprint") == fingerprint:
                return cached["agreement"]
        if self._teacher_predictions is None:
            self._teacher_predictions = self.final_predictions(
                self.sweep.teacher_dir.parent, teacher_result)
        mine = self.final_predictions(self.sweep.runs / row.key, result)
        agree = sum(a == b for a, b in zip(mine, self._teacher_predictions)) / len(mine)
        saved.write_text(json.dumps({"teacher_fingerprint": fingerprint,
                                     "agreement": agree}) + "\n")
        return agree
