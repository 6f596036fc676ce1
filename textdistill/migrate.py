"""Recipes written for the older schema keep loading: their keys are rewritten on load.

Each rewrite leaves a note (``note: distill.temperature_schedule -> distill.temperature``)
that the commands print, so a user learns the new spelling. A key whose old meaning the
new schema cannot express is a :class:`~textdistill.errors.ConfigError` that says how to
rewrite it.

===========================================  ==============================================
older key                                    now
===========================================  ==============================================
distill.X + distill.X_schedule {kind, end}   distill.X: {start, end, kind} (X: temperature,
                                             soft_weight, hard_weight, intermediate_weight)
distill.preset_features, hidden_loss,        distill.matches: {preset, losses: {feature:
attention_loss, skip_every, projection       loss}, every, projection}
train.warmup_ratio / train.warmup_steps      train.warmup (a fraction < 1, or steps)
train.cache_teacher + train.teacher_cache_dir train.teacher_cache (false, true or a folder)
train.padding: max_length                    train.pad_to: <data.max_length>
train.greater_is_better                      derived from train.metric_for_best
student.from_teacher: {layers: [...]}        student.from_teacher: [...]
data.train_file / data.train_split           data.train
data.validation_file / data.eval_split       data.eval
data.shuffle_seed                            data.seed
data.augment.ngram_min / ngram_max           data.augment.ngram: [min, max]
===========================================  ==============================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

_SCHEDULED = ("temperature", "soft_weight", "hard_weight", "intermediate_weight")
_SCHEDULE_DEFAULTS = {"temperature": 2.0, "soft_weight": 1.0, "hard_weight": 0.5,
                      "intermediate_weight": 0.1}
_PRESET_KEYS = ("preset_features", "hidden_loss", "attention_loss", "skip_every", "projection")
_RENAMES = {
    "data": {"train_file": "train", "train_split": "train", "validation_file": "eval",
             "eval_split": "eval", "shuffle_seed": "seed"},
}
_OLD_KEYS = {
    "distill": {f"{name}_schedule" for name in _SCHEDULED} | set(_PRESET_KEYS),
    "train": {"warmup_ratio", "warmup_steps", "cache_teacher", "teacher_cache_dir", "padding",
              "greater_is_better"},
    "data": set(_RENAMES["data"]),
}


def migrated_key(key: str) -> bool:
    """Whether dotted ``key`` is a key of the older schema that loading rewrites."""
    parts = key.split(".")
    if len(parts) >= 2 and parts[1] in _OLD_KEYS.get(parts[0], ()):
        return True
    if parts[:2] == ["student", "from_teacher"] and parts[2:3] == ["layers"]:
        return True
    return parts[:2] == ["data", "augment"] and parts[2:3] in (["ngram_min"], ["ngram_max"])


class _Notes(list):
    def moved(self, old: str, new: str) -> None:
        self.append(f"recipe key {old} is now {new}; rewritten (update the recipe)")


def _distill(distill: dict[str, Any], notes: _Notes) -> None:
    for name in _SCHEDULED:
        schedule = distill.pop(f"{name}_schedule", None)
        if schedule is None:
            continue
        if not isinstance(schedule, Mapping):
            raise ConfigError(f"distill.{name}_schedule: expected a mapping {{kind, end}}; write "
                              f"distill.{name}: {{start, end, kind}} instead")
        start = distill.get(name, _SCHEDULE_DEFAULTS[name])
        if isinstance(start, Mapping):
            raise ConfigError(f"distill.{name}_schedule: distill.{name} is already a schedule; "
                              f"drop distill.{name}_schedule")
        if schedule.get("end") is not None:
            distill[name] = {"start": start, "end": schedule["end"],
                             "kind": schedule.get("kind", "constant")}
        notes.moved(f"distill.{name}_schedule", f"distill.{name}: {{start, end, kind}}")
    old = {key: distill.pop(key) for key in _PRESET_KEYS if key in distill}
    if not old:
        return
    projection = old.get("projection", "linear")
    matches = distill.get("matches")
    if not isinstance(matches, str):
        if projection not in (None, "linear"):
            raise ConfigError(f"distill.projection: {projection!r} no longer applies to listed "
                              "matches; set projection on each of distill.matches")
        notes.append(f"recipe keys {', '.join('distill.' + k for k in old)} only shaped a "
                     "preset, and distill.matches is a list; dropped")
        return
    features = old.get("preset_features", ["hidden", "attention"])
    losses = {"hidden": old.get("hidden_loss", "hidden_mse"),
              "attention": old.get("attention_loss", "attention_mse")}
    preset: dict[str, Any] = {"preset": matches,
                              "losses": {f: losses.get(f, f) for f in features}}
    if old.get("skip_every") is not None:
        preset["every"] = old["skip_every"]
    if projection not in (None, "linear"):
        preset["projection"] = projection
    distill["matches"] = preset
    notes.moved(", ".join(f"distill.{k}" for k in old),
                "distill.matches: {preset, losses, every, projection}")


def _train(train: dict[str, Any], data: Mapping[str, Any], notes: _Notes) -> None:
    ratio, steps = train.pop("warmup_ratio", None), train.pop("warmup_steps", None)
    if steps is not None or ratio is not None:
        train["warmup"] = steps if steps is not None else ratio
        notes.moved("train.warmup_ratio / train.warmup_steps", "train.warmup")
    if "cache_teacher" in train or "teacher_cache_dir" in train:
        cache, folder = train.pop("cache_teacher", False), train.pop("teacher_cache_dir", None)
        train["teacher_cache"] = folder if cache and folder else bool(cache)
        notes.moved("train.cache_teacher / train.teacher_cache_dir", "train.teacher_cache")
    if "padding" in train:
        if train.pop("padding") == "max_length":
            train["pad_to"] = data.get("max_length", 128)
        notes.moved("train.padding", "train.pad_to")
    if "greater_is_better" in train:
        train.pop("greater_is_better")
        notes.append("recipe key train.greater_is_better is derived from "
                     "train.metric_for_best now; dropped")


def _rename(section: dict[str, Any], renames: Mapping[str, str], where: str,
            notes: _Notes) -> None:
    for old, new in renames.items():
        if old in section:
            value = section.pop(old)
            if value is not None:
                section[new] = value
            notes.moved(f"{where}.{old}", f"{where}.{new}")


def migrate_recipe(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``raw`` with keys of the older schema rewritten, and a note for each rewrite.

    ``raw`` is not changed.

    Raises:
        ConfigError: an old key whose meaning has no new spelling; the message says what
            to write instead.
    """
    raw = copy.deepcopy(dict(raw))
    notes = _Notes()
    sections = {name: dict(raw[name]) for name in ("distill", "train", "student", "data")
                if isinstance(raw.get(name), Mapping)}
    data = sections.get("data", {})
    if "distill" in sections:
        _distill(sections["distill"], notes)
    if "train" in sections:
        _train(sections["train"], data, notes)
    student = sections.get("student", {})
    if isinstance(student.get("from_teacher"), Mapping) and "layers" in student["from_teacher"]:
        student["from_teacher"] = student["from_teacher"]["layers"]
        notes.moved("student.from_teacher.layers", "student.from_teacher")
    if data:
        _rename(data, _RENAMES["data"], "data", notes)
        augment = data.get("augment")
        if isinstance(augment, Mapping) and ("ngram_min" in augment or "ngram_max" in augment):
            augment = dict(augment)
            ngram = list(augment.get("ngram", [1, 5]))
            ngram = [augment.pop("ngram_min", ngram[0]), augment.pop("ngram_max", ngram[1])]
            data["augment"] = {**augment, "ngram": ngram}
            notes.moved("data.augment.ngram_min / ngram_max", "data.augment.ngram")
    raw.update(sections)
    return raw, list(notes)


__all__ = ["migrate_recipe", "migrated_key"]
