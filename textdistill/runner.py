"""The commands' work, as functions: run or check a recipe, export a run.

:func:`run_recipe` is ``textdistill finetune`` / ``distill``: it builds and checks
everything (:func:`~textdistill.build.build`), trains through the one
:class:`~textdistill.distiller.Distiller` loop and writes, in ``output.dir`` (laid out by
:class:`~textdistill.run_dir.RunDir`):

* ``recipe.yaml`` - the resolved recipe (overrides applied, paths absolute);
* ``best/`` - the best student as a loadable Hub-format model + tokenizer (the engine);
* ``history.json``, ``checkpoints/`` (the engine);
* ``results.json`` - metrics, parameter counts, latencies, sizes and timings
  (see :func:`run_recipe` for the keys).

:func:`describe` is ``textdistill check`` and :func:`export_run` is ``textdistill export``
(``textdistill evaluate`` is :mod:`textdistill.evaluation`). The CLI
(:mod:`textdistill.cli`) only parses and prints.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .build import build
from .config import TrainingConfig
from .errors import ConfigError, TrainingInterrupted
from .recipe import Recipe
from .resume import check_resume
from .run_dir import RunDir
from .run_lock import RunLock
from .speed import latency_profile
from .state import StepCallback

Log = Callable[[str], None]


def _version() -> str:
    from .version import __version__

    return __version__


def is_main_process() -> bool:
    """Whether this is the global rank-0 process (or the only one).

    Usable before the Accelerator exists: torchrun and accelerate launch both set RANK.
    """
    return int(os.environ.get("RANK", "0")) == 0


# ------------------------------------------------------------------------ run directory


def check_output_dir(recipe: Recipe, resume: bool) -> list[str]:
    """The earlier run's entries in ``output.dir`` (see :meth:`RunDir.previous_run`).

    Raises:
        FileExistsError: ``output.dir`` holds an earlier run, and neither ``resume`` nor
            ``output.overwrite`` is set.
    """
    out = recipe.output_dir
    found = RunDir(out).previous_run()
    if found and not resume and not recipe.output.overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(found)}); pass --resume to continue it, "
            "or --set output.overwrite=true to start over (deletes its checkpoints, best/ "
            "and results), or choose another output.dir"
        )
    return found


def prepare_output_dir(recipe: Recipe, resume: bool, log: Log = print) -> Path:
    """Make ``output.dir`` ready: refuse to start over an earlier run unless asked, and with
    ``output.overwrite`` (and no ``resume``) set the earlier run aside
    (:attr:`RunDir.set_aside`); :func:`run_recipe` deletes it once the new run has a
    checkpoint, or puts it back if the new run fails before that.

    Raises:
        FileExistsError: as :func:`check_output_dir`.
    """
    out = recipe.output_dir
    if check_output_dir(recipe, resume) and not resume:
        if is_main_process():
            log(f"output.overwrite: starting over in {out} (the earlier run is kept in "
                f"{RunDir(out).set_aside.name}/ until the first checkpoint)")
            RunDir(out).set_aside_run()
    out.mkdir(parents=True, exist_ok=True)
    return out


class _DropSetAsideAfterCheckpoint(StepCallback):
    """Deletes the set-aside earlier run once the new run has a checkpoint."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_step_end(self, distiller: Any, state: Any) -> bool:
        if self.run.set_aside.is_dir() and self.run.saved_checkpoints():
            self.run.drop_set_aside()
        return False


@contextmanager
def _settling_set_aside(run: RunDir, log: Log) -> Iterator[None]:
    """On the way out, however it goes: keep the new run if it has a checkpoint, else put
    the set-aside earlier run back (:meth:`RunDir.settle_set_aside`)."""
    try:
        yield
    finally:
        if is_main_process() and run.settle_set_aside():
            log(f"note: this run stopped before its first checkpoint; the earlier run in "
                f"{run.root} is restored")


def _settle_killed_overwrite(run: RunDir, log: Log) -> None:
    """A run killed (SIGKILL, power loss) mid-overwrite left the earlier run set aside."""
    restored = run.settle_set_aside() if is_main_process() else None
    if restored is not None:
        log(f"note: {'restored' if restored else 'deleted'} the earlier run that a killed "
            f"output.overwrite run had set aside in {run.set_aside.name}/ (the killed run "
            f"{'had no' if restored else 'had a'} checkpoint)")


