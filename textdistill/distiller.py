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

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from .accelerator import make_accelerator, make_optimizer, total_steps, tracker_config
from .checkpoints import checkpoint_to_resume, load_checkpoint, save_best, save_checkpoint
from .config import DistillationConfig, TrainingConfig
from .data.batching import BatchPlan, model_inputs, pad_batch
from .errors import NonFiniteError, TrainingInterrupted
from .history import History, LossWindow
from .inference import run_inference
from .models.adaptors import Adaptor, hf_adaptor, unwrap_model
from .nonfinite import NonFiniteGuard, check_finite_weights
from .objective import LossOutput, Objective, batch_loss
from .plan import plan
from .run_dir import RunDir
from .state import DeferredInterrupt, StepCallback, TrainState
from .teacher_cache import TeacherLogitCache
from .teachers import Teachers


@dataclass
class _Run:
    """What one call of :meth:`Distiller.train` steps through."""

    batches: BatchPlan
    steps_per_epoch: int
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[torch.nn.Parameter]


def _eval_line(step: int, metrics: Mapping[str, float], *, best: bool) -> str:
    """One evaluation in one line: ``eval step 120: accuracy 0.8812 f1 0.8790 mcc 0.7601
    (best)``; ``best`` marks a new best ``metric_for_best``."""
    values = " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    return f"eval step {step}: {values}{' (best)' if best else ''}"


def _as_list(teacher) -> list[torch.nn.Module]:
    return [] if teacher is None else list(teacher) if isinstance(teacher, (list, tuple)) \
        else [teacher]


