"""Typed, validated configuration for the distillation engine.

Three dataclasses make the public API:

* :class:`Match` - one intermediate-layer match (hidden state or attention map).
* :class:`DistillationConfig` - everything the losses need: temperature, weights and
  their schedules, the logit loss, and the intermediate matches.
* :class:`TrainingConfig` - everything the loop needs: optimisation, precision,
  cadence of eval/save/log, batching and caching.

Every class validates itself in ``__post_init__`` and builds from plain dicts (YAML)
with :func:`from_dict`, which rejects unknown keys and names the valid ones. The
engine never mutates a config; it derives new values (``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from .errors import ConfigError
from .schedules import Schedule


def _choices(path: str, value: Any, valid: typing.Iterable[Any]) -> None:
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{path}: {value!r} is not valid; choose one of {valid}")


def _positive(path: str, value: float | int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{path}: must be {bound}, got {value!r}")


FEATURES = ("hidden", "attention")
PROJECTIONS = ("linear", "linear+relu", "linear+tanh")
PROJECTION_INITS = ("xavier", "normal", "identity", "zeros")
DEFAULT_FEATURE_LOSS = {"hidden": "hidden_mse", "attention": "attention_mse"}


@dataclass
class Match:
    """One intermediate match between a student layer and a teacher layer.

    Layers are numbered as in ``output_hidden_states``: 0 is the embedding output and
    ``l`` (1-based) is the output of transformer block ``l``. For ``attention`` the
    layer must be >= 1, and the map is the one computed inside block ``l``.

    Attributes:
        feature: ``"hidden"`` or ``"attention"``.
        student_layer: student layer index (see above).
        teacher_layer: teacher layer index (see above).
        loss: registered loss name; defaults to ``hidden_mse`` / ``attention_mse``.
        weight: multiplier on this match's loss.
        projection: ``linear``, ``linear+relu`` or ``linear+tanh`` to map the student's
            hidden width to the teacher's; ``None`` when widths agree (or for losses,
            like ``hidden_mmd``, that compare across widths).
        projection_init: initialisation of the projection weights.
        teacher_index: which teacher this match reads from (multi-teacher runs).
    """

    _section: typing.ClassVar[str] = "match"

    feature: Literal["hidden", "attention"]
    student_layer: int
    teacher_layer: int
    loss: str | None = None
    weight: float = 1.0
    projection: str | None = None
    projection_init: str = "xavier"
    teacher_index: int = 0

    def __post_init__(self) -> None:
        _choices("match.feature", self.feature, FEATURES)
        if self.loss is None:
            self.loss = DEFAULT_FEATURE_LOSS[self.feature]
        minimum = 1 if self.feature == "attention" else 0
        for name in ("student_layer", "teacher_layer"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < minimum:
                raise ConfigError(
                    f"match.{name}: must be an int >= {minimum} for feature "
                    f"{self.feature!r}, got {value!r}"
                )
        _positive("match.weight", self.weight, allow_zero=True)
        if self.projection is not None:
            _choices("match.projection", self.projection, PROJECTIONS)
        _choices("match.projection_init", self.projection_init, PROJECTION_INITS)
        _positive("match.teacher_index", self.teacher_index, allow_zero=True)

    @property
    def name(self) -> str:
        """Stable key used for logging and for the projection's parameters."""
        suffix = f"_t{self.teacher_index}" if self.teacher_index else ""
        return f"{self.feature}_s{self.student_layer}_t{self.teacher_layer}{suffix}"