def _lock(out: Path, log: Log) -> AbstractContextManager[Any]:
    # Only rank 0 holds the lock of a multi-process run.
    return RunLock(out, log) if is_main_process() else nullcontext()


def _write_recipe(recipe: Recipe, out: Path) -> None:
    RunDir(out).recipe.write_text(recipe.to_yaml(), encoding="utf-8")


def make_distiller(built: Any, training_config: TrainingConfig | None = None):
    """The :class:`~textdistill.distiller.Distiller` of a built recipe.

    Raises:
        ConfigError: the distill section does not fit the models (see
            :func:`~textdistill.plan.plan`).
    """
    from .distiller import Distiller

    recipe = built.recipe
    return Distiller(built.teachers or None, built.student, recipe.distill,
                     training_config or recipe.train, tokenizer=built.tokenizer,
                     teacher_tokenizers=built.teacher_tokenizers)


def _metrics_only(record: dict[str, Any] | None) -> dict[str, float] | None:
    if record is None:
        return None
    return {k: v for k, v in record.items() if k not in ("step", "epoch")}


def _check_precision(train: TrainingConfig) -> None:
    import torch

    if train.precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("train.precision: fp16 needs a GPU and none is available here; use "
                          "--set train.precision=no (or bf16)")


# ---------------------------------------------------------------------------- training


