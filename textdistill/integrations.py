"""Distillation inside ``transformers.Trainer``, for code that already trains with it.

:class:`DistillationTrainer` is a ``Trainer`` whose loss is the
:class:`~textdistill.objective.Objective` of a :class:`~textdistill.config.DistillationConfig`:
the same :func:`~textdistill.plan.plan` (matches, projections, the checks), the same
losses and the same :func:`~textdistill.objective.batch_loss` as the
:class:`~textdistill.distiller.Distiller`. Everything else is the Trainer's:
``TrainingArguments`` (precision, gradient accumulation, evaluation and saving cadence,
``load_best_model_at_end``, ``report_to``, ``push_to_hub``), its checkpoints and
``resume_from_checkpoint``.

What the Trainer does not know, this class adds:

* **the teachers** are placed on ``args.device`` (each rank's device under
  ``accelerate launch``), frozen and kept in eval mode; they are never given to the
  Trainer, so never wrapped in DDP, never in the optimizer, never saved;
* **the projections** (learned student-to-teacher width maps) join the optimizer as their
  own parameter group, are clipped with the student's gradients, averaged across ranks
  by hand (they sit outside the DDP-wrapped student, as in the Distiller), written into
  every checkpoint (``projections.safetensors`` and ``projections.json``) and read back by
  ``resume_from_checkpoint``. They are not part of the model: ``save_model`` and
  ``push_to_hub`` write the student alone, as the Distiller's ``best/`` holds it alone;
* **the data**: the default collator pads the student's tokens and each own-tokenizer
  teacher's ``t{i}_*`` columns (with that teacher's pad id), and those columns survive
  ``remove_unused_columns``;
* **the metrics**: ``evaluate()`` reports accuracy, F1 and MCC
  (:func:`~textdistill.metrics.compute_classification_metrics`, as ``Distiller.evaluate``)
  and the distillation loss as ``eval_loss``; training logs add each loss component
  (``loss/kd``, ``loss/hard``, one per match).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .config import DistillationConfig
from .data.batching import TOKEN_COLUMNS, pad_batch, teacher_column
from .errors import ConfigError
from .models.adaptors import Adaptor, hf_adaptor, model_dims, unwrap_model
from .models.projections import SPECS_NAME, load_projections, save_projections
from .objective import Objective, batch_loss
from .plan import plan
from .teachers import Teachers

# hard_ce skips these rows, and the metrics leave them out too.
IGNORE_INDEX = -100
# The names a dataset's label column goes by (the Trainer's collators accept all three).
_LABEL_COLUMNS = ("labels", "label", "label_ids")


@dataclass
class DistillationCollator:
    """Pads a list of tokenized examples with :func:`~textdistill.data.batching.pad_batch`:
    the student's columns with ``pad_token_id``, teacher ``i``'s own ``t{i}_*`` columns
    with ``teacher_pad_ids[i]``. A ``label`` or ``label_ids`` column becomes ``labels``;
    other columns are dropped."""

    pad_token_id: int
    teacher_pad_ids: Mapping[int, int]

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        columns = {key: [example[key] for example in examples] for key in examples[0]}
        for name in _LABEL_COLUMNS[1:]:
            if name in columns and "labels" not in columns:
                columns["labels"] = columns.pop(name)
        return pad_batch(columns, self.pad_token_id, teacher_pad_ids=self.teacher_pad_ids)


def classification_metrics(num_labels: int):
    """A ``compute_metrics`` reporting what ``Distiller.evaluate`` does: accuracy, F1 and
    MCC of the argmax of the logits, rows labelled -100 left out."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        # Deferred like Distiller.evaluate's: importing `evaluate` costs seconds.
        from .metrics import compute_classification_metrics

        labels = np.asarray(prediction.label_ids)
        keep = labels != IGNORE_INDEX
        return compute_classification_metrics(np.asarray(prediction.predictions).argmax(-1)[keep],
                                              labels[keep], num_labels=num_labels)

    return compute


class _ProjectionGradients(TrainerCallback):
    """Clears the projections' gradients after every optimizer step: the Trainer clears
    only the model's (``model.zero_grad()``), and does so whether or not the fp16 grad
    scaler skipped the step."""

    def __init__(self, projections: torch.nn.ModuleDict):
        self.projections = projections

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.projections.zero_grad(set_to_none=True)