@dataclass
class DistillationConfig:
    """What the student learns from, and how much of each.

    The per-batch loss is::

        soft_weight(p) * logit_loss(student, teacher, T(p))
      + hard_weight(p) * cross_entropy(student, labels)
      + intermediate_weight(p) * sum_i match_i.weight * match_i.loss(...)

    where ``p`` in [0, 1] is training progress and each weight/temperature follows
    its schedule (``Schedule(kind, end)``; ``end=None`` keeps the start value).

    The default weights are those of the SST-2 benchmark (``make bench``,
    docs/benchmarks.md): ``kd_kl`` at T=2 with the gold labels at half weight, and any
    intermediate matches at 0.1, because matches on raw hidden-state and attention MSE
    starting at weight 1 lost accuracy there. The benchmark also fades the matches to 0
    (``intermediate_weight_schedule=Schedule("linear", end=0.0)``); that is a recipe
    choice, not a default, since it was not measured against a constant weight.

    Attributes:
        temperature: softmax temperature T for the logit loss.
        logit_loss: registered logit loss (``kd_kl``, ``kd_ce``, ``kd_mse``, ``dkd``),
            or ``None`` for plain supervised training.
        logit_loss_options: extra keyword options for the logit loss (``dkd``:
            ``alpha``, ``beta``, and ``unlabeled``: ``teacher`` or ``exclude``, what rows
            without a gold label do, e.g. augmented transfer-set sentences).
        matches: a list of :class:`Match`, or a mapping preset name (``uniform``,
            ``last``, ``skip``) expanded against the two models' layer counts.
        preset_features / hidden_loss / attention_loss / projection: how a preset
            name expands into matches.
        probability_shift: swap the teacher's top class with the gold class when the
            teacher is wrong, before the soft loss sees it.
        teacher_weights: per-teacher weights for multi-teacher runs (normalised);
            ``None`` averages the teachers' logits.
    """

    _section: typing.ClassVar[str] = "distill"

    temperature: float = 2.0
    temperature_schedule: Schedule = field(default_factory=Schedule)
    logit_loss: str | None = "kd_kl"
    logit_loss_options: dict = field(default_factory=dict)
    soft_weight: float = 1.0
    soft_weight_schedule: Schedule = field(default_factory=Schedule)
    hard_weight: float = 0.5
    hard_weight_schedule: Schedule = field(default_factory=Schedule)
    intermediate_weight: float = 0.1
    intermediate_weight_schedule: Schedule = field(default_factory=Schedule)
    matches: list[Match] | str = field(default_factory=list)
    preset_features: list[str] = field(default_factory=lambda: ["hidden", "attention"])
    hidden_loss: str = "hidden_mse"
    attention_loss: str = "attention_mse"
    projection: str | None = "linear"
    skip_every: int | None = None
    probability_shift: bool = False
    teacher_weights: list[float] | None = None

    def __post_init__(self) -> None:
        _positive("distill.temperature", self.temperature)
        for name in ("soft_weight", "hard_weight", "intermediate_weight"):
            _positive(f"distill.{name}", getattr(self, name), allow_zero=True)
        for feature in self.preset_features:
            _choices("distill.preset_features[]", feature, FEATURES)
        if self.projection is not None:
            _choices("distill.projection", self.projection, PROJECTIONS)
        if isinstance(self.matches, str):
            _choices("distill.matches", self.matches, ("uniform", "last", "skip"))
        else:
            self.matches = [
                m if isinstance(m, Match) else from_dict(Match, m, f"distill.matches[{i}]")
                for i, m in enumerate(self.matches)
            ]
        if self.teacher_weights is not None:
            if not self.teacher_weights or any(w < 0 for w in self.teacher_weights):
                raise ConfigError("distill.teacher_weights: need non-negative weights")
            if sum(self.teacher_weights) <= 0:
                raise ConfigError("distill.teacher_weights: weights must not all be zero")

    @property
    def uses_teacher_logits(self) -> bool:
        return self.logit_loss is not None and (
            self.soft_weight > 0 or self.soft_weight_schedule.end not in (None, 0)
        )


SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
PRECISIONS = ("no", "fp16", "bf16")


