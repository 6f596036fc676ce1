"""Which student layer learns from which teacher layer.

Layers are numbered as in ``output_hidden_states``: 0 is the embedding output and ``l``
(1-based) is the output of transformer block ``l``. A student with ``M`` blocks therefore
has hidden states ``0..M`` and attention maps ``1..M`` (attention maps use the last layer
of each block; hidden states include the embeddings).

* :func:`layer_pairs` turns a preset name or an explicit list into ``(student, teacher)``
  layer pairs.
* :func:`matches_from_mapping` turns those pairs into :class:`~textdistill.config.Match`
  objects (hidden and/or attention).
* :func:`mapping_table` renders matches as a fixed-width table for ``textdistill check``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import DEFAULT_FEATURE_LOSS, FEATURES, PRESETS, PROJECTION_INITS, PROJECTIONS, Match
from ..errors import ConfigError


def _is_int(value: Any) -> bool:
    # bool is an int subclass; True as a layer index is always a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_layer_count(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"mapping: {name} must be an int >= 1, got {value!r}")


def _check_pair(index: int, pair: tuple[Any, Any], num_student: int, num_teacher: int) -> None:
    student, teacher = pair
    if not _is_int(student) or not 0 <= student <= num_student:
        raise ConfigError(
            f"mapping[{index}]: student layer {student!r} is out of range; valid student "
            f"layers are 0..{num_student} (0 = embeddings)"
        )
    if not _is_int(teacher) or not 0 <= teacher <= num_teacher:
        raise ConfigError(
            f"mapping[{index}]: teacher layer {teacher!r} (for student layer {student}) is out "
            f"of range; valid teacher layers are 0..{num_teacher} (0 = embeddings)"
        )


def _explicit_pairs(
    mapping: Sequence[Any], num_student: int, num_teacher: int
) -> list[tuple[int, int]]:
    entries = list(mapping)
    if not entries:
        raise ConfigError("mapping: an explicit mapping must not be empty")
    is_pair = [isinstance(e, (list, tuple)) for e in entries]
    if all(is_pair):
        for i, entry in enumerate(entries):
            if len(entry) != 2:
                raise ConfigError(
                    f"mapping[{i}]: expected a [student_layer, teacher_layer] pair, got {entry!r}"
                )
        pairs = [(e[0], e[1]) for e in entries]
    elif any(is_pair):
        bad = is_pair.index(False) if is_pair[0] else is_pair.index(True)
        raise ConfigError(
            f"mapping[{bad}]: {entries[bad]!r} mixes forms; use either a list of teacher "
            "layers or a list of [student_layer, teacher_layer] pairs"
        )
    elif len(entries) == num_student:
        pairs = [(0, 0), *zip(range(1, num_student + 1), entries, strict=True)]
    elif len(entries) == num_student + 1:
        pairs = list(zip(range(num_student + 1), entries, strict=True))
    else:
        raise ConfigError(
            f"mapping: a list of teacher layers needs {num_student} entries (student layers "
            f"1..{num_student}) or {num_student + 1} (layers 0..{num_student}), got "
            f"{len(entries)}: {entries!r}"
        )
    # The [M ints] form prepends (0, 0), so shift its error index back to the user's list.
    offset = 1 if len(pairs) == len(entries) + 1 else 0
    seen: dict[tuple[int, int], int] = {}
    for i, pair in enumerate(pairs):
        user_index = i - offset
        _check_pair(user_index, pair, num_student, num_teacher)
        if pair in seen:
            raise ConfigError(
                f"mapping[{user_index}]: pair {list(pair)} repeats entry {seen[pair]}"
            )
        seen[pair] = user_index
    return pairs


def layer_pairs(
    mapping: str | Sequence[Any],
    num_student_layers: int,
    num_teacher_layers: int,
    *,
    every: int | None = None,
) -> list[tuple[int, int]]:
    """``(student_layer, teacher_layer)`` pairs for a mapping preset or explicit list.

    With ``M = num_student_layers`` and ``N = num_teacher_layers``:

    * ``"uniform"``: TinyBERT's ``g(m) = m * N / M`` for ``m = 0..M``. When ``N`` is not a
      multiple of ``M`` the division rounds down (``m * N // M``), so the last student
      layer still maps to the last teacher layer. Needs ``N >= M``.
    * ``"last"``: only ``[(M, N)]``.
    * ``"skip"``: every ``k``-th teacher layer, ``(m, m * k)`` for ``m = 0..M`` with
      ``k = every`` or ``N // M``; needs ``M * k <= N``.
    * a list of ``M`` ints: the teacher layer of student layers ``1..M`` (``(0, 0)`` is
      prepended); a list of ``M + 1`` ints: teacher layers for student layers ``0..M``; or
      a list of ``[student_layer, teacher_layer]`` pairs, used as given.

    Args:
        mapping: a preset name or an explicit list (see above).
        num_student_layers: ``M``, the student's number of transformer blocks.
        num_teacher_layers: ``N``, the teacher's number of transformer blocks.
        every: the stride ``k`` of ``"skip"`` (ignored by the other mappings).

    Returns:
        The pairs, embeddings ``(0, 0)`` first for every form except ``"last"`` and pair
        lists that leave it out.

    Raises:
        ConfigError: an unknown preset, a teacher too shallow for the preset, or an
            explicit entry out of range (the message names the entry and the valid range).
    """
    _check_layer_count("num_student_layers", num_student_layers)
    _check_layer_count("num_teacher_layers", num_teacher_layers)
    m_layers, n_layers = num_student_layers, num_teacher_layers

    if isinstance(mapping, str):
        if mapping == "uniform":
            if n_layers < m_layers:
                raise ConfigError(
                    f"mapping 'uniform': the teacher ({n_layers} layers) must have at least as "
                    f"many layers as the student ({m_layers}); use an explicit list instead"
                )
            return [(m, m * n_layers // m_layers) for m in range(m_layers + 1)]
        if mapping == "last":
            return [(m_layers, n_layers)]
        if mapping == "skip":
            if every is not None and (not _is_int(every) or every < 1):
                raise ConfigError(f"mapping 'skip': every must be an int >= 1, got {every!r}")
            stride = every if every is not None else n_layers // m_layers
            if stride < 1 or m_layers * stride > n_layers:
                raise ConfigError(
                    f"mapping 'skip': student layer {m_layers} x every {stride} = "
                    f"{m_layers * stride} exceeds the teacher's {n_layers} layers"
                )
            return [(m, m * stride) for m in range(m_layers + 1)]
        raise ConfigError(
            f"mapping: {mapping!r} is not valid; choose one of {list(PRESETS)} or give an "
            "explicit list"
        )
    if isinstance(mapping, Mapping) or not isinstance(mapping, Sequence):
        raise ConfigError(
            f"mapping: expected a preset name or a list, got {type(mapping).__name__}"
        )
    return _explicit_pairs(mapping, m_layers, n_layers)


def matches_from_mapping(
    mapping: str | Sequence[Any],
    num_student_layers: int,
    num_teacher_layers: int,
    *,
    losses: Mapping[str, str] = DEFAULT_FEATURE_LOSS,
    projection: str | None = None,
    projection_init: str = "xavier",
    every: int | None = None,
    teacher_index: int = 0,
    weight: float = 1.0,
) -> list[Match]:
    """Expand a mapping into :class:`~textdistill.config.Match` objects.

    Every pair from :func:`layer_pairs` gets a ``hidden`` match; pairs whose two layers
    are both >= 1 also get an ``attention`` match (embeddings have no attention map).
    For each pair the hidden match comes first.

    Args:
        mapping / num_student_layers / num_teacher_layers / every: see :func:`layer_pairs`.
        losses: feature (``"hidden"``, ``"attention"``) -> registered loss; only the
            features named here get matches.
        projection / projection_init: set on hidden matches only (see
            :attr:`~textdistill.config.Match.projection`).
        teacher_index: the teacher these matches read from.
        weight: the weight of every match.

    Raises:
        ConfigError: a bad mapping (see :func:`layer_pairs`) or an unknown feature.
    """
    for feature in losses:
        if feature not in FEATURES:
            raise ConfigError(
                f"features: {feature!r} is not valid; choose from {list(FEATURES)}"
            )
    if projection is not None and projection not in PROJECTIONS:
        raise ConfigError(
            f"projection: {projection!r} is not valid; choose one of {list(PROJECTIONS)}"
        )
    if projection_init not in PROJECTION_INITS:
        raise ConfigError(
            f"projection_init: {projection_init!r} is not valid; choose one of "
            f"{list(PROJECTION_INITS)}"
        )
    matches: list[Match] = []
    for student, teacher in layer_pairs(mapping, num_student_layers, num_teacher_layers,
                                        every=every):
        if "hidden" in losses:
            matches.append(Match("hidden", student, teacher, loss=losses["hidden"],
                                 weight=weight, projection=projection,
                                 projection_init=projection_init, teacher_index=teacher_index))
        if "attention" in losses and student >= 1 and teacher >= 1:
            matches.append(Match("attention", student, teacher, loss=losses["attention"],
                                 weight=weight, teacher_index=teacher_index))
    return matches


def _projection_cell(match: Match, projections: Mapping[str, Any] | None) -> str:
    if match.feature != "hidden":
        return "-"
    if projections is not None and match.name in projections:
        module = projections[match.name]
        kind = getattr(module, "kind", type(module).__name__)
        width = ""
        if hasattr(module, "in_features") and hasattr(module, "out_features"):
            width = f" {module.in_features}->{module.out_features}"
        auto = "" if match.projection is not None else " (auto)"
        return f"{kind}{width}{auto}"
    if match.projection is not None:
        return match.projection
    return "-"


def mapping_table(
    matches: Sequence[Match], projections: Mapping[str, Any] | None = None
) -> str:
    """A fixed-width text table of ``matches``, one row each, for ``textdistill check``.

    Columns: feature, student layer, teacher layer, loss, weight, projection (and the
    teacher index when any match reads from a teacher other than the first).

    Args:
        matches: the matches to show, in order.
        projections: optional ``match.name -> module`` (from ``build_projections``); when
            given the projection column shows what was actually built, including
            projections added automatically for differing widths.
    """
    if not matches:
        return "(no intermediate matches)"
    multi_teacher = any(m.teacher_index for m in matches)
    header = ["feature", "student", "teacher", "loss", "weight", "projection"]
    if multi_teacher:
        header.insert(3, "t_index")
    rows = []
    for match in matches:
        row = [match.feature, str(match.student_layer), str(match.teacher_layer),
               str(match.loss), f"{match.weight:g}", _projection_cell(match, projections)]
        if multi_teacher:
            row.insert(3, str(match.teacher_index))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {"student", "teacher", "t_index", "weight"}

    def fmt(row: list[str]) -> str:
        cells = [
            cell.rjust(w) if name in numeric else cell.ljust(w)
            for cell, w, name in zip(row, widths, header, strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])
