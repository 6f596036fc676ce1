"""The Distiller: one Accelerate training loop for every mode.

Fine-tuning, single- and multi-teacher distillation and self-distillation all run
through :meth:`Distiller.train`. They differ only in the :class:`~textdistill.objective.
Objective` that turns a batch's model views into a loss.

What Accelerate does here: device placement, DDP wrapping of the student, mixed
precision (autocast and the fp16 grad scaler), ``no_sync`` during gradient
accumulation, gradient clipping, trackers (TensorBoard by default), process-safe
printing, and ``save_state``/``load_state`` (model, optimizer, registered objects, RNG
states). What the loop does itself: the batch plan (see :mod:`textdistill.data.batching`),
which makes resume exact and keeps global batches identical across process counts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from .config import DistillationConfig, TrainingConfig, to_dict
from .data.batching import BatchPlan, pad_batch
from .history import History
from .inference import run_inference
from .metrics import compute_classification_metrics, greater_is_better
from .models.adaptors import (
    Adaptor,
    ensure_eager_attention,
    hf_adaptor,
    unwrap_model,
)
from .objective import Objective
from .plan import plan
from .run_dir import RunDir, staging_path
from .teacher_cache import TeacherLogitCache, data_fingerprint, teacher_fingerprint

MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


@dataclass
class TrainState:
    """Where training stands; checkpointed with the rest of the state.

    ``step`` counts optimizer steps; the data position follows from it and the batch
    plan (epoch = step // steps_per_epoch), so it is all a resume needs.
    """

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    history: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return {"step": self.step, "best_metric": self.best_metric, "best_step": self.best_step,
                "evals_without_improvement": self.evals_without_improvement,
                "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.best_metric = state["best_metric"]
        self.best_step = state["best_step"]
        self.evals_without_improvement = int(state["evals_without_improvement"])
        self.history = json.loads(state["history"])


class StepCallback:
    """Hook into the loop. Return ``True`` from :meth:`on_step_end` to stop training
    (after that step's logging, evaluation and checkpoint)."""

    def on_step_end(self, distiller: Distiller, state: TrainState) -> bool:
        return False


def _multi_process_cpu() -> bool:
    """Whether this is a multi-process launch on a machine without a GPU.

    Accelerate picks the gloo (MULTI_CPU) backend only when told ``cpu=True``; without
    it, ``torchrun --nproc_per_node 2`` on CPU silently gives N independent
    single-process runs.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return world_size > 1 and not torch.cuda.is_available()


def make_adamw(param_groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where the device has one.

    The default (single-tensor) AdamW on CPU spends about 1.7 s per step on a 17M-parameter
    student, more than its forward and backward together; the fused kernel does the same
    update (equal to ~1e-7) about 8x faster, on CPU as on GPU.
    """
    try:
        return torch.optim.AdamW(param_groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(param_groups, lr=lr)


def _make_accelerator(cfg: TrainingConfig) -> Accelerator:
    """An Accelerator for ``cfg``.

    Accelerate keeps one process-wide state and refuses a second Accelerator with another
    ``mixed_precision`` ("restart your runtime"). In a single process nothing depends on
    the old state, so a notebook that switches precision between runs gets a fresh one.
    """
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != cfg.precision and \
            shared.get("distributed_type") in (None, DistributedType.NO):
        AcceleratorState._reset_state()
    return Accelerator(
        cpu=_multi_process_cpu(),
        mixed_precision=cfg.precision,
        log_with=cfg.report_to or None,
        project_config=ProjectConfiguration(
            project_dir=cfg.output_dir, logging_dir=str(RunDir(cfg.output_dir).logs)),
    )


def _as_list(teacher) -> list[torch.nn.Module]:
    if teacher is None:
        return []
    if isinstance(teacher, (list, tuple)):
        return list(teacher)
    return [teacher]


class Distiller:
    """Distil ``teacher`` (or several) into ``student``, or fine-tune ``student`` alone.

    Args:
        teacher: a fine-tuned classifier, a list of them (multi-teacher), or ``None`` for
            plain supervised fine-tuning.
        student: the model to train (any ``AutoModelForSequenceClassification``).
        distill_config: losses, weights, schedules, matches (default: logit KD).
        training_config: the loop's settings (default: :class:`TrainingConfig`).
        tokenizer: saved with ``best/``; its pad id pads the batches.
        adaptor / teacher_adaptor: turn model outputs into a
            :class:`~textdistill.models.adaptors.ModelView` (default: Hugging Face).
        accelerator: an existing ``Accelerator`` (default: built from the config).

    Example::

        distiller = Distiller(teacher, student, DistillationConfig(temperature=4),
                              TrainingConfig(output_dir="runs/sst2", epochs=3))
        history = distiller.train(train_ds, eval_ds)
        history.plot("runs/sst2/history.png")
    """

    def __init__(
        self,
        teacher: torch.nn.Module | Sequence[torch.nn.Module] | None,
        student: torch.nn.Module,
        distill_config: DistillationConfig | None = None,
        training_config: TrainingConfig | None = None,
        *,
        tokenizer: Any = None,
        adaptor: Adaptor = hf_adaptor,
        teacher_adaptor: Adaptor | None = None,
        accelerator: Accelerator | None = None,
    ):
        self.teachers = _as_list(teacher)
        self.student = student
        self.distill_config = distill_config if distill_config is not None \
            else DistillationConfig()
        self.training_config = training_config if training_config is not None \
            else TrainingConfig()
        self.tokenizer = tokenizer
        self.adaptor = adaptor
        self.teacher_adaptor = teacher_adaptor or adaptor

        # The projections' random init must follow the run's seed, not whatever the global
        # RNG holds after the caller's own work (as transformers' Trainer seeds in __init__).
        set_seed(self.training_config.seed)
        self.plan = plan(self.distill_config, student, self.teachers)
        self.matches = self.plan.matches
        self.projections = self.plan.projections
        self.objective = Objective(self.distill_config if self.teachers else None,
                                   self.matches, self.projections, len(self.teachers))
        if self.objective.student_needs()[1]:
            ensure_eager_attention(student)
        for index, t in enumerate(self.teachers):
            if self.objective.teacher_needs(index)[1]:
                ensure_eager_attention(t)

        cfg = self.training_config
        self.accelerator = accelerator or _make_accelerator(cfg)
        self.state = TrainState()
        self.history = History(metric_for_best=cfg.metric_for_best)
        self._registered = False
        self._cache: TeacherLogitCache | None = None

    # ----------------------------------------------------------------- configuration

    # ----------------------------------------------------------------------- data

    @staticmethod
    def _as_dataset(data):
        """A ``datasets.Dataset`` holding only the columns the loop uses."""
        import datasets

        if not isinstance(data, datasets.Dataset):
            data = datasets.Dataset.from_list(list(data))
        if "labels" not in data.column_names and "label" in data.column_names:
            data = data.rename_column("label", "labels")
        if "input_ids" not in data.column_names:
            raise ValueError("training data must be tokenized: it has no 'input_ids' column "
                             f"(columns: {data.column_names})")
        extra = [c for c in data.column_names if c not in MODEL_INPUT_COLUMNS]
        return data.remove_columns(extra) if extra else data

    @property
    def pad_token_id(self) -> int:
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            return self.tokenizer.pad_token_id
        pad = getattr(unwrap_model(self.student).config, "pad_token_id", None)
        return 0 if pad is None else pad

    @property
    def _pad_to(self) -> int | None:
        """The fixed length every batch is padded to, or ``None`` for dynamic padding."""
        return self.training_config.pad_to

    def _collate(self, dataset, positions: list[int]) -> dict[str, torch.Tensor]:
        batch = pad_batch(dataset[positions], self.pad_token_id, self._pad_to)
        # Positions in this dataset key the teacher cache, whatever idx the data carried.
        batch["idx"] = torch.as_tensor(positions, dtype=torch.long)
        device = self.accelerator.device
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    # ---------------------------------------------------------------- the teachers

    def _teacher_outputs(self, batch, need_logits: bool):
        """Per-teacher logits (cached or live) and views (where a forward ran)."""
        views: list = []
        logits: list = []
        cached = self._cache.lookup(batch["idx"]) if self._cache is not None else None
        with torch.no_grad():
            for index, teacher in enumerate(self.teachers):
                hidden, attentions = self.objective.teacher_needs(index)
                if self.objective.needs_teacher_forward(index, logits_cached=cached is not None):
                    view = self.teacher_adaptor(teacher, batch, hidden_states=hidden,
                                                attentions=attentions)
                    views.append(view)
                    logits.append(view.logits if cached is None else cached[index])
                else:
                    views.append(None)
                    logits.append(cached[index] if cached is not None else None)
        return (logits if need_logits else None), views

    def _prepare_teachers(self) -> None:
        for teacher in self.teachers:
            teacher.to(self.accelerator.device)
            teacher.eval()
            teacher.requires_grad_(False)

    @property
    def _inference_batch_size(self) -> int:
        # No gradients or optimizer state in inference: twice the training batch fits.
        cfg = self.training_config
        return cfg.eval_batch_size or cfg.batch_size * 2

    def _build_cache(self, dataset) -> None:
        cfg = self.training_config
        fingerprint = teacher_fingerprint(self.teachers, data_fingerprint(dataset),
                                          self._pad_to)

        def teacher_logits(batch):
            return [self.teacher_adaptor(t, batch).logits for t in self.teachers]

        self._cache = TeacherLogitCache.load_or_build(
            directory=cfg.teacher_cache_dir,
            fingerprint=fingerprint, dataset=dataset, teacher_logits_fn=teacher_logits,
            accelerator=self.accelerator, pad_token_id=self.pad_token_id,
            batch_size=self._inference_batch_size, pad_to=self._pad_to,
            progress_bar=cfg.progress_bar,
        )

    # ---------------------------------------------------------------- optimisation

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.training_config
        decay, no_decay = [], []
        for param in self.student.parameters():
            if param.requires_grad:
                # Biases and LayerNorm weights (1-D) are not decayed.
                (decay if param.ndim >= 2 else no_decay).append(param)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        projection_params = list(self.projections.parameters())
        if projection_params:
            groups.append({"params": projection_params, "weight_decay": cfg.weight_decay,
                           "lr": cfg.projection_lr or cfg.lr})
        return make_adamw(groups, lr=cfg.lr)

    def _total_steps(self, steps_per_epoch: int) -> int:
        cfg = self.training_config
        if cfg.max_steps is not None:
            return cfg.max_steps
        return max(1, math.ceil(cfg.epochs * steps_per_epoch))

    # ----------------------------------------------------------------- checkpoints

    @property
    def run_dir(self) -> RunDir:
        """The layout of ``output_dir``: checkpoints, ``best/``, logs, history."""
        return RunDir(self.training_config.output_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir.checkpoints

    def checkpoints(self) -> list[Path]:
        """Saved checkpoints, oldest first."""
        return self.run_dir.saved_checkpoints()

    def _save_checkpoint(self) -> Path:
        acc = self.accelerator
        self.state.history = self.history.to_dict()
        path = self.run_dir.checkpoint(self.state.step)
        tmp = staging_path(path)
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            # A crash while saving leaves only a .tmp folder, never a half checkpoint.
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
            limit = self.training_config.save_total_limit
            if limit:
                for old in self.checkpoints()[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return path

    def _load_checkpoint(self, resume: bool | str) -> Path | None:
        if resume is True:
            found = self.checkpoints()
            if not found:
                self.accelerator.print(f"no checkpoint in {self.checkpoint_dir}; starting fresh")
                return None
            path = found[-1]
        else:
            path = Path(resume)
            if not path.is_dir():
                raise FileNotFoundError(f"checkpoint {path} does not exist")
        self.accelerator.load_state(str(path))
        self.history = History.from_dict(self.state.history) if self.state.history \
            else self.history
        return path

    def _save_best(self) -> None:
        acc = self.accelerator
        if not acc.is_main_process:
            return
        best, tmp = self.run_dir.best, self.run_dir.best_staging
        if tmp.exists():
            shutil.rmtree(tmp)
        acc.unwrap_model(self.student).save_pretrained(tmp)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(tmp)
        if best.exists():
            shutil.rmtree(best)
        tmp.rename(best)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def predict(self, data, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
        """Logits and labels for every example of ``data``, gathered from all ranks.

        Returns:
            ``{"logits": (N, C) float32, "labels": (N,) long or None}`` in data order.
        """
        model = model if model is not None else self.student
        dataset = self._as_dataset(data)
        was_training = model.training
        model.eval()
        try:
            logits = run_inference(
                dataset, lambda batch: [self.adaptor(model, batch).logits], self.accelerator,
                batch_size=self._inference_batch_size, pad_token_id=self.pad_token_id,
                pad_to=self._pad_to)[0]
        finally:
            model.train(was_training)
        labels = torch.as_tensor(dataset["labels"]) if "labels" in dataset.column_names else None
        return {"logits": logits, "labels": labels}

    def evaluate(self, data, model: torch.nn.Module | None = None) -> dict[str, float]:
        """Accuracy, F1 and MCC of ``model`` (default: the student) on ``data``."""
        out = self.predict(data, model)
        if out["labels"] is None:
            raise ValueError("evaluation data has no labels")
        return compute_classification_metrics(out["logits"].argmax(-1), out["labels"],
                                              num_labels=out["logits"].shape[-1])

    # ---------------------------------------------------------------------- train

    def train(
        self,
        train_data,
        eval_data=None,
        *,
        resume: bool | str = False,
        callbacks: Iterable[StepCallback] = (),
    ) -> History:
        """Run the loop and return the :class:`~textdistill.history.History`.

        Args:
            train_data: tokenized examples (``datasets.Dataset`` or a list of dicts) with
                ``input_ids``, ``attention_mask`` (optional ``token_type_ids``) and
                ``labels``.
            eval_data: the same, for evaluation (optional).
            resume: ``True`` to continue from the newest checkpoint in
                ``<output_dir>/checkpoints``, or a checkpoint path.
            callbacks: :class:`StepCallback` objects.
        """
        acc = self.accelerator
        cfg = self.training_config
        callbacks = list(callbacks)
        set_seed(cfg.seed)
        start_time = time.perf_counter()

        train_ds = self._as_dataset(train_data)
        eval_ds = self._as_dataset(eval_data) if eval_data is not None else None
        lengths = tuple(len(ids) for ids in train_ds["input_ids"])
        plan = BatchPlan(lengths, cfg.batch_size, acc.num_processes, cfg.seed,
                         cfg.group_by_length)
        accum = cfg.gradient_accumulation_steps
        steps_per_epoch = math.ceil(plan.batches_per_epoch / accum)
        total_steps = self._total_steps(steps_per_epoch)
        warmup = cfg.warmup_steps(total_steps)

        self._prepare_teachers()
        self.projections.to(acc.device)
        optimizer = self._optimizer()
        scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=warmup,
                                  num_training_steps=total_steps)
        student, optimizer = acc.prepare(self.student, optimizer)
        self.student = student
        if not self._registered:
            # The scheduler is stepped by hand (once per optimizer step, whatever the
            # process count), so it is registered rather than prepared.
            acc.register_for_checkpointing(scheduler, self.state)
            if len(self.projections):
                acc.register_for_checkpointing(self.projections)
            self._registered = True
        self._scheduler = scheduler

        if cfg.teacher_cache_dir is not None and self.objective.needs_teacher_logits:
            self._build_cache(train_ds)
        if resume:
            self._load_checkpoint(resume)
        if cfg.report_to:
            acc.init_trackers("textdistill", config=_flat_hparams(self))

        trainable = [p for p in student.parameters() if p.requires_grad] + \
            list(self.projections.parameters())
        need_s_hidden, need_s_attn = self.objective.student_needs()
        need_logits = self.objective.needs_teacher_logits
        student.train()
        bar = tqdm(total=total_steps, initial=self.state.step, desc="distilling"
                   if self.teachers else "fine-tuning", unit="step",
                   disable=not (cfg.progress_bar and acc.is_local_main_process))
        window: dict[str, torch.Tensor] = {}
        window_steps, window_samples, window_start = 0, 0, time.perf_counter()
        stop = False

        while self.state.step < total_steps and not stop:
            epoch = self.state.step // steps_per_epoch
            local = plan.local_batches(epoch, acc.process_index)
            groups = [local[i : i + accum] for i in range(0, len(local), accum)]
            for group in groups[self.state.step - epoch * steps_per_epoch :]:
                progress = self.state.step / total_steps
                for micro, positions in enumerate(group):
                    batch = self._collate(train_ds, positions)
                    last = micro == len(group) - 1
                    with (nullcontext() if last else acc.no_sync(student)):
                        with acc.autocast():
                            s_view = self.adaptor(student, batch, hidden_states=need_s_hidden,
                                                  attentions=need_s_attn)
                            t_logits, t_views = self._teacher_outputs(batch, need_logits)
                        out = self.objective(s_view, batch.get("labels"), progress,
                                             t_logits, t_views)
                        acc.backward(out.total / len(group))
                    for name, value in out.components.items():
                        window[name] = window.get(name, 0.0) + value.detach() / len(group)
                    window["total"] = window.get("total", 0.0) + out.total.detach() / len(group)
                    window_samples += len(positions)
                if acc.num_processes > 1 and len(self.projections):
                    # Projections sit outside the DDP-wrapped student; average their
                    # gradients by hand so every rank takes the same step.
                    for param in self.projections.parameters():
                        if param.grad is not None:
                            param.grad = acc.reduce(param.grad, reduction="mean")
                if cfg.max_grad_norm is not None:
                    acc.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                if not acc.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                self.projections.zero_grad(set_to_none=True)
                self.state.step += 1
                window_steps += 1
                bar.update(1)

                step = self.state.step
                if step % cfg.logging_steps == 0 or step == total_steps:
                    self._log_window(window, window_steps, window_samples,
                                     time.perf_counter() - window_start, steps_per_epoch, bar)
                    window, window_steps, window_samples = {}, 0, 0
                    window_start = time.perf_counter()
                end_of_epoch = step % steps_per_epoch == 0
                eval_now = eval_ds is not None and (
                    step == total_steps
                    or (cfg.eval_steps is not None and step % cfg.eval_steps == 0)
                    or (cfg.eval_steps is None and end_of_epoch))
                if eval_now:
                    stop = self._evaluate_and_track(eval_ds, steps_per_epoch) or stop
                for callback in callbacks:
                    stop = bool(callback.on_step_end(self, self.state)) or stop
                # A stopped run (early stopping, a callback) is saved too, so that it can
                # be resumed; nothing done is lost.
                save_now = (cfg.save_steps is not None and step % cfg.save_steps == 0) or \
                    (cfg.save_steps is None and end_of_epoch) or step == total_steps or stop
                if save_now:
                    self._save_checkpoint()
                if stop or step >= total_steps:
                    break
        bar.close()

        self.history.wall_time_s = time.perf_counter() - start_time
        if eval_ds is None:
            # Without evaluation the final student is the best one we know of.
            self._save_best()
        if acc.is_main_process:
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            self.history.save_json(self.run_dir.history)
        if cfg.report_to:
            acc.end_training()
        return self.history

    def _log_window(self, window, steps, samples, seconds, steps_per_epoch, bar) -> None:
        acc = self.accelerator
        if not window:
            return
        names = sorted(window)
        values = torch.stack([torch.as_tensor(window[n], dtype=torch.float32,
                                              device=acc.device) for n in names]) / steps
        values = acc.reduce(values, reduction="mean").tolist()
        lr = self._scheduler.get_last_lr()[0]
        record = {"step": self.state.step, "epoch": self.state.step / steps_per_epoch, "lr": lr}
        for name, value in zip(names, values):
            record["loss" if name == "total" else f"loss/{name}"] = value
        self.history.log_train(record)
        throughput = {"step": self.state.step,
                      "samples_per_second": samples * acc.num_processes / max(seconds, 1e-9),
                      "steps_per_second": steps / max(seconds, 1e-9)}
        self.history.log_throughput(throughput)
        acc.log({k: v for k, v in record.items() if k != "step"} |
                {"train/samples_per_second": throughput["samples_per_second"]},
                step=self.state.step)
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")

    def _evaluate_and_track(self, eval_ds, steps_per_epoch) -> bool:
        """Evaluate, keep ``best/`` up to date; return True when early stopping fires."""
        cfg = self.training_config
        metrics = self.evaluate(eval_ds)
        record = {"step": self.state.step, "epoch": self.state.step / steps_per_epoch, **metrics}
        self.history.log_eval(record)
        self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.state.step)
        if cfg.metric_for_best not in metrics:
            raise ValueError(f"train.metric_for_best: {cfg.metric_for_best!r} is not an eval "
                             f"metric; choose one of {sorted(metrics)}")
        value = metrics[cfg.metric_for_best]
        best = self.state.best_metric
        improved = best is None or (value > best if greater_is_better(cfg.metric_for_best)
                                    else value < best)
        if improved:
            self.state.best_metric, self.state.best_step = value, self.state.step
            self.state.evals_without_improvement = 0
            self._save_best()
        else:
            self.state.evals_without_improvement += 1
        self.history.best_metric = self.state.best_metric
        self.history.best_step = self.state.best_step
        patience = cfg.early_stopping_patience
        return patience is not None and self.state.evals_without_improvement >= patience


def _flat_hparams(distiller: Distiller) -> dict[str, Any]:
    """Scalar hyper-parameters for trackers (TensorBoard's hparams take no lists)."""
    flat: dict[str, Any] = {}
    for prefix, config in (("train", distiller.training_config),
                           ("distill", distiller.distill_config)):
        for key, value in to_dict(config).items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{prefix}.{key}"] = value
            elif value is not None:
                flat[f"{prefix}.{key}"] = str(value)
    flat["num_teachers"] = len(distiller.teachers)
    return flat


__all__ = ["Distiller", "StepCallback", "TrainState"]
