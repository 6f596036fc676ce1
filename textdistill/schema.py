"""Plain data <-> typed config dataclasses, in one place.

Every config class of textdistill (the engine's :class:`~textdistill.config.TrainingConfig`
as much as a recipe's sections) is a dataclass whose fields carry their help text in
``metadata={"help": ...}``, as peft's configs do. This module is the only code that walks
their type annotations:

* :func:`from_dict` builds a dataclass from a mapping (a parsed YAML section), checking
  each value against its annotation and rejecting unknown keys by name;
* :func:`plain_data` turns a config back into YAML/JSON-safe builtins;
* :func:`field_type_at` follows a dotted key path (``train.lr``) through the classes, for
  ``--set`` overrides;
* :func:`settings` lists every field with its type, default and help, for documentation
  and for counting settings;
* :func:`check_choice` and :func:`check_number` are the shared value checks.

A config class may declare ``_section`` (the key path its own ``__post_init__`` messages
start with; :func:`from_dict` rewrites it to the real path) and ``_from_scalar`` (a
classmethod building it from a bare value, e.g. a preset name or a constant number).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union

from .errors import ConfigError


def check_choice(path: str, value: Any, valid: Iterable[Any]) -> None:
    """Raise a :class:`ConfigError` naming ``path`` unless ``value`` is one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{path}: {value!r} is not valid; choose one of {valid}")


def check_number(path: str, value: float | int | None, *, minimum: float = 0.0,
                 allow_minimum: bool = False) -> None:
    """``value`` (when not ``None``) must be finite and above ``minimum`` (or equal to it
    with ``allow_minimum``)."""
    if value is None:
        return
    # A string would fail the comparison below with a bare TypeError.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: must be a finite number, got {value!r}")
    if value < minimum or (value == minimum and not allow_minimum):
        bound = f">= {minimum:g}" if allow_minimum else f"> {minimum:g}"
        raise ConfigError(f"{path}: must be {bound}, got {value!r}")


def help_text(cls: type, name: str) -> str:
    """The help text of field ``name`` of config class ``cls`` ("" when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


def init_fields(cls: type) -> dict[str, Any]:
    """``name -> resolved annotation`` of the fields ``cls(...)`` takes."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else None


def _shape_fits(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is list:
        return isinstance(value, (list, tuple))
    if _is_config(tp):
        # A config with _from_scalar also reads a bare value (a preset name, a number).
        return isinstance(value, Mapping) or (hasattr(tp, "_from_scalar")
                                              and not isinstance(value, (list, tuple)))
    if origin is dict:
        return isinstance(value, Mapping)
    return isinstance(tp, type) and isinstance(value, tp)


def _coerce_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML reads 3e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value!r}")
        return float(value)
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def coerce(tp: Any, value: Any, path: str) -> Any:
    """``value`` checked against the annotation ``tp``, nested configs built.

    Raises:
        ConfigError: naming ``path`` and what was expected.
    """
    args = _union_args(tp)
    if args is not None:
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: may not be null")
        # Report the error of the alternative shaped like the value (a list value
        # against list[Match]), not a generic "fits none".
        candidates = sorted((a for a in args if a is not type(None)),
                            key=lambda a: not _shape_fits(a, value))
        first_error = None
        for arg in candidates:
            try:
                return coerce(arg, value, path)
            except ConfigError as err:
                first_error = first_error or err
        raise first_error
    if value is None:
        raise ConfigError(f"{path}: may not be null")
    origin = typing.get_origin(tp)
    if origin is Literal:
        check_choice(path, value, typing.get_args(tp))
        return value
    if _is_config(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(tp, value, path)
        from_scalar = getattr(tp, "_from_scalar", None)
        if from_scalar is not None:
            return _with_path(path, tp, lambda: from_scalar(value))
        raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    return _coerce_scalar(tp, value, path)


def _with_path(path: str, cls: type, make: typing.Callable[[], Any]) -> Any:
    """``make()``, with a ``ConfigError`` from ``cls.__post_init__`` re-rooted at ``path``.

    Messages from ``__post_init__`` start with the class's own ``_section``; the caller
    knows the real key path ("distill.matches[2].feature", not "match.feature").
    """
    try:
        return make()
    except ConfigError as err:
        section = getattr(cls, "_section", None)
        message = str(err)
        if path and section and message.startswith(section + ".") and path != section:
            raise ConfigError(path + message[len(section):]) from None
        if path and section and message.startswith(section + ":") and path != section:
            raise ConfigError(path + message[len(section):]) from None
        raise


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Build config dataclass ``cls`` from ``data``, rejecting unknown keys by name.

    Raises:
        ConfigError: naming the full key path, and for unknown keys, the valid keys.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {data!r}")
    fields = init_fields(cls)
    where = f"{path}." if path else ""
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(where + k for k in unknown)}; valid keys: {sorted(fields)}"
        )
    kwargs = {name: coerce(fields[name], value, where + name) for name, value in data.items()}
    required = [f.name for f in dataclasses.fields(cls) if f.init
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(where + m for m in missing)}")
    return _with_path(path, cls, lambda: cls(**kwargs))


