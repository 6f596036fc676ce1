"""Learned maps from the student's hidden width to a teacher's.

A hidden-state loss like MSE compares tensors element-wise, so a 384-wide student
cannot match a 768-wide teacher directly; a :class:`Projection` per match maps the
student's states up first (TinyBERT's ``W_h``). The projections train with the student
(their own optimizer group) and are saved next to it, so a run can resume.

* :class:`Projection` - one ``(..., in) -> (..., out)`` map.
* :func:`build_projections` - the projections a list of matches needs.
* :func:`save_projections` / :func:`load_projections` - an exact round trip through
  ``projections.safetensors`` + ``projections.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..config import PROJECTION_INITS, PROJECTIONS, Match
from ..errors import ConfigError
from ..permissions import with_usual_permissions

WEIGHTS_NAME = "projections.safetensors"
SPECS_NAME = "projections.json"

# Losses that compare the student and teacher at different widths (MMD compares
# token-similarity structure, not the features themselves), so a width mismatch alone
# does not call for a projection.
CROSS_WIDTH_LOSSES = {"hidden_mmd"}

_ACTIVATIONS = {
    "linear": None,
    "linear+relu": torch.nn.ReLU,
    "linear+tanh": torch.nn.Tanh,
}


class Projection(torch.nn.Module):
    """``y = act(x W^T + b)``: maps ``(..., in_features)`` to ``(..., out_features)``.

    Args:
        in_features: the student's hidden width.
        out_features: the teacher's hidden width.
        kind: ``linear``, ``linear+relu`` or ``linear+tanh``.
        init: ``xavier`` (xavier-uniform weight), ``normal`` (std 0.02), ``identity``
            (ones on the diagonal of the overlapping ``min(in, out)`` block, zeros
            elsewhere) or ``zeros``. The bias always starts at zero.
    """

    def __init__(self, in_features: int, out_features: int, kind: str = "linear",
                 init: str = "xavier"):
        super().__init__()
        if kind not in PROJECTIONS:
            raise ConfigError(f"projection: {kind!r} is not valid; choose one of "
                              f"{list(PROJECTIONS)}")
        if init not in PROJECTION_INITS:
            raise ConfigError(f"projection_init: {init!r} is not valid; choose one of "
                              f"{list(PROJECTION_INITS)}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.kind = kind
        self.init = init
        self.linear = torch.nn.Linear(self.in_features, self.out_features)
        activation = _ACTIVATIONS[kind]
        self.activation = activation() if activation is not None else torch.nn.Identity()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        weight = self.linear.weight  # (out_features, in_features)
        if self.init == "xavier":
            torch.nn.init.xavier_uniform_(weight)
        elif self.init == "normal":
            torch.nn.init.normal_(weight, mean=0.0, std=0.02)
        elif self.init == "identity":
            # eye_ fills the diagonal of a rectangular matrix too: the first min(in, out)
            # features pass through unchanged.
            torch.nn.init.eye_(weight)
        else:
            torch.nn.init.zeros_(weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (..., in_features) -> (..., out_features)."""
        return self.activation(self.linear(x))

    def spec(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able; ``Projection(**spec)`` rebuilds it."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "kind": self.kind, "init": self.init}

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, init={self.init!r}"


def build_projections(
    matches: Sequence[Match],
    student_hidden_size: int,
    teacher_hidden_sizes: Sequence[int],
) -> torch.nn.ModuleDict:
    """The projections ``matches`` need, keyed by ``match.name``.

    A ``hidden`` match gets one when ``match.projection`` is set (that kind, with
    ``match.projection_init``), or, when it is ``None``, when the student's width differs
    from teacher ``match.teacher_index``'s and the loss compares equal widths (anything
    outside :data:`CROSS_WIDTH_LOSSES`); the latter gets a ``linear`` one. Attention maps
    are ``(B, heads, T, T)`` whatever the width, so attention matches never get one.

    Args:
        matches: the resolved matches.
        student_hidden_size: the student's hidden width.
        teacher_hidden_sizes: one hidden width per teacher.

    Raises:
        ConfigError: a match naming a teacher that does not exist, or two matches with
            the same name asking for different projections.
    """
    teacher_hidden_sizes = list(teacher_hidden_sizes)
    projections = torch.nn.ModuleDict()
    for match in matches:
        if match.feature != "hidden":
            continue
        if not 0 <= match.teacher_index < len(teacher_hidden_sizes):
            raise ConfigError(
                f"match {match.name}: teacher_index {match.teacher_index} but only "
                f"{len(teacher_hidden_sizes)} teacher hidden size(s) were given"
            )
        teacher_width = teacher_hidden_sizes[match.teacher_index]
        if match.projection is not None:
            kind = match.projection
        elif student_hidden_size != teacher_width and match.loss not in CROSS_WIDTH_LOSSES:
            kind = "linear"
        else:
            continue
        projection = Projection(student_hidden_size, teacher_width, kind=kind,
                                init=match.projection_init)
        existing = projections[match.name] if match.name in projections else None
        if existing is not None:
            # A match listed twice asks for one module.
            if existing.spec() != projection.spec():
                raise ConfigError(
                    f"match {match.name}: conflicting projections {existing.spec()} and "
                    f"{projection.spec()} for the same layers"
                )
            continue
        projections[match.name] = projection
    return projections


def save_projections(projections: torch.nn.ModuleDict, directory: str | Path) -> None:
    """Write ``projections.safetensors`` (weights) and ``projections.json`` (specs).

    Args:
        projections: ``name -> Projection``, as from :func:`build_projections`.
        directory: created if missing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specs = {}
    for name, module in projections.items():
        if not isinstance(module, Projection):
            raise TypeError(f"projection {name!r} is a {type(module).__name__}, not a "
                            "Projection; only Projection modules can be saved")
        specs[name] = module.spec()
    # safetensors refuses non-contiguous and shared tensors; detach/cpu copies avoid both.
    state = {k: v.detach().cpu().contiguous() for k, v in projections.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    with_usual_permissions(directory / WEIGHTS_NAME)
    (directory / SPECS_NAME).write_text(json.dumps(specs, indent=2) + "\n")


def load_projections(directory: str | Path,
                     device: str | torch.device = "cpu") -> torch.nn.ModuleDict:
    """Rebuild the projections :func:`save_projections` wrote to ``directory``.

    Raises:
        FileNotFoundError: ``directory`` lacks either file.
    """
    directory = Path(directory)
    specs = json.loads((directory / SPECS_NAME).read_text())
    projections = torch.nn.ModuleDict(
        {name: Projection(**spec) for name, spec in specs.items()}
    )
    state = load_file(str(directory / WEIGHTS_NAME), device=str(device))
    for name, module in projections.items():
        # Keep the saved dtype (e.g. bf16 projections) rather than the float32 default.
        weight = state.get(f"{name}.linear.weight")
        if weight is not None:
            module.to(weight.dtype)
    projections.load_state_dict(state, strict=True)
    return projections.to(device)
