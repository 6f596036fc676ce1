"""Typed, validated configuration for the distillation engine.

* :class:`Match` - one intermediate-layer match (hidden state or attention map).
* :class:`MatchPreset` - matches expanded from a layer-mapping preset.
* :class:`DistillationConfig` - everything the losses need: temperature, weights (each a
  constant or a :class:`~textdistill.schedules.Schedule`), the logit loss and the matches.
* :class:`TrainingConfig` - everything the loop needs: optimisation, precision, cadence of
  eval/save/log, batching and caching.

Every class validates itself in ``__post_init__``, carries each field's help text in its
metadata, and is frozen: the engine derives new values (``dataclasses.replace``) and never
mutates one. :mod:`textdistill.schema` builds them from plain dicts (YAML).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError
from .metrics import METRIC_KEYS, check_metric_for_best
from .schedules import Schedule, as_schedule
from .schema import check_choice, check_number, from_dict, plain_data

FEATURES = ("hidden", "attention")
PROJECTIONS = ("linear", "linear+relu", "linear+tanh")
PROJECTION_INITS = ("xavier", "normal", "identity", "zeros")
PRESETS = ("uniform", "last", "skip")
DEFAULT_FEATURE_LOSS = {"hidden": "hidden_mse", "attention": "attention_mse"}


def _set(obj: Any, name: str, value: Any) -> None:
    """Normalise a field of a frozen config inside its own ``__post_init__``."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Match:
    """One intermediate match between a student layer and a teacher layer.

    Layers are numbered as in ``output_hidden_states``: 0 is the embedding output and
    ``l`` (1-based) is the output of transformer block ``l``. For ``attention`` the
    layer must be >= 1, and the map is the one computed inside block ``l``.
    """

    _section: typing.ClassVar[str] = "match"

    feature: Literal["hidden", "attention"] = field(metadata={
        "help": "What is matched: `hidden` (hidden states) or `attention` (attention maps)."})
    student_layer: int = field(metadata={
        "help": "Student layer: 0 = embeddings, l = output of block l (attention: >= 1)."})
    teacher_layer: int = field(metadata={
        "help": "Teacher layer, numbered like `student_layer`."})
    loss: str | None = field(default=None, metadata={
        "help": "Registered loss name; null: `hidden_mse` / `attention_mse` by feature."})
    weight: float = field(default=1.0, metadata={
        "help": "Multiplier on this match's loss (inside `distill.intermediate_weight`)."})
    projection: str | None = field(default=None, metadata={
        "help": f"Hidden matches: null adds a `linear` projection only where the student's "
                f"width differs from the teacher's; a kind ({', '.join(PROJECTIONS)}) "
                "always projects the student's states with it."})
    projection_init: str = field(default="xavier", metadata={
        "help": f"Initial projection weights: one of {list(PROJECTION_INITS)}."})
    teacher_index: int = field(default=0, metadata={
        "help": "Which teacher the match reads from (multi-teacher runs; 0-based)."})

    def __post_init__(self) -> None:
        check_choice("match.feature", self.feature, FEATURES)
        if self.loss is None:
            _set(self, "loss", DEFAULT_FEATURE_LOSS[self.feature])
        minimum = 1 if self.feature == "attention" else 0
        for name in ("student_layer", "teacher_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(
                    f"match.{name}: must be an int >= {minimum} for feature "
                    f"{self.feature!r}, got {value!r}"
                )
        check_number("match.weight", self.weight, allow_minimum=True)
        if self.projection is not None:
            check_choice("match.projection", self.projection, PROJECTIONS)
        check_choice("match.projection_init", self.projection_init, PROJECTION_INITS)
        if isinstance(self.teacher_index, bool) or not isinstance(self.teacher_index, int) \
                or self.teacher_index < 0:
            raise ConfigError(f"match.teacher_index: must be an int >= 0, got "
                              f"{self.teacher_index!r}")

    @property
    def name(self) -> str:
        """This match's key: its losses, projection and logged component are stored under
        it. Two matches on one layer pair differ by their loss."""
        suffix = f"_t{self.teacher_index}" if self.teacher_index else ""
        return f"{self.feature}_s{self.student_layer}_t{self.teacher_layer}{suffix}/{self.loss}"