def _pad_token_id(processing_class: Any, student: torch.nn.Module) -> int:
    pad = getattr(processing_class, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(unwrap_model(student), "config", None), "pad_token_id", None)
    return 0 if pad is None else pad


class DistillationTrainer(Trainer):
    """A ``transformers.Trainer`` that distils ``teacher`` into ``model``.

    Args:
        model: the student (any ``AutoModelForSequenceClassification``).
        args: the usual ``TrainingArguments``.
        teacher: a fine-tuned classifier, or a list of them (multi-teacher).
        distill_config: losses, weights, schedules, matches (default: logit KD). Its
            schedules run over ``args``'s optimizer steps.
        teacher_tokenizers: ``{teacher index: tokenizer}`` for the teachers that read the
            text through their own tokenizer, from the data's ``t{i}_input_ids`` ...
            columns (:func:`~textdistill.data.loading.add_teacher_columns`).
        adaptor / teacher_adaptor: turn model outputs into a ``ModelView`` (default:
            Hugging Face).
        projection_lr: the projections' learning rate (default: ``args.learning_rate``).
        data_collator / compute_metrics: default to :class:`DistillationCollator` and
            :func:`classification_metrics`.
        **trainer_kwargs: anything else ``Trainer`` takes (``train_dataset``,
            ``eval_dataset``, ``processing_class``, ``callbacks``, ...).

    Raises:
        ConfigError: no teacher; ``model_init`` (the plan is made for one student);
            what :func:`~textdistill.plan.plan` refuses; projections under DeepSpeed or
            FSDP (they would be left out of the optimizer or the sharding).

    Example::

        trainer = DistillationTrainer(model=student, teacher=teacher,
                                      distill_config=DistillationConfig(temperature=4.0),
                                      args=TrainingArguments("runs/kd", eval_strategy="epoch"),
                                      train_dataset=train, eval_dataset=validation,
                                      processing_class=tokenizer)
        trainer.train()
        trainer.save_model("runs/kd/student")
    """

    # compute_loss returns a per-batch mean: the Trainer divides it by the accumulation
    # steps itself.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainingArguments | None = None,
        *,
        teacher: torch.nn.Module | Sequence[torch.nn.Module],
        distill_config: DistillationConfig | None = None,
        teacher_tokenizers: Mapping[int, Any] | None = None,
        adaptor: Adaptor = hf_adaptor,
        teacher_adaptor: Adaptor | None = None,
        projection_lr: float | None = None,
        data_collator: Any = None,
        compute_metrics: Any = None,
        **trainer_kwargs: Any,
    ):
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not teachers or any(t is None for t in teachers):
            raise ConfigError("teacher: give a teacher model (or a list); to fine-tune "
                              "without one use transformers.Trainer")
        if trainer_kwargs.get("model_init") is not None:
            raise ConfigError("model_init: not supported, the distillation plan is made for "
                              "one student; pass model=")
        self.distill_config = distill_config if distill_config is not None \
            else DistillationConfig()
        self.adaptor = adaptor
        self.teachers = Teachers(teachers, teacher_adaptor or adaptor, teacher_tokenizers)
        self.projection_lr = projection_lr
        processing_class = trainer_kwargs.get("processing_class")
        if data_collator is None:
            data_collator = DistillationCollator(_pad_token_id(processing_class, model),
                                                 self.teachers.pad_ids)
        # Trainer.__init__ seeds with args.seed, and the projections are built after it,
        # so their random init follows the run's seed.
        super().__init__(model=model, args=args, data_collator=data_collator,
                         compute_metrics=compute_metrics, **trainer_kwargs)
        self.plan = plan(self.distill_config, self.model, self.teachers.models,
                         own_tokenizer=self.teachers.pad_ids)
        self.projections = self.plan.projections
        if len(self.projections) and (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            raise ConfigError("distill.matches: these matches need projections, which train "
                              "outside the model; DistillationTrainer does not support that "
                              "under DeepSpeed or FSDP. Match layers of equal width (no "
                              "projection), or use the Distiller")
        if compute_metrics is None:
            # After plan(), which has checked that the student has a label count.
            self.compute_metrics = classification_metrics(model_dims(self.model).num_labels)
        self.objective = Objective(self.distill_config, self.plan.matches, self.projections,
                                   len(self.teachers))
        self.objective.ensure_attention_maps(self.model, self.teachers.models)
        # Per loss component since the last log: sum and batch count (a fixed-length vector,
        # so that the ranks can reduce it even when their batches hold different components).
        self._components = self.objective.component_names
        self._component_sums = torch.zeros(len(self._components), device=self.args.device)
        self._component_counts = torch.zeros_like(self._component_sums)
        self.teachers.prepare(self.args.device)
        self.projections.to(self.args.device)
        self.add_callback(_ProjectionGradients(self.projections))

    # ------------------------------------------------------------------ the loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The objective's loss of ``inputs``; with ``return_outputs`` also
        ``{"logits": ...}``, the predictions ``evaluate()`` scores."""
        max_steps = self.state.max_steps
        progress = min(self.state.global_step / max_steps, 1.0) if max_steps else 0.0
        out, view = batch_loss(self.objective, model, inputs, progress, adaptor=self.adaptor,
                               teachers=self.teachers, autocast=self.accelerator.autocast)
        if model.training:
            for name, value in out.components.items():
                index = self._components.index(name)
                self._component_sums[index] += value.detach().float()
                self._component_counts[index] += 1
        return (out.total, {"logits": view.logits}) if return_outputs else out.total

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients and self.accelerator.num_processes > 1:
            # Projections sit outside the DDP-wrapped student: average their accumulated
            # gradients by hand at the end of the window, so every rank takes the same step.
            for param in self.projections.parameters():
                if param.grad is not None:
                    param.grad = self.accelerator.reduce(param.grad, reduction="mean")
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs gain each loss component, averaged over the batches since the
        last log (and over the ranks)."""
        if "loss" in logs:
            sums = self.accelerator.reduce(self._component_sums, reduction="sum")
            counts = self.accelerator.reduce(self._component_counts, reduction="sum")
            logs = {**logs, **{f"loss/{name}": float(total / count) for name, total, count
                               in zip(self._components, sums, counts) if count}}
            self._component_sums.zero_()
            self._component_counts.zero_()
        super().log(logs, start_time)

    # -------------------------------------------------------- optimizer and gradients

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with the projections as one more parameter group."""
        given = self.optimizer is not None
        optimizer = super().create_optimizer(model)
        params = list(self.projections.parameters())
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [p for p in params if id(p) not in held]
        if missing and given:
            raise ConfigError("optimizers: the optimizer passed to the trainer does not hold "
                              "the projections; add trainer.projections.parameters() to it "
                              "or let the trainer build it")
        if missing:
            optimizer.add_param_group({"params": missing, "weight_decay": self.args.weight_decay,
                                       "lr": self.projection_lr or self.args.learning_rate})
        return optimizer

    def _clip_grad_norm(self, model):
        """One norm over the student's and the projections' gradients, as the Distiller
        clips them."""
        if not len(self.projections):
            return super()._clip_grad_norm(model)
        params = [*model.parameters(), *self.projections.parameters()]
        return self.accelerator.clip_grad_norm_(params, self.args.max_grad_norm)

    # ------------------------------------------------------------------- the data

    def _set_signature_columns_if_needed(self) -> None:
        # remove_unused_columns keeps what the student's forward takes; the teachers with
        # their own tokenizer read their t{i}_* columns besides.
        if self._signature_columns is None:
            super()._set_signature_columns_if_needed()
            self._signature_columns += [teacher_column(index, name)
                                        for index in self.teachers.pad_ids
                                        for name in TOKEN_COLUMNS]

    # ---------------------------------------------------------------- checkpoints

    def _save_checkpoint(self, model, trial) -> None:
        # Written before the Trainer's files, so that a checkpoint holding trainer_state.json
        # (what resume looks for) always holds the projections too.
        if len(self.projections) and self.args.should_save:
            folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            save_projections(self.projections, os.path.join(self._get_output_dir(trial), folder))
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if not len(self.projections):
            return
        try:
            saved = load_projections(resume_from_checkpoint)
        except FileNotFoundError:
            raise ConfigError(f"resume_from_checkpoint: {resume_from_checkpoint} has no "
                              f"{SPECS_NAME}: it was not saved by a DistillationTrainer with "
                              "these matches") from None
        wanted = {name: module.spec() for name, module in self.projections.items()}
        found = {name: module.spec() for name, module in saved.items()}
        if found != wanted:
            raise ConfigError(f"resume_from_checkpoint: the checkpoint's projections {found} "
                              f"differ from this run's {wanted}")
        self.projections.load_state_dict(saved.state_dict())


__all__ = ["DistillationCollator", "DistillationTrainer", "classification_metrics"]
