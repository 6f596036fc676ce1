"""Recipes written for the older schema load into the same recipe as their rewrite."""

from __future__ import annotations

import pytest

from textdistill.errors import ConfigError
from textdistill.recipe import apply_overrides, recipe_from_dict

OLD = {
    "teacher": {"model": "someone/bert"},
    "student": {"from_teacher": {"layers": [0, 2]}},
    "data": {"train_file": "t.tsv", "validation_file": "v.tsv", "shuffle_seed": 7,
             "max_length": 48, "augment": {"copies": 1, "ngram_min": 2, "ngram_max": 4}},
    "distill": {"temperature": 4.0, "temperature_schedule": {"kind": "linear", "end": 1.0},
                "soft_weight_schedule": {"kind": "constant", "end": None},
                "matches": "skip", "skip_every": 2, "preset_features": ["hidden"],
                "hidden_loss": "pkd"},
    "train": {"warmup_ratio": 0.06, "cache_teacher": True, "teacher_cache_dir": "logits",
              "padding": "max_length", "greater_is_better": True},
    "output": {"dir": "runs/x"},
}
NEW = {
    "teacher": {"model": "someone/bert"},
    "student": {"from_teacher": [0, 2]},
    "data": {"train": "t.tsv", "eval": "v.tsv", "seed": 7, "max_length": 48,
             "augment": {"copies": 1, "ngram": [2, 4]}},
    "distill": {"temperature": {"start": 4.0, "end": 1.0, "kind": "linear"},
                "matches": {"preset": "skip", "every": 2, "losses": {"hidden": "pkd"}}},
    "train": {"warmup": 0.06, "teacher_cache": "logits", "pad_to": 48},
    "output": {"dir": "runs/x"},
}


def test_old_keys_give_the_recipe_of_the_new_ones_with_notes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old, new = recipe_from_dict(OLD), recipe_from_dict(NEW)
    assert old.to_dict() == new.to_dict()
    assert new.notes == ()
    notes = "\n".join(old.notes)
    for key in ("distill.temperature_schedule", "distill.skip_every", "train.warmup_ratio",
                "train.cache_teacher", "train.padding", "train.greater_is_better",
                "student.from_teacher.layers", "data.train_file", "data.shuffle_seed",
                "data.augment.ngram_min"):
        assert key in notes


def test_old_override_keys_still_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = apply_overrides(NEW, ["train.warmup_steps=10", "distill.hard_weight_schedule.end=1",
                                "distill.hard_weight_schedule.kind=linear"])
    recipe = recipe_from_dict(raw)
    assert recipe.train.warmup == 10
    assert recipe.distill.hard_weight.value(1.0) == 1.0


def test_an_old_key_the_new_schema_cannot_express_says_what_to_write():
    raw = {**NEW, "distill": {"matches": [{"feature": "hidden", "student_layer": 1,
                                           "teacher_layer": 1}], "projection": "linear+tanh"}}
    with pytest.raises(ConfigError, match="set projection on each of distill.matches"):
        recipe_from_dict(raw)