@dataclass(frozen=True)
class MatchPreset:
    """Matches on a layer mapping: every mapped layer pair gets a match per feature.

    A recipe may write just the preset's name (``matches: uniform``).
    """

    _section: typing.ClassVar[str] = "matches"

    preset: str = field(metadata={
        "help": "`uniform` (student layer m <- teacher layer m*N/M, TinyBERT), `last` (the "
                "last layers only) or `skip` (every `every`-th teacher layer)."})
    losses: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FEATURE_LOSS),
                                   metadata={"help": "Feature -> registered loss; the "
                                             "features listed are the ones matched."})
    every: int | None = field(default=None, metadata={
        "help": "`skip` only: the teacher-layer stride (null: teacher layers // student "
                "layers)."})
    projection: str | None = field(default=None, metadata={
        "help": "The `projection` of every hidden match (see distill.matches[].projection)."})

    def __post_init__(self) -> None:
        check_choice("matches.preset", self.preset, PRESETS)
        if not self.losses:
            raise ConfigError("matches.losses: name at least one feature, e.g. "
                              "{hidden: hidden_mse}")
        for feature in self.losses:
            check_choice("matches.losses", feature, FEATURES)
        if self.every is not None and (isinstance(self.every, bool) or self.every < 1):
            raise ConfigError(f"matches.every: must be an int >= 1, got {self.every!r}")
        if self.projection is not None:
            check_choice("matches.projection", self.projection, PROJECTIONS)

    @classmethod
    def _from_scalar(cls, value: str) -> MatchPreset:
        if not isinstance(value, str):
            raise ConfigError(f"matches: expected a preset name {list(PRESETS)}, a list of "
                              f"matches or a preset mapping, got {value!r}")
        return cls(value)

    def _to_plain(self) -> str | dict:
        plain = {"preset": self.preset, "losses": self.losses, "every": self.every,
                 "projection": self.projection}
        is_default = (self.losses == DEFAULT_FEATURE_LOSS and self.every is None
                      and self.projection is None)
        return self.preset if is_default else plain


_SCHEDULED = ("temperature", "soft_weight", "hard_weight", "intermediate_weight")