class Distiller:
    """Distil ``teacher`` (or several) into ``student``, or fine-tune ``student`` alone.

    Args:
        teacher: a fine-tuned classifier, a list of them (multi-teacher), or ``None`` for
            plain supervised fine-tuning.
        student: the model to train (any ``AutoModelForSequenceClassification``).
        distill_config: losses, weights, schedules, matches (default: logit KD).
        training_config: the loop's settings (default: :class:`TrainingConfig`).
        tokenizer: the student's tokenizer, saved with ``best/``; its pad id pads the
            batches.
        teacher_tokenizers: ``{teacher index: tokenizer}`` for the teachers that read the
            text through their own tokenizer. Teacher ``i`` then reads the data's
            ``t{i}_input_ids``, ``t{i}_attention_mask`` (``t{i}_token_type_ids``) columns
            (see :func:`~textdistill.data.loading.add_teacher_columns`), padded with its
            tokenizer's pad id, and only logit losses and sentence-level hidden matches
            (``pkd``) may use it.
        adaptor / teacher_adaptor: turn model outputs into a
            :class:`~textdistill.models.adaptors.ModelView` (default: Hugging Face).
        accelerator: an existing ``Accelerator`` (default: built from the config).

    Example::

        distiller = Distiller(teacher, student, DistillationConfig(temperature=4),
                              TrainingConfig(output_dir="runs/sst2", epochs=3))
        history = distiller.train(train_ds, eval_ds)   # one line per evaluation
        history.plot("runs/sst2/history.png")
        distiller.evaluate(eval_ds, model="best")      # best/, not the last step
    """

    def __init__(
        self,
        teacher: torch.nn.Module | Sequence[torch.nn.Module] | None,
        student: torch.nn.Module,
        distill_config: DistillationConfig | None = None,
        training_config: TrainingConfig | None = None,
        *,
        tokenizer: Any = None,
        teacher_tokenizers: Mapping[int, Any] | None = None,
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
        self._teachers = Teachers(self.teachers, self.teacher_adaptor, teacher_tokenizers)
        self.plan = plan(self.distill_config, student, self.teachers,
                         own_tokenizer=self.teacher_pad_ids)
        self.matches = self.plan.matches
        self.projections = self.plan.projections
        self.objective = Objective(self.distill_config if self.teachers else None,
                                   self.matches, self.projections, len(self.teachers))
        self.objective.ensure_attention_maps(student, self.teachers)

        cfg = self.training_config
        self.accelerator = accelerator or make_accelerator(cfg)
        self.state = TrainState()
        self.history = History(metric_for_best=cfg.metric_for_best)
        # The student and optimizer the last train() prepared on the Accelerator.
        self._prepared: tuple[torch.nn.Module, Any] | None = None
        self._saved_step: int | None = None
        self._cache: TeacherLogitCache | None = None

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
        batch = pad_batch(dataset[positions], self.pad_token_id, self._pad_to,
                          teacher_pad_ids=self.teacher_pad_ids)
        # Positions in this dataset key the teacher cache, whatever idx the data carried.
        batch["idx"] = torch.as_tensor(positions, dtype=torch.long)
        device = self.accelerator.device
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    # ---------------------------------------------------------------- the teachers

    @property
    def teacher_pad_ids(self) -> dict[int, int]:
        """``{teacher index: pad id}`` of the teachers that read their own token columns."""
        return self._teachers.pad_ids

    @property
    def _inference_batch_size(self) -> int:
        # No gradients or optimizer state in inference: twice the training batch fits.
        cfg = self.training_config
        return cfg.eval_batch_size or cfg.batch_size * 2

    def _build_cache(self, dataset) -> None:
        cfg = self.training_config
        self._cache = TeacherLogitCache.load_or_build(
            directory=cfg.teacher_cache_dir,
            fingerprint=self._teachers.fingerprint(dataset, self._pad_to), dataset=dataset,
            teacher_logits_fn=self._teachers.logits, accelerator=self.accelerator,
            pad_token_id=self.pad_token_id, batch_size=self._inference_batch_size,
            pad_to=self._pad_to, teacher_pad_ids=self.teacher_pad_ids,
            progress_bar=cfg.progress_bar,
        )

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
        self.state.history = self.history.to_dict()
        loop_state = {"train": self.state.state_dict(), "scheduler": self._scheduler.state_dict()}
        path = save_checkpoint(self.accelerator, self.run_dir, self.state.step,
                               self.training_config.save_total_limit, loop_state,
                               self.projections.state_dict())
        self._saved_step = self.state.step
        return path

    def _load_checkpoint(self, resume: bool | str) -> Path | None:
        path = checkpoint_to_resume(self.run_dir, resume)
        if path is None:
            self.accelerator.print(f"no checkpoint in {self.checkpoint_dir}; starting fresh")
            return None
        loop_state, tensors = load_checkpoint(self.accelerator, path)
        self.state.load_state_dict(loop_state["train"])
        self._scheduler.load_state_dict(loop_state["scheduler"])
        self.projections.load_state_dict(tensors)
        self.history = History.from_dict(self.state.history) if self.state.history \
            else self.history
        return path

    def _save_best(self) -> None:
        student = self.accelerator.unwrap_model(self.student)
        # Every process checks (they hold the same weights), so that all of them stop.
        check_finite_weights(student, f"save best/ at step {self.state.step}")
        if self.accelerator.is_main_process:
            save_best(student, self.tokenizer, self.run_dir)

    # ------------------------------------------------------------------ evaluation

    def load_best(self) -> torch.nn.Module:
        """The best model of the last :meth:`train` (``<output_dir>/best/``, chosen by
        ``metric_for_best``), loaded fresh from disk onto the run's device.

        :attr:`student` is the model of the last step, which need not be the best one.

        Raises:
            FileNotFoundError: ``best/`` does not exist (no :meth:`train` has saved it).
        """
        best = self.run_dir.best
        if not (best / "config.json").is_file():
            raise FileNotFoundError(f"no best model in {best}: train() writes it at the "
                                    "evaluation that improves metric_for_best (or at the end "
                                    "of a run without eval data)")
        # The student's own class, so a model outside the Auto mappings loads too.
        model_class = type(self.accelerator.unwrap_model(self.student, keep_fp32_wrapper=False))
        return model_class.from_pretrained(best).to(self.accelerator.device)

    def _model_to_run(self, model: torch.nn.Module | str | None) -> torch.nn.Module:
        if model is None:
            return self.student
        if model == "best":
            return self.load_best()
        if isinstance(model, str):
            raise ValueError(f"model: {model!r} is not a model; pass a model, None (the "
                             "student) or \"best\" (the best/ model)")
        return model

    @torch.no_grad()
    def predict(self, data, model: torch.nn.Module | str | None = None,
                ) -> dict[str, torch.Tensor]:
        """Logits and labels for every example of ``data``, gathered from all ranks.

        ``model`` defaults to the student as it is now (after :meth:`train`: the last
        step's); ``"best"`` runs the best model of the last run (:meth:`load_best`). One
        of the Distiller's teachers (recognised by identity) runs through the teacher
        adaptor and, when it has its own tokenizer, reads its own token columns. A
        progress bar shows the pass when ``training_config.progress_bar`` is set.

        Returns:
            ``{"logits": (N, C) float32, "labels": (N,) long or None}`` in data order.
        """
        model = self._model_to_run(model)
        dataset = model_inputs(data)
        index = self._teachers.index_of(model)
        if index is None:
            def forward(batch):
                return [self.adaptor(model, batch).logits]
        else:
            def forward(batch):
                return self._teachers.logits(batch, index)
        was_training = model.training
        model.eval()
        try:
            logits = run_inference(
                dataset, forward, self.accelerator,
                batch_size=self._inference_batch_size, pad_token_id=self.pad_token_id,
                pad_to=self._pad_to, teacher_pad_ids=self.teacher_pad_ids,
                progress_bar=self.training_config.progress_bar, description="evaluating")[0]
        finally:
            model.train(was_training)
        labels = torch.as_tensor(dataset["labels"]) if "labels" in dataset.column_names else None
        return {"logits": logits, "labels": labels}

    def evaluate(self, data, model: torch.nn.Module | str | None = None) -> dict[str, float]:
        """Accuracy, F1 and MCC of ``model`` on ``data``.

        ``model`` defaults to the student as it is now: after :meth:`train` that is the
        model of the last step, not necessarily the best one. ``model="best"`` evaluates
        the best model the run saved in ``best/`` (the one ``textdistill export``
        exports); :meth:`load_best` returns it.
        """
        out = self.predict(data, model)
        if out["labels"] is None:
            raise ValueError("evaluation data has no labels")
        # Deferred: `evaluate` imports transformers.pipelines (~2 s per process), which a
        # CLI call or a script that never evaluates should not pay.
        from .metrics import compute_classification_metrics

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
                ``<output_dir>/checkpoints``, or a checkpoint path. Without it the run
                starts at step 0 (the student keeps its current weights).
            callbacks: :class:`StepCallback` objects.

        Raises:
            TrainingInterrupted: Ctrl-C (single process): the loop finished the step it
                was in and checkpointed it; ``resume=True`` continues from there.
        """
        acc, cfg = self.accelerator, self.training_config
        set_seed(cfg.seed)
        start_time = time.perf_counter()
        train_ds = model_inputs(train_data)
        eval_ds = model_inputs(eval_data) if eval_data is not None else None
        run = self._start(train_ds, resume)
        self._nonfinite = NonFiniteGuard.for_run(acc, run.optimizer, cfg.max_nonfinite_steps)
        bar = tqdm(total=run.total_steps, initial=self.state.step, unit="step",
                   desc="distilling" if self.teachers else "fine-tuning",
                   disable=not (cfg.progress_bar and acc.is_local_main_process))
        window = LossWindow()
        stop = False
        interrupt = DeferredInterrupt()
        # Several processes would see Ctrl-C after different steps and then wait for
        # each other in the checkpoint; they stop as before, at their last checkpoint.
        with interrupt if acc.num_processes == 1 else nullcontext(), \
                self._history_kept_on(NonFiniteError):
            while self.state.step < run.total_steps and not stop:
                epoch = self.state.step // run.steps_per_epoch
                local = run.batches.local_batches(epoch, acc.process_index)
                accum = cfg.gradient_accumulation_steps
                groups = [local[i : i + accum] for i in range(0, len(local), accum)]
                for group in groups[self.state.step - epoch * run.steps_per_epoch :]:
                    self._optimizer_step(run, train_ds, group, window)
                    bar.update(1)
                    stop = self._after_step(run, window, bar, eval_ds, callbacks) or \
                        interrupt.requested
                    if stop or self.state.step >= run.total_steps:
                        break
        bar.close()
        if interrupt.requested:
            if self._saved_step != self.state.step:
                self._save_checkpoint()
            raise TrainingInterrupted(self.state.step,
                                      str(self.run_dir.checkpoint(self.state.step)))

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

    @contextmanager
    def _history_kept_on(self, error: type[Exception]):
        """Save ``history.json`` when ``error`` stops the loop: the steps up to it are what
        the user reads to see why."""
        try:
            yield
        except error:
            if self.accelerator.is_main_process:
                Path(self.training_config.output_dir).mkdir(parents=True, exist_ok=True)
                self.history.save_json(self.run_dir.history)
            raise

    def _start(self, train_ds, resume: bool | str) -> _Run:
        """Prepare models, optimizer and scheduler (and the teacher cache); resume."""
        acc, cfg = self.accelerator, self.training_config
        lengths = tuple(len(ids) for ids in train_ds["input_ids"])
        batches = BatchPlan(lengths, cfg.batch_size, acc.num_processes, cfg.seed,
                            cfg.group_by_length)
        steps_per_epoch = math.ceil(batches.batches_per_epoch / cfg.gradient_accumulation_steps)
        steps = total_steps(cfg, steps_per_epoch)

        if self._prepared is not None:
            # A second train() on this Distiller (a notebook resuming after Ctrl-C): take
            # the first call's student and optimizer off the Accelerator, or it would save
            # two of each and look for optimizer_1.bin in a checkpoint of one.
            model, old_optimizer = self._prepared
            acc._models[:] = [m for m in acc._models if m is not model]
            acc._optimizers[:] = [o for o in acc._optimizers if o is not old_optimizer]
            self.student = acc.unwrap_model(model, keep_fp32_wrapper=False)
        self.state = TrainState()
        self.history = History(metric_for_best=cfg.metric_for_best)
        self._saved_step = None

        self._teachers.prepare(acc.device)
        self.projections.to(acc.device)
        optimizer = make_optimizer(self.student, self.projections, cfg)
        # The scheduler is stepped by hand (once per optimizer step, whatever the process
        # count), so it is not prepared; checkpoints carry its state as JSON.
        scheduler = get_scheduler(cfg.scheduler, optimizer,
                                  num_warmup_steps=cfg.warmup_steps(steps),
                                  num_training_steps=steps)
        self.student, optimizer = acc.prepare(self.student, optimizer)
        self._prepared = (self.student, optimizer)
        self._scheduler = scheduler

        if cfg.teacher_cache_dir is not None and self.objective.needs_teacher_logits:
            self._build_cache(train_ds)
        if resume:
            self._load_checkpoint(resume)
        if cfg.report_to:
            acc.init_trackers("textdistill", config=tracker_config(
                cfg, self.distill_config, len(self.teachers)))
        self.student.train()
        trainable = [p for p in self.student.parameters() if p.requires_grad] + \
            list(self.projections.parameters())
        return _Run(batches, steps_per_epoch, steps, optimizer, scheduler, trainable)

    def _optimizer_step(self, run: _Run, train_ds, group: list[list[int]],
                        window: LossWindow) -> None:
        """Forward and backward over one group of micro-batches, then one update - none
        when the step's loss or gradient norm is not finite (:mod:`textdistill.nonfinite`)."""
        acc, cfg, student = self.accelerator, self.training_config, self.student
        progress = self.state.step / run.total_steps
        # The step's loss by component (mean over micro-batches), one vector: "total" last.
        losses: torch.Tensor | None = None
        for micro, positions in enumerate(group):
            batch = self._collate(train_ds, positions)
            last = micro == len(group) - 1
            with (nullcontext() if last else acc.no_sync(student)):
                out, _ = batch_loss(
                    self.objective, student, batch, progress, adaptor=self.adaptor,
                    teachers=self._teachers, cache=self._cache, autocast=acc.autocast)
                acc.backward(out.total / len(group))
            values = torch.stack([*out.components.values(), out.total]).detach() / len(group)
            losses = values if losses is None else losses + values
        if acc.num_processes > 1 and len(self.projections):
            # Projections sit outside the DDP-wrapped student; average their
            # gradients by hand so every rank takes the same step.
            for param in self.projections.parameters():
                if param.grad is not None:
                    param.grad = acc.reduce(param.grad, reduction="mean")
        grad_norm = None
        if cfg.max_grad_norm is not None:
            grad_norm = acc.clip_grad_norm_(run.trainable, cfg.max_grad_norm)
        self.state.step += 1
        names = [*out.components, "total"]
        guard = self._nonfinite
        bad = guard.observe(
            self.state.step, names, losses, grad_norm,
            (lambda t: acc.reduce(t, reduction="sum")) if acc.num_processes > 1 else None)
        # A skipped step's losses stay out of the logged averages (_log_window).
        kept = torch.where(bad, 0.0, losses)
        window.add(LossOutput(kept[-1], dict(zip(names[:-1], kept[:-1]))), 1,
                   sum(len(positions) for positions in group))
        window.steps += 1
        guard.step(acc, run.optimizer, run.scheduler, bad)
        run.optimizer.zero_grad(set_to_none=True)
        self.projections.zero_grad(set_to_none=True)

    def _after_step(self, run: _Run, window: LossWindow, bar, eval_ds,
                    callbacks: Iterable[StepCallback]) -> bool:
        """Log, evaluate and checkpoint as the cadence says; return whether to stop."""
        cfg, step = self.training_config, self.state.step
        if step % cfg.logging_steps == 0 or step == run.total_steps:
            self._log_window(window, run.steps_per_epoch, bar)
            window.reset()
        end_of_epoch = step % run.steps_per_epoch == 0
        eval_now = eval_ds is not None and (
            step == run.total_steps
            or (cfg.eval_steps is not None and step % cfg.eval_steps == 0)
            or (cfg.eval_steps is None and end_of_epoch))
        if eval_now:
            self._nonfinite.check()  # on GPU the counters are read where the host syncs
        stop = eval_now and self._evaluate_and_track(eval_ds, run.steps_per_epoch)
        for callback in callbacks:
            stop = bool(callback.on_step_end(self, self.state)) or stop
        # A stopped run (early stopping, a callback) is saved too, so that it can be
        # resumed; nothing done is lost.
        save_now = (cfg.save_steps is not None and step % cfg.save_steps == 0) or \
            (cfg.save_steps is None and end_of_epoch) or step == run.total_steps or stop
        if save_now:
            self._nonfinite.check()  # a diverged run keeps its last good checkpoint
            self._save_checkpoint()
        return stop

    def _log_window(self, window: LossWindow, steps_per_epoch: int, bar) -> None:
        acc = self.accelerator
        if not window.sums:
            return
        self._nonfinite.check()
        skipped = self._nonfinite.take_skipped()
        lr = self._scheduler.get_last_lr()[0]
        record, throughput = window.records(
            self.state.step, steps_per_epoch, lr, acc.num_processes,
            lambda values: acc.reduce(values.to(acc.device), reduction="mean"))
        if skipped:
            # Skipped steps added 0 to the sums: average over the steps that counted (NaN
            # when none did); throughput still counts every step.
            counted = window.steps - skipped
            scale = window.steps / counted if counted else math.nan
            record |= {k: v * scale for k, v in record.items()
                       if k == "loss" or k.startswith("loss/")}
        record["nonfinite_steps"] = skipped
        self.history.log_train(record)
        self.history.log_throughput(throughput)
        acc.log({k: v for k, v in record.items() if k != "step"} |
                {"train/samples_per_second": throughput["samples_per_second"]},
                step=self.state.step)
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")

    def _evaluate_and_track(self, eval_ds, steps_per_epoch) -> bool:
        """Evaluate, keep ``best/`` up to date, print the metrics in one line (with the
        progress bar); return True when early stopping fires."""
        cfg = self.training_config
        metrics = self.evaluate(eval_ds)
        record = {"step": self.state.step, "epoch": self.state.step / steps_per_epoch, **metrics}
        self.history.log_eval(record)
        self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.state.step)
        if cfg.metric_for_best not in metrics:
            raise ValueError(f"train.metric_for_best: {cfg.metric_for_best!r} is not an eval "
                             f"metric; choose one of {sorted(metrics)}")
        from .metrics import greater_is_better

        improved = self.state.record_eval(metrics[cfg.metric_for_best],
                                          greater_is_better(cfg.metric_for_best))
        if improved:
            self._save_best()
        if cfg.progress_bar and self.accelerator.is_main_process:
            # tqdm.write prints above the training bar instead of through it.
            tqdm.write(_eval_line(self.state.step, metrics, best=improved))
        self.history.best_metric = self.state.best_metric
        self.history.best_step = self.state.best_step
        patience = cfg.early_stopping_patience
        return patience is not None and self.state.evals_without_improvement >= patience


__all__ = ["Distiller", "StepCallback", "TrainState"]
