"""Whether ``--resume`` may continue a run with the recipe it is given.

A checkpoint holds the state of the models, optimizer, schedule and data order that one
recipe made; :func:`check_resume` compares the recipe a run resumes with against the
``recipe.yaml`` it started with and lets only :data:`RESUMABLE_KEYS` differ.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .errors import ConfigError
from .recipe import Recipe, recipe_from_dict
from .run_dir import RunDir

# Recipe keys a resumed run may change: how long it trains, what it evaluates, logs and
# keeps when, and what it makes of best/ after training. Every other key shapes the state
# a checkpoint holds (models, optimizer, schedule, data order) or what the steps compute,
# so a change would mix two runs.
RESUMABLE_KEYS = frozenset({
    "train.max_steps", "train.epochs", "train.eval_steps", "train.save_steps",
    "train.logging_steps", "train.save_total_limit", "train.early_stopping_patience",
    "train.report_to", "train.progress_bar", "train.max_nonfinite_steps", "data.cache_dir",
    "output.quantize",
})
# Where and how a run starts, not what it is: a run directory may be moved and resumed.
_NOT_COMPARED = ("output.dir", "output.overwrite")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for nested mappings; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat |= _flat(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    return flat


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def check_resume(recipe: Recipe, resume: bool) -> list[str]:
    """With ``resume``, compare ``recipe`` with the ``recipe.yaml`` the run started with.

    Returns:
        A note per changed key of :data:`RESUMABLE_KEYS` (empty without ``resume`` or
        without a saved recipe).

    Raises:
        ConfigError: another key differs; the message lists every differing key.
    """
    path = RunDir(recipe.output_dir).recipe
    if not resume or not path.is_file():
        return []
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:  # the saved recipe with today's defaults and key names, like the new one
        saved = recipe_from_dict(saved, source=recipe.source).to_dict()
    except ConfigError:
        pass
    old, new = _flat(saved), _flat(recipe.to_dict())
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and k not in _NOT_COMPARED)
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"--resume: the recipe differs from the one {recipe.output_dir} started with "
            f"({path.name}) in "
            + ", ".join(f"{k} ({_short(old.get(k))} -> {_short(new.get(k))})" for k in refused)
            + f"; only {', '.join(sorted(RESUMABLE_KEYS))} may change on resume. Resume with "
            "the saved recipe, or start over (--set output.overwrite=true, or another "
            "output.dir)")
    return [f"resuming with {k} changed: {_short(old.get(k))} -> {_short(new.get(k))}"
            for k in changed]


__all__ = ["RESUMABLE_KEYS", "check_resume"]