@dataclass(frozen=True)
class DistillationConfig:
    """What the student learns from, and how much of each.

    The per-batch loss is::

        soft_weight(p) * logit_loss(student, teacher, temperature(p))
      + hard_weight(p) * cross_entropy(student, labels)
      + intermediate_weight(p) * sum_i match_i.weight * match_i.loss(...)

    where ``p`` in [0, 1] is training progress. Each of the four scheduled values is a
    number (constant) or a :class:`~textdistill.schedules.Schedule`. How the defaults
    were chosen: docs/benchmarks.md.
    """

    _section: typing.ClassVar[str] = "distill"

    temperature: Schedule = field(default_factory=lambda: Schedule(2.0), metadata={
        "help": "Softmax temperature T of the logit loss (a number, or {start, end, kind})."})
    logit_loss: str | None = field(default="kd_kl", metadata={
        "help": "Registered logit loss (`kd_kl`, `kd_ce`, `kd_mse`, `dkd`, `pseudo_ce`, ...); null for "
                "supervised training on the labels alone."})
    logit_loss_options: dict = field(default_factory=dict, metadata={
        "help": "Keyword options of the logit loss (`dkd`: alpha, beta, and unlabeled: "
                "teacher | exclude for rows without a gold label)."})
    soft_weight: Schedule = field(default_factory=lambda: Schedule(1.0), metadata={
        "help": "Weight of the logit (soft-target) loss."})
    hard_weight: Schedule = field(default_factory=lambda: Schedule(0.5), metadata={
        "help": "Weight of the cross-entropy on the gold labels."})
    intermediate_weight: Schedule = field(default_factory=lambda: Schedule(0.1), metadata={
        "help": "Weight of the sum of the intermediate matches' losses."})
    matches: list[Match] | MatchPreset = field(default_factory=list, metadata={
        "help": "Intermediate matches: a list of matches, or a preset (`uniform`, `last`, "
                "`skip`, or a mapping {preset, losses, every, projection})."})
    probability_shift: bool = field(default=False, metadata={
        "help": "Swap the teacher's top class with the gold class where the teacher is "
                "wrong, before the soft loss sees it."})
    teacher_weights: list[float] | None = field(default=None, metadata={
        "help": "Per-teacher weights of the averaged logits (multi-teacher; normalised); "
                "null weighs the teachers equally."})

    def __post_init__(self) -> None:
        for name in _SCHEDULED:
            schedule = getattr(self, name)
            try:
                _set(self, name, as_schedule(schedule))
            except ConfigError as err:
                raise ConfigError(f"distill.{name}{str(err)[len('schedule'):]}") from None
            for value in getattr(self, name).values:
                check_number(f"distill.{name}", value, allow_minimum=name != "temperature")
        if isinstance(self.matches, str):
            _set(self, "matches", MatchPreset(self.matches))
        elif not isinstance(self.matches, MatchPreset):
            _set(self, "matches", [
                m if isinstance(m, Match) else from_dict(Match, m, f"distill.matches[{i}]")
                for i, m in enumerate(self.matches)])
        if not isinstance(self.logit_loss_options, dict):
            raise ConfigError(f"distill.logit_loss_options: expected a mapping of option "
                              f"names to values, got {self.logit_loss_options!r}")
        if self.teacher_weights is not None:
            if isinstance(self.teacher_weights, (str, bytes)) or \
                    not isinstance(self.teacher_weights, (list, tuple)):
                raise ConfigError(f"distill.teacher_weights: expected a list of numbers, got "
                                  f"{self.teacher_weights!r}")
            for w in self.teacher_weights:
                check_number("distill.teacher_weights", w, allow_minimum=True)
            if sum(self.teacher_weights) <= 0:
                raise ConfigError("distill.teacher_weights: weights must not all be zero")


SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
PRECISIONS = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainingConfig:
    """How the one training loop runs. Steps are optimizer steps."""

    _section: typing.ClassVar[str] = "train"

    output_dir: str = field(default="runs/textdistill", metadata={
        "help": "Run directory (checkpoints, logs, teacher cache, best/)."})
    epochs: float = field(default=3.0, metadata={
        "help": "Passes over the training data (ignored when max_steps is set)."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Total optimizer steps; overrides epochs."})
    batch_size: int = field(default=32, metadata={
        "help": "Per-process batch size (global batch = batch_size x processes x "
                "gradient_accumulation_steps)."})
    eval_batch_size: int | None = field(default=None, metadata={
        "help": "Per-process batch size of evaluation and teacher inference (null: "
                "2 x batch_size)."})
    lr: float = field(default=5e-5, metadata={"help": "Peak learning rate of the student."})
    projection_lr: float | None = field(default=None, metadata={
        "help": "Learning rate of the projections (their own optimizer group; null: lr)."})
    weight_decay: float = field(default=0.01, metadata={
        "help": "Decoupled weight decay (not applied to biases and LayerNorm weights)."})
    warmup: float = field(default=0.1, metadata={
        "help": "Linear learning-rate warm-up: a fraction of the total steps when < 1, "
                "else a number of steps."})
    scheduler: str = field(default="linear", metadata={
        "help": f"Learning-rate schedule after warm-up (transformers.get_scheduler): one of "
                f"{list(SCHEDULERS)}."})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "Micro-batches per optimizer step."})
    max_grad_norm: float | None = field(default=1.0, metadata={
        "help": "Gradient clipping norm; null: no clipping."})
    precision: str = field(default="no", metadata={
        "help": f"Accelerate's mixed_precision: one of {list(PRECISIONS)}."})
    seed: int = field(default=42, metadata={
        "help": "Seeds the run: data order, dropout, and random initial weights (a new "
                "head, a config student, projections)."})
    eval_steps: int | None = field(default=None, metadata={
        "help": "Evaluate every this many steps; null: once per epoch (and at the end)."})
    save_steps: int | None = field(default=None, metadata={
        "help": "Checkpoint every this many steps; null: once per epoch (and at the end)."})
    logging_steps: int = field(default=50, metadata={
        "help": "Log the averaged losses every this many steps."})
    save_total_limit: int | None = field(default=2, metadata={
        "help": "Checkpoints kept on disk (oldest deleted first); null keeps all."})
    metric_for_best: str = field(default="accuracy", metadata={
        "help": f"Eval metric that picks best/ and drives early stopping (higher is "
                f"better): one of {list(METRIC_KEYS)}."})
    early_stopping_patience: int | None = field(default=None, metadata={
        "help": "Stop after this many evaluations without improvement; null: never."})
    max_nonfinite_steps: int = field(default=10, metadata={
        "help": "An optimizer step whose loss (or clipped gradient norm) is NaN or "
                "infinite is skipped: weights and optimizer state stay as they were. This "
                "many such steps in a row stop the run with an error naming the loss and "
                "the step."})
    group_by_length: bool = field(default=True, metadata={
        "help": "Batch examples of similar length together (less padding)."})
    pad_to: int | None = field(default=None, metadata={
        "help": "Pad every batch to this many tokens (static shapes); null pads to the "
                "longest sequence of each batch."})
    teacher_cache: bool | str = field(default=False, metadata={
        "help": "Compute the teachers' logits once and reuse them every epoch: true keeps "
                "them in <output_dir>/teacher_cache, a path in that folder (runs may share "
                "one: files are keyed by the teachers' weights and the token ids)."})
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "Accelerate trackers (tensorboard, wandb, ...); [] for none."})
    progress_bar: bool = field(default=True, metadata={
        "help": "Show tqdm progress bars for training and evaluation, and print one line "
                "of metrics at each evaluation (main process only)."})

    def __post_init__(self) -> None:
        check_number("train.epochs", self.epochs)
        for name in ("max_steps", "batch_size", "eval_batch_size", "gradient_accumulation_steps",
                     "eval_steps", "save_steps", "logging_steps", "save_total_limit",
                     "early_stopping_patience", "pad_to", "max_nonfinite_steps"):
            check_number(f"train.{name}", getattr(self, name))
        check_number("train.lr", self.lr)
        check_number("train.projection_lr", self.projection_lr)
        check_number("train.weight_decay", self.weight_decay, allow_minimum=True)
        check_number("train.warmup", self.warmup, allow_minimum=True)
        if self.warmup >= 1 and not float(self.warmup).is_integer():
            raise ConfigError(f"train.warmup: a fraction must be < 1 and a step count an "
                              f"integer, got {self.warmup!r}")
        check_number("train.max_grad_norm", self.max_grad_norm)
        check_choice("train.scheduler", self.scheduler, SCHEDULERS)
        check_choice("train.precision", self.precision, PRECISIONS)
        if isinstance(self.report_to, str):
            _set(self, "report_to", [] if self.report_to in ("none", "") else [self.report_to])
        if self.teacher_cache == "":
            raise ConfigError("train.teacher_cache: give true, false or a directory")
        check_metric_for_best(self.metric_for_best)

    def warmup_steps(self, total_steps: int) -> int:
        """Warm-up length in optimizer steps for a run of ``total_steps``."""
        if self.warmup >= 1:
            return int(self.warmup)
        return int(total_steps * self.warmup)

    @property
    def teacher_cache_dir(self) -> str | None:
        """Where the teacher-logit cache lives, or ``None`` when caching is off."""
        if self.teacher_cache is False:
            return None
        if self.teacher_cache is True:
            from .run_dir import RunDir

            return str(RunDir(self.output_dir).teacher_cache)
        return str(self.teacher_cache)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (YAML/JSON-safe) view of a config dataclass."""
    return plain_data(config)