@dataclass
class TrainingConfig:
    """How the one training loop runs.

    Attributes:
        output_dir: run directory (checkpoints, logs, teacher cache, ``best/``).
        epochs: passes over the training data (ignored when ``max_steps`` is set).
        max_steps: total optimizer steps; overrides ``epochs``.
        batch_size: per-process batch size (global batch = batch_size * processes *
            gradient_accumulation_steps).
        eval_batch_size: per-process batch size for evaluation (default batch_size * 2).
        lr: peak learning rate of the student.
        projection_lr: learning rate of the projection heads (their own optimizer
            group; default ``lr``).
        weight_decay: decoupled weight decay (not applied to biases/LayerNorm).
        warmup_ratio / warmup_steps: linear warm-up (steps win when both are set).
        scheduler: a ``transformers.get_scheduler`` name.
        gradient_accumulation_steps / max_grad_norm / precision / seed: as in
            Accelerate (``precision`` is its ``mixed_precision``). ``seed`` also fixes
            the random initial weights (a new head, a config student, projections).
        eval_steps / save_steps / logging_steps: cadence in optimizer steps;
            ``None`` for eval/save means once per epoch.
        save_total_limit: checkpoints kept on disk (oldest deleted first).
        metric_for_best / greater_is_better / early_stopping_patience: which eval
            metric picks ``best/`` and when to stop (patience counted in evals).
        group_by_length: length-grouped sampling (batches of similar length).
        padding: ``longest`` (dynamic, per batch) or ``max_length``.
        max_length: truncation length, and the padding length for ``max_length``.
        cache_teacher: precompute the teacher's logits once and reuse them every
            epoch; a logit-only run then never calls the teacher's forward.
        teacher_cache_dir: where the teacher-logit cache lives (default
            ``<output_dir>/teacher_cache``). Runs may share one folder: each file is named
            by a fingerprint of the teachers' weights, the training data and the
            truncation length, so a run only ever reads logits of its own teacher and data.
        report_to: Accelerate trackers (``tensorboard``, ``wandb``, ...) or ``[]``.
        progress_bar: show tqdm progress bars (main process only).
    """

    _section: typing.ClassVar[str] = "train"

    output_dir: str = "runs/textdistill"
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    lr: float = 5e-5
    projection_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    scheduler: str = "linear"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    precision: str = "no"
    seed: int = 42
    eval_steps: int | None = None
    save_steps: int | None = None
    logging_steps: int = 50
    save_total_limit: int | None = 2
    metric_for_best: str = "accuracy"
    greater_is_better: bool = True
    early_stopping_patience: int | None = None
    group_by_length: bool = True
    padding: str = "longest"
    max_length: int = 128
    cache_teacher: bool = False
    teacher_cache_dir: str | None = None
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    progress_bar: bool = True

    def __post_init__(self) -> None:
        _positive("train.epochs", self.epochs)
        for name in ("max_steps", "batch_size", "eval_batch_size", "gradient_accumulation_steps",
                     "eval_steps", "save_steps", "logging_steps", "save_total_limit",
                     "early_stopping_patience", "max_length"):
            _positive(f"train.{name}", getattr(self, name))
        _positive("train.lr", self.lr)
        _positive("train.projection_lr", self.projection_lr)
        _positive("train.weight_decay", self.weight_decay, allow_zero=True)
        _positive("train.warmup_steps", self.warmup_steps, allow_zero=True)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio: must be in [0, 1), got {self.warmup_ratio!r}")
        _positive("train.max_grad_norm", self.max_grad_norm)
        _choices("train.scheduler", self.scheduler, SCHEDULERS)
        _choices("train.precision", self.precision, PRECISIONS)
        _choices("train.padding", self.padding, ("longest", "max_length"))
        if isinstance(self.report_to, str):
            self.report_to = [] if self.report_to in ("none", "") else [self.report_to]


# --------------------------------------------------------------------------- building


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _shape_fits(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict or _is_dataclass_type(tp):
        return isinstance(value, Mapping)
    return isinstance(tp, type) and isinstance(value, tp)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: may not be null")
        candidates = [a for a in args if a is not type(None)]
        # Report the error of the alternative shaped like the value (a list value
        # against list[Match]), not a generic "fits none".
        candidates.sort(key=lambda a: not _shape_fits(a, value))
        first_error = None
        for arg in candidates:
            try:
                return _coerce(arg, value, path)
            except ConfigError as err:
                first_error = first_error or err
        raise first_error
    if origin is Literal:
        _choices(path, value, typing.get_args(tp))
        return value
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 3e-5 (no dot) as a string.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys by name.

    Raises:
        ConfigError: naming the full key path, and for unknown keys, the valid keys.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(where + str(k) for k in unknown)}; valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}" if path else name)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        where = f"{path}." if path else ""
        raise ConfigError(f"missing required key(s): {', '.join(where + m for m in missing)}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        # Messages from __post_init__ start with the class's own section name; put the
        # caller's real key path there ("distill.matches[2].feature", not "match.feature").
        section = getattr(cls, "_section", None)
        message = str(err)
        if path and section and message.startswith(section + "."):
            raise ConfigError(path + message[len(section):]) from None
        raise


def plain_data(value: Any) -> Any:
    """``value`` as YAML/JSON-safe builtins.

    Dataclasses (frozen ones too) become dicts of their init fields, tuples and sets
    become lists, numpy/torch scalars become numbers, anything else (paths, enums)
    becomes its string.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
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


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (YAML/JSON-safe) view of a config dataclass."""
    return plain_data(config)
