"""Recipes: one YAML file that describes a whole run, validated before anything loads.

A recipe has six sections::

    teacher:  {model: <id | dir | python:<module> | [list]>, remap_labels: false,
              tokenizer: shared | own}
    student:  exactly one of  from_teacher: [0, 2, 4]
                              config: {num_layers, hidden_size, num_heads, intermediate_size}
                              pretrained: <id | dir | python:<module>>
    data:     DataConfig          (textdistill.data.config)
              data.augment: AugmentConfig (textdistill.data.augment), distill only
    distill:  DistillationConfig  (textdistill.config)
    train:    TrainingConfig without output_dir (output.dir)
    output:   {dir: runs/<recipe file stem>, overwrite: false}

:func:`load_recipe` reads a file, applies ``--set`` overrides (:func:`apply_overrides`)
and validates everything into a :class:`Recipe`; every error is a
:class:`~textdistill.config.ConfigError` whose message starts with the key path and,
for unknown keys, lists the valid ones. Paths get ``${ENV_VAR}`` (``${VAR:-default}``)
and ``~`` expanded, and relative local paths are made absolute against the current
directory, so the resolved recipe (:meth:`Recipe.to_yaml`) runs from anywhere.

Nothing here loads a model or a dataset; :mod:`textdistill.build` does that.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import DistillationConfig, TrainingConfig
from .data.config import DataConfig
from .errors import ConfigError
from .migrate import migrate_recipe, migrated_key
from .refs import local_path, normalize_model_ref
from .schema import field_type_at, from_dict, init_fields, plain_data
from .sections import OutputSpec, StudentSpec, TeacherSpec

SECTIONS = ("teacher", "student", "data", "distill", "train", "output")
# TrainingConfig fields a recipe sets elsewhere, with where.
_TRAIN_ELSEWHERE = {
    "output_dir": "the run directory is output.dir",
    "max_length": "set data.max_length (truncation); train.pad_to pads every batch to a "
                  "fixed length",
}
TRAIN_KEYS = tuple(sorted(set(init_fields(TrainingConfig)) - {"output_dir"}))


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. Build with :func:`load_recipe` or :func:`recipe_from_dict`.

    ``train`` is a full :class:`TrainingConfig` whose ``output_dir`` is ``output.dir``.
    ``notes`` say which keys of an older schema were rewritten on load.
    """

    teacher: TeacherSpec | None
    student: StudentSpec
    data: DataConfig
    distill: DistillationConfig
    train: TrainingConfig
    output: OutputSpec
    source: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir)

    @property
    def teacher_models(self) -> list[str]:
        return self.teacher.models if self.teacher is not None else []

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data; :func:`recipe_from_dict` reads it back."""
        student = {k: v for k, v in plain_data(self.student).items() if v is not None}
        train = {k: v for k, v in plain_data(self.train).items() if k not in _TRAIN_ELSEWHERE}
        out = {
            "teacher": plain_data(self.teacher) if self.teacher is not None else None,
            "student": student,
            "data": plain_data(self.data),
            "distill": plain_data(self.distill),
            "train": train,
            "output": plain_data(self.output),
        }
        if out["teacher"] is None:
            del out["teacher"]
        return out

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML, sections in the usual order."""
        header = f"# resolved from {self.source}\n" if self.source else ""
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False,
                                       default_flow_style=None, width=100)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some sections replaced (the recipe itself is never changed)."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- building


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping (section), got {value!r}")
    return value


def _check_train_keys(train: Mapping[str, Any]) -> None:
    for key, where in _TRAIN_ELSEWHERE.items():
        if key in train:
            raise ConfigError(f"train.{key}: not a recipe key; {where}")
    unknown = sorted(set(train) - set(TRAIN_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join('train.' + str(k) for k in unknown)}; valid keys: {list(TRAIN_KEYS)}"
        )