def _evaluate_teachers(distiller: Any, teachers: list[Any], eval_ds: Any,
                       log: Log) -> list[dict[str, float]]:
    """Each teacher's metrics on the eval split, once per run before training: a teacher
    at chance level shows a problem now, not after the run."""
    evals = []
    for i, teacher in enumerate(teachers):
        teacher.to(distiller.accelerator.device)
        metrics = distiller.evaluate(eval_ds, teacher)
        evals.append(metrics)
        log(f"teacher{'' if len(teachers) == 1 else f' {i}'} on the eval split: "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return evals


def _eval_example(eval_ds: Any, tokenizer: Any, num_texts: int) -> dict[str, str] | None:
    """The first eval example's text (and its pair), decoded from the student's token ids:
    the model card's usage snippet runs on it, so it shows the model's own kind of text.
    Decoded rather than read from the data, which may be gone or offline at export."""
    if tokenizer is None or not len(eval_ds):
        return None
    special = set(tokenizer.all_special_ids) - {tokenizer.sep_token_id}
    segments: list[list[int]] = [[]]
    for token in eval_ds[0]["input_ids"]:
        if token == tokenizer.sep_token_id:
            segments.append([])
        elif token not in special:
            segments[-1].append(token)
    texts = [text for text in (tokenizer.decode(ids).strip() for ids in segments) if text]
    if not texts:
        return None
    example = {"text": texts[0]}
    if num_texts == 2 and len(texts) > 1:
        example["text_pair"] = texts[1]
    return example


def _results(recipe: Recipe, mode: str, built: Any, distiller: Any, history: Any,
             teacher_evals: list[dict[str, float]], out: Path) -> dict[str, Any]:
    """``results.json`` of a finished run (see :func:`run_recipe`), less the wall time."""
    from .data.transfer import train_sources
    from .speed import count_parameters

    train_ds, eval_ds = built.data["train"], built.data["eval"]
    student = distiller.accelerator.unwrap_model(distiller.student)
    best_eval = next((r for r in history.eval if r.get("step") == history.best_step), None)
    seq_len = recipe.data.max_length
    student_speed = latency_profile(student, seq_len)
    teacher_speed = latency_profile(built.teachers[0], seq_len) if built.teachers else None
    results = {
        "mode": mode,
        "textdistill_version": _version(),
        "recipe": RunDir(out).recipe.name,
        "teacher": recipe.teacher_models if built.teachers else None,
        "student": {"kind": recipe.student.kind},
        "final_eval": _metrics_only(history.last_eval()),
        "best_eval": _metrics_only(best_eval),
        "best_step": history.best_step,
        "final_step": distiller.state.step,
        "nonfinite_steps": sum(r.get("nonfinite_steps", 0) for r in history.train),
        "metric_for_best": recipe.train.metric_for_best,
        "teacher_eval": teacher_evals[0] if teacher_evals else None,
        "params": {
            "student": count_parameters(student),
            "teacher": count_parameters(built.teachers[0]) if built.teachers else None,
        },
        "latency": {
            "student": student_speed["latency_ms"],
            "teacher": teacher_speed["latency_ms"] if teacher_speed else None,
            "seq_len": student_speed["seq_len"],
            "device": str(distiller.accelerator.device),
        },
        "throughput": {
            "student": student_speed["samples_per_second"],
            "teacher": teacher_speed["samples_per_second"] if teacher_speed else None,
        },
        "train_examples": len(train_ds),
        "train_examples_by_source": train_sources(train_ds),
        "eval_examples": len(eval_ds),
        "eval_example": _eval_example(eval_ds, built.tokenizer, len(recipe.data.text_columns)),
        "label_names": built.label_names,
        "train_time_s": history.wall_time_s,
        "output_dir": str(out),
    }
    if len(built.teachers) > 1:
        results["teachers_eval"] = teacher_evals
        results["params"]["teachers"] = [count_parameters(t) for t in built.teachers]
    return results


def run_recipe(recipe: Recipe, mode: str, *, resume: bool = False, log: Log = print) -> dict:
    """Fine-tune or distil as ``recipe`` says; write and return ``results.json``.

    Args:
        recipe: the validated recipe.
        mode: ``"finetune"`` or ``"distill"``.
        resume: continue from the newest checkpoint in ``output.dir/checkpoints``.
        log: where progress lines go.

    Returns:
        The results: ``mode``, ``final_eval`` and ``best_eval`` (accuracy, f1, mcc),
        ``best_step``, ``final_step``, ``params`` (``student``, ``teacher``),
        ``teacher_eval`` (distill), ``latency`` (ms by batch size for ``student`` and
        ``teacher``), ``throughput``, ``train_examples`` (all rows) and
        ``train_examples_by_source`` (``labelled``, ``transfer``: ``data.transfer`` texts,
        ``augmented``: ``data.augment`` variants), ``eval_examples``, ``eval_example``
        (the first eval text, ``{"text"}`` or with ``"text_pair"``: the model card's usage
        input), ``label_names``, ``wall_time_s`` (the whole command), ``train_time_s`` and
        ``textdistill_version``; with ``output.quantize`` also ``onnx`` (see
        :func:`~textdistill.quantize.quantize_run`).

    Raises:
        ConfigError, FileNotFoundError, FileExistsError: bad input (see
            :func:`~textdistill.build.build`, :func:`prepare_output_dir`,
            :func:`~textdistill.resume.check_resume`).
        RunLockedError: another run uses ``output.dir``
            (:class:`~textdistill.run_lock.RunLock`).
        MissingExtraError: ``output.quantize`` without the deploy extra (before training).
        TrainingInterrupted: Ctrl-C; the step it stopped at is checkpointed.
    """
    from .prune import prune_student
    from .quantize import check_run_quantize, quantize_run

    start = time.perf_counter()
    _check_precision(recipe.train)
    check_run_quantize(recipe)  # not after the training it would follow
    run = RunDir(recipe.output_dir)
    with _lock(run.root, log):
        _settle_killed_overwrite(run, log)
        check_output_dir(recipe, resume)  # fail fast, before loading anything
        resume_notes = check_resume(recipe, resume)
        built = build(recipe, mode)
        # Before the Distiller: its optimizer holds the student's (narrowed) parameters.
        prune_student(built, log)
        distiller = make_distiller(built)
        # Only now, with every check passed, may an earlier run be set aside.
        out = prepare_output_dir(recipe, resume, log)
        with _settling_set_aside(run, log):
            history, teacher_evals = _train(recipe, mode, resume, built, distiller, out,
                                            resume_notes, log)
        results = _results(recipe, mode, built, distiller, history, teacher_evals, out)
        results["wall_time_s"] = time.perf_counter() - start
        if distiller.accelerator.is_main_process:
            _write_results(run, results)
            onnx = quantize_run(recipe, log)  # its model card reads results.json
            if onnx is not None:
                results["onnx"] = onnx
                results["wall_time_s"] = time.perf_counter() - start
                _write_results(run, results)
    return results


def _write_results(run: RunDir, results: dict[str, Any]) -> None:
    run.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _train(recipe: Recipe, mode: str, resume: bool, built: Any, distiller: Any, out: Path,
           resume_notes: list[str], log: Log) -> tuple[Any, list[dict[str, float]]]:
    """The part of :func:`run_recipe` that writes: the recipe, then training."""
    for note in (*recipe.notes, *built.notes, *distiller.plan.notes, *resume_notes):
        log(f"note: {note}")
    if is_main_process():
        _write_recipe(recipe, out)

    train_ds, eval_ds = built.data["train"], built.data["eval"]
    log(f"{mode}: {len(train_ds)} training and {len(eval_ds)} eval examples -> {out}")

    teacher_evals = _evaluate_teachers(distiller, built.teachers, eval_ds, log)
    callbacks = [_DropSetAsideAfterCheckpoint(RunDir(out))] if is_main_process() else []
    try:
        history = distiller.train(train_ds, eval_ds, resume=resume, callbacks=callbacks)
    except TrainingInterrupted as interrupted:
        # The CLI prints the exception as its one line; a notebook caller gets it raised.
        raise TrainingInterrupted(interrupted.step, interrupted.checkpoint,
                                  "resume with --resume") from None
    return history, teacher_evals


def describe(recipe: Recipe, mode: str) -> dict[str, Any]:
    """What ``textdistill check`` shows: models built, nothing trained, no data loaded.

    Returns:
        ``{"built", "params": {"teachers": [...], "student": n, "projections": n},
        "plan", "mapping_table", "pruning", "onnx_dir"}`` - the plan is the one the
        Distiller itself makes (:func:`~textdistill.plan.plan`); ``pruning`` what
        ``student.prune`` removes (:func:`~textdistill.prune.student_pruning`, counted, not
        scored) and ``onnx_dir`` where ``output.quantize`` writes (both ``None`` when
        unset).
    """
    from accelerate.utils import set_seed

    from .models.mapping import mapping_table
    from .plan import plan
    from .prune import student_pruning
    from .quantize import check_run_quantize
    from .speed import count_parameters

    onnx_dir = check_run_quantize(recipe)
    built = build(recipe, mode, load_data=False)
    pruning = student_pruning(recipe, built.student)
    set_seed(recipe.train.seed)
    resolved = plan(recipe.distill, built.student, built.teachers,
                    own_tokenizer=built.teacher_tokenizers)
    return {
        "built": built,
        "params": {"teachers": [count_parameters(t) for t in built.teachers],
                   "student": count_parameters(built.student),
                   "projections": sum(p.numel() for p in resolved.projections.parameters())},
        "plan": resolved,
        "mapping_table": mapping_table(resolved.matches, resolved.projections),
        "pruning": pruning,
        "onnx_dir": onnx_dir,
    }


# ------------------------------------------------------------------------------- export


def export_run(run_dir: str | os.PathLike, hub_dir: str | os.PathLike, *,
               repo_id: str | None = None, overwrite: bool = False,
               private: bool = False) -> dict[str, Any]:
    """Export ``RUN_DIR/best`` as a Hub-format directory with a model card; maybe push it.

    The card is built from ``RUN_DIR/results.json`` and ``RUN_DIR/recipe.yaml``. With
    ``repo_id``, a ``hub_dir`` that already holds a complete export of the same weights
    (an earlier push that found the Hub unreachable) is pushed as it is, its card
    renewed, rather than refused as not empty.

    Returns:
        ``{"path": hub_dir, "url": the Hub URL or None}``.

    Raises:
        FileNotFoundError: ``RUN_DIR/best`` does not exist.
        FileExistsError: ``hub_dir`` is not empty (and no export of these weights to
            push) and ``overwrite`` is False.
        NonFiniteError: ``RUN_DIR/best`` holds NaN or infinite weights.
        HubUnavailableError: ``repo_id`` given but the Hub cannot be reached (the local
            export is complete).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .export import export_model, is_export_of, push_to_hub, replace_model_card
    from .model_card import build_model_card, run_card_inputs

    run = RunDir(run_dir)
    best = run.best
    if not (best / "config.json").is_file():
        raise FileNotFoundError(f"{best} not found: RUN_DIR must be the output.dir of a "
                                "finished `textdistill finetune` / `distill` run")
    model = AutoModelForSequenceClassification.from_pretrained(best)
    tokenizer = AutoTokenizer.from_pretrained(best)
    card = build_model_card(model_name=repo_id or Path(hub_dir).name, **run_card_inputs(run))
    if repo_id and not overwrite and is_export_of(hub_dir, model):
        path = Path(hub_dir)
        replace_model_card(path, card)  # the card names the repo in its usage snippet
    else:
        path = export_model(model, tokenizer, hub_dir, card=card, overwrite=overwrite)
    url = push_to_hub(path, repo_id, private=private) if repo_id else None
    return {"path": str(path), "url": url}


__all__ = ["check_output_dir", "describe", "export_run", "make_distiller", "prepare_output_dir",
           "run_recipe"]
