"""The teacher, student and output sections of a recipe.

(The data, distill and train sections are the engine's own configs:
:class:`~textdistill.data.config.DataConfig`, :class:`~textdistill.config.DistillationConfig`
and :class:`~textdistill.config.TrainingConfig`.)
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from .errors import ConfigError
from .onnx_model import METHODS as QUANTIZE_METHODS
from .pruning import SCORING_BATCHES, check_fractions
from .schema import check_choice, check_number

STUDENT_KINDS = ("from_teacher", "config", "pretrained")
TEACHER_TOKENIZERS = ("shared", "own")


@dataclass(frozen=True)
class TeacherSpec:
    """The teacher (or teachers) to distil from."""

    _section: typing.ClassVar[str] = "teacher"

    model: str | list[str] = field(metadata={
        "help": "A Hub id, a local model directory or python:<module> (the directory that "
                "<module>.get_model_path() returns); a list for multi-teacher runs, weighted "
                "by distill.teacher_weights."})
    remap_labels: bool = field(default=False, metadata={
        "help": "Accept a teacher whose classes are the data's in another order, and "
                "renumber the data's labels to the teacher's ids."})
    tokenizer: str = field(default="shared", metadata={
        "help": "`shared`: every teacher and the student must turn text into the same token "
                "ids (a mismatch is an error). `own`: each teacher reads the text through "
                "its own tokenizer (columns t<i>_input_ids, ...); logit losses and "
                "sentence-level hidden matches (pkd) work across tokenizers, token-level "
                "matches do not."})

    def __post_init__(self) -> None:
        check_choice("teacher.tokenizer", self.tokenizer, TEACHER_TOKENIZERS)
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


@dataclass(frozen=True)
class StudentShapeSpec:
    """TinyBERT-style student: the teacher's model type at this shape, random init."""

    _section: typing.ClassVar[str] = "student.config"

    num_layers: int = field(metadata={"help": "Transformer blocks."})
    hidden_size: int = field(metadata={"help": "Hidden width (a multiple of num_heads)."})
    num_heads: int = field(metadata={"help": "Attention heads per block."})
    intermediate_size: int = field(metadata={"help": "Width of the feed-forward layer."})

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "intermediate_size"):
            check_number(f"student.config.{name}", getattr(self, name))
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"student.config.hidden_size: {self.hidden_size} is not divisible by "
                f"student.config.num_heads ({self.num_heads})"
            )


@dataclass(frozen=True)
class StudentPruneSpec:
    """Prune the student before its distillation, as ``textdistill prune`` does; the
    distillation from the recipe's teacher then recovers the accuracy."""

    _section: typing.ClassVar[str] = "student.prune"

    heads: float = field(default=0.0, metadata={
        "help": "Fraction of all attention heads to remove, in [0, 1): the least important, "
                "ranked across blocks. Removed heads are stored as zeros (they stay zero in "
                "training; output.quantize leaves them out of the graph)."})
    ffn: float = field(default=0.0, metadata={
        "help": "Fraction of each block's feed-forward neurons to remove, in [0, 1): the "
                "least important, the same count in every block, cut out (intermediate_size "
                "shrinks)."})
    batches: int = field(default=SCORING_BATCHES, metadata={
        "help": "Score importance (first order, on the gold labels) on at most this many "
                "batches of train.batch_size: a seeded random subset of the train split's "
                "labelled rows (data.transfer and data.augment rows have no label)."})

    def __post_init__(self) -> None:
        check_fractions(heads=self.heads, ffn=self.ffn, prefix="student.prune.")
        check_number("student.prune.batches", self.batches, minimum=1, allow_minimum=True)


def _check_blocks(key: str, layers: list[int] | None) -> None:
    if layers is None:
        return
    if not layers:
        raise ConfigError(f"{key}: give at least one block index, e.g. [0, 2, 4]")
    for i, layer in enumerate(layers):
        if layer < 0:
            raise ConfigError(f"{key}[{i}]: must be >= 0, got {layer}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"{key}: blocks repeat: {layers}")


@dataclass(frozen=True)
class StudentSpec:
    """How to get the student: exactly one of ``from_teacher``, ``config``, ``pretrained``."""

    _section: typing.ClassVar[str] = "student"

    from_teacher: list[int] | None = field(default=None, metadata={
        "help": "DistilBERT-style: the teacher with only these blocks (0-based), e.g. "
                "[0, 2, 4]."})
    config: StudentShapeSpec | None = field(default=None, metadata={
        "help": "TinyBERT-style: the teacher's model type at this shape, random weights."})
    pretrained: str | None = field(default=None, metadata={
        "help": "A pretrained model (Hub id, directory or python:<module>) with a new head."})
    layers: list[int] | None = field(default=None, metadata={
        "help": "With `pretrained`: keep only these of its blocks (0-based), e.g. [0, 2, 4] "
                "of a 6-block model; null keeps them all."})
    prune: StudentPruneSpec | None = field(default=None, metadata={
        "help": "Prune the built student before training (`textdistill distill` only), e.g. "
                "{heads: 0.5, ffn: 0.5}; config.json of best/ records what was removed "
                "(textdistill_pruning). A pretrained student is scored through its own "
                "classification head: give a fine-tuned classifier. null: no pruning."})

    def __post_init__(self) -> None:
        given = [k for k in STUDENT_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            got = "none" if not given else " and ".join(given)
            hint = (" (to switch kinds with --set, clear the other one, e.g. "
                    f"--set student.{given[0]}=null)") if len(given) > 1 else ""
            raise ConfigError(
                f"student: give exactly one of {list(STUDENT_KINDS)}, got {got}{hint}"
            )
        if self.layers is not None and self.pretrained is None:
            raise ConfigError("student.layers: only used with student.pretrained (a "
                              "from_teacher student lists its blocks in student.from_teacher)")
        for key in ("from_teacher", "layers"):
            _check_blocks(f"student.{key}", getattr(self, key))
        if self.prune is not None and self.config is not None:
            raise ConfigError("student.prune: a student.config student starts from random "
                              "weights, so there is no importance to score; prune a "
                              "from_teacher or pretrained student")

    @property
    def kind(self) -> str:
        """``"from_teacher"``, ``"config"`` or ``"pretrained"``."""
        return next(k for k in STUDENT_KINDS if getattr(self, k) is not None)


@dataclass(frozen=True)
class OutputSpec:
    """Where the run is written."""

    dir: str | None = field(default=None, metadata={
        "help": "The run directory (recipe.yaml, best/, results.json, checkpoints/); "
                "default runs/<recipe file stem>."})
    overwrite: bool = field(default=False, metadata={
        "help": "Start a fresh run even if `dir` holds an earlier one (its checkpoints, "
                "best/ and results are deleted first)."})
    quantize: str | None = field(default=None, metadata={
        "help": "After training, write best/ as an ONNX Runtime directory <dir>/onnx/ "
                "(`textdistill quantize`): `onnx` (float32 graph) or `onnx-int8` (int8 "
                "weights), measured against best/ on the eval split; results.json gains an "
                "`onnx` entry. Needs the deploy extra (checked before training). null: none."})

    def __post_init__(self) -> None:
        if self.quantize is not None:
            check_choice("output.quantize", self.quantize, QUANTIZE_METHODS)


__all__ = ["STUDENT_KINDS", "TEACHER_TOKENIZERS", "OutputSpec", "StudentPruneSpec",
           "StudentShapeSpec", "StudentSpec", "TeacherSpec"]