def plain_data(value: Any) -> Any:
    """``value`` as YAML/JSON-safe builtins.

    Configs become dicts of their init fields (or what their ``_to_plain()`` returns),
    tuples and sets become lists, numpy/torch scalars become numbers, anything else
    (paths, enums) becomes its string.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_plain = getattr(value, "_to_plain", None)
        if to_plain is not None:
            return plain_data(to_plain())
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.init}
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def configs_in(tp: Any) -> list[type]:
    """The config classes a field of type ``tp`` may hold (through unions and lists)."""
    if _is_config(tp):
        return [tp]
    args = _union_args(tp)
    if args is None and typing.get_origin(tp) is list:
        args = typing.get_args(tp)
    return [config for arg in args or () for config in configs_in(arg)]


def _is_free_mapping(tp: Any) -> bool:
    if tp is dict or typing.get_origin(tp) is dict:
        return True
    return any(_is_free_mapping(a) for a in _union_args(tp) or ())


def field_type_at(cls: type, parts: list[str], root: str,
                  fields_of: typing.Callable[[type, str], dict[str, Any]] = lambda c, p:
                  init_fields(c)) -> Any:
    """The annotation at dotted path ``root.parts`` below config class ``cls``.

    A free-form mapping (such as ``distill.logit_loss_options``) accepts any key below
    it; the result is then ``Any``. ``fields_of(cls, path)`` may narrow the fields a
    recipe exposes at ``path``.

    Raises:
        ConfigError: naming the first unknown part and the valid keys at that level.
    """
    path, tp = root, cls
    for part in parts:
        configs = configs_in(tp)
        if not configs:
            if _is_free_mapping(tp):
                return Any
            raise ConfigError(f"{path} is a value, not a section; write {path}=VALUE")
        fields: dict[str, Any] = {}
        for config in reversed(configs):
            fields.update(fields_of(config, path))
        if part not in fields:
            raise ConfigError(f"unknown key {path}.{part}; valid keys: {sorted(fields)}")
        path, tp = f"{path}.{part}", fields[part]
    return tp


def settings(cls: type, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
    """``(key path, annotation, default, help)`` of every setting below ``cls``.

    Nested config classes are expanded (their own fields are the settings); list- and
    union-typed fields that may hold configs (``distill.matches``) list those configs'
    fields under ``key[]``.
    """
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = init_fields(cls)[f.name]
        key = f"{prefix}{f.name}"
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append((key, tp, default, f.metadata.get("help", "")))
        listed = typing.get_origin(tp) is list or any(
            typing.get_origin(a) is list for a in _union_args(tp) or ())
        for nested in configs_in(tp):
            if nested is not cls:
                in_list = listed and nested in [a for arg in _union_args(tp) or (tp,)
                                                for a in typing.get_args(arg)]
                rows.extend(settings(nested, key + ("[]." if in_list else ".")))
    return rows


__all__ = [
    "check_choice",
    "check_number",
    "coerce",
    "configs_in",
    "field_type_at",
    "from_dict",
    "help_text",
    "init_fields",
    "plain_data",
    "settings",
]