def _expand_data_paths(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    # data.train / data.eval are local files unless they name splits of a Hub dataset.
    keys = ["cache_dir"] if data.get("dataset") else ["train", "eval", "cache_dir"]
    for key in keys:
        if isinstance(data.get(key), str):
            data[key] = local_path(data[key], f"data.{key}")
    transfer = data.get("transfer")
    if isinstance(transfer, Mapping) and isinstance(transfer.get("files"), list):
        data["transfer"] = {**transfer, "files": [
            local_path(path, f"data.transfer.files[{i}]") if isinstance(path, str) else path
            for i, path in enumerate(transfer["files"])]}
    return data


def _default_output_dir(source: str | None) -> str:
    if source is None:
        raise ConfigError("missing required key(s): output.dir (there is no recipe file "
                          "name to derive runs/<name> from)")
    return f"runs/{Path(source).stem}"


def _normalize_model_refs(section: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``section`` with the model reference(s) under ``key`` normalised."""
    section = dict(section)
    where = f"{'teacher' if key == 'model' else 'student'}.{key}"
    value = section.get(key)
    if isinstance(value, str):
        section[key] = normalize_model_ref(value, where)
    elif isinstance(value, (list, tuple)):
        section[key] = [normalize_model_ref(m, f"{where}[{i}]") if isinstance(m, str) else m
                        for i, m in enumerate(value)]
    return section


def recipe_from_dict(raw: Mapping[str, Any], *, source: str | None = None) -> Recipe:
    """Validate a recipe given as plain data (a parsed YAML file).

    Keys of the older schema are rewritten first (:mod:`textdistill.migrate`); the
    recipe's ``notes`` say which.

    Args:
        raw: the recipe's sections.
        source: the recipe file's path; names the default ``output.dir``.

    Raises:
        ConfigError: naming the key path (and, for unknown keys, the valid keys).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"recipe: expected a mapping of sections {list(SECTIONS)}, "
                          f"got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"valid keys: {list(SECTIONS)}")
    for name in SECTIONS:
        _section(raw, name)
    raw, notes = migrate_recipe(raw)
    missing = [name for name in ("student", "data") if _section(raw, name) is None]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(missing)}")

    teacher_raw = _section(raw, "teacher")
    teacher = None if teacher_raw is None else from_dict(
        TeacherSpec, _normalize_model_refs(teacher_raw, "model"), "teacher")
    student = from_dict(StudentSpec, _normalize_model_refs(_section(raw, "student"),
                                                           "pretrained"), "student")
    data = from_dict(DataConfig, _expand_data_paths(_section(raw, "data")), "data")
    distill = from_dict(DistillationConfig, _section(raw, "distill") or {}, "distill")

    output = from_dict(OutputSpec, dict(_section(raw, "output") or {}), "output")
    out_dir = output.dir if output.dir is not None else _default_output_dir(source)
    output = dataclasses.replace(output, dir=local_path(out_dir, "output.dir"))

    train_raw = dict(_section(raw, "train") or {})
    _check_train_keys(train_raw)
    if isinstance(train_raw.get("teacher_cache"), str):
        train_raw["teacher_cache"] = local_path(train_raw["teacher_cache"],
                                                 "train.teacher_cache")
    train = from_dict(TrainingConfig, {**train_raw, "output_dir": output.dir}, "train")

    kind = student.kind
    if kind in ("from_teacher", "config") and teacher is None:
        raise ConfigError(f"student.{kind}: builds the student from the teacher's "
                          "architecture; add a teacher section (teacher.model)")
    return Recipe(teacher=teacher, student=student, data=data, distill=distill, train=train,
                  output=output, source=source, notes=tuple(notes))


# ------------------------------------------------------------------------------- yaml


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error:
    plain YAML keeps the last value, so an edited recipe could silently lose a setting."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (lines {seen[key]} "
                    f"and {line}); keep one", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass


# -------------------------------------------------------------------------- overrides

# What each top-level section validates into, for checking override paths.
_SCHEMA: dict[str, type] = {"teacher": TeacherSpec, "student": StudentSpec, "data": DataConfig,
                            "distill": DistillationConfig, "train": TrainingConfig,
                            "output": OutputSpec}


def _recipe_fields(cls: type, path: str) -> dict[str, Any]:
    fields = init_fields(cls)
    if cls is TrainingConfig and path == "train":
        fields = {k: v for k, v in fields.items() if k not in _TRAIN_ELSEWHERE}
    return fields


def check_key_path(key: str) -> None:
    """Check that a dotted override key (``train.lr``) exists in the recipe schema.

    A key of the older schema passes when :mod:`textdistill.migrate` rewrites it.

    Raises:
        ConfigError: naming the first unknown part and the valid keys at that level.
    """
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"--set {key}: empty part in the key path; write e.g. train.lr=3e-5")
    if parts[0] not in _SCHEMA:
        raise ConfigError(f"--set {key}: unknown key {parts[0]}; valid keys: {list(SECTIONS)}")
    if migrated_key(key):
        return
    if parts[0] == "train" and len(parts) > 1 and parts[1] in _TRAIN_ELSEWHERE:
        raise ConfigError(f"--set {key}: train.{parts[1]} is not a recipe key; "
                          f"{_TRAIN_ELSEWHERE[parts[1]]}")
    try:
        field_type_at(_SCHEMA[parts[0]], parts[1:], parts[0], _recipe_fields)
    except ConfigError as err:
        raise ConfigError(f"--set {key}: {err}") from None


def parse_override(item: str) -> tuple[str, Any]:
    """``"train.lr=3e-5"`` -> ``("train.lr", "3e-5")``; values are parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=3e-5")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = _load_yaml(text) if text.strip() else None
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"--set {key}: cannot parse value {text!r} as YAML ({detail})") \
            from None
    return key, value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``KEY=VALUE`` overrides applied (``raw`` is not changed).

    Values are YAML (``3e-5``, ``true``, ``[0, 2, 4]``, ``null``); missing intermediate
    sections are created. Every key path is checked against the recipe schema first.

    Raises:
        ConfigError: a malformed item or an unknown key path (naming the valid keys).
    """
    result: dict[str, Any] = copy.deepcopy(dict(raw)) if raw else {}
    for item in overrides:
        key, value = parse_override(item)
        check_key_path(key)
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, Mapping):
                if child is not None:
                    where = ".".join(parts[: depth + 1])
                    raise ConfigError(f"--set {key}: {where} holds {child!r}, not a section")
                child = {}
            node[part] = dict(child)
            node = node[part]
        node[parts[-1]] = value
    return result


# ------------------------------------------------------------------------------ files


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed YAML of a recipe file (an empty file is an empty recipe).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is not valid YAML or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe not found: {path}")
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of sections {list(SECTIONS)}, got "
                          f"{type(raw).__name__}")
    return dict(raw)


def load_recipe(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Recipe:
    """Read, override and validate the recipe file ``path``.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML, a bad override or an invalid recipe.
    """
    raw = apply_overrides(read_recipe_file(path), overrides)
    return recipe_from_dict(raw, source=str(path))


__all__ = [
    "SECTIONS",
    "Recipe",
    "apply_overrides",
    "check_key_path",
    "load_recipe",
    "parse_override",
    "read_recipe_file",
    "recipe_from_dict",
]
