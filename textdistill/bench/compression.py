"""The compression section of ``make bench``: what ONNX Runtime, int8 weights and pruning
add to distillation, and its JSON (``results.json``'s ``compression`` object).

Its inputs are the same-data section's teacher and best 3-layer student (found in that
section's JSON, :func:`sources`), and, where the transfer section has run, its MPNet
teacher and 3-layer B student. It makes, in its folder (``runs/bench/compression``):

* ``pruned-h<H>-f<F>/``: the student with a fraction H of its heads zeroed and F of its
  feed-forward neurons cut (:func:`textdistill.prune.prune_model`, scored on the subset);
* ``recovered/``: that model distilled from the unpruned student (a sweep row);
* ``<row>/``: the ONNX directories ``textdistill quantize`` writes (float32 or int8);
* ``student_onnx_int8_static/``: ``student_onnx_fp32``'s graph with static (calibrated)
  int8, which the library does not offer (:mod:`textdistill.bench.static_int8`);
* ``notes.json``: what each made directory came from (the digest of its source's
  weights) and each model's accuracy, so a rerun redoes only what changed;
* ``validation-recipe.yaml``: the eval data of every row (:func:`validation_spec`).

Accuracy is on SST-2's validation set (never the dev split the students were chosen on), read through each model's own tokenizer by the
evaluation loop of ``textdistill evaluate``; latency is measured anew on every run, every
row in one process, in alternating rounds (:func:`textdistill.bench.latency.alternating`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import machine, plan, recipes, static_int8
from . import transfer_plan as tp
from .latency import SEQ_LEN, alternating
from .sweep import Row, Sweep

FOLDER = "compression"
NOTES_FILE = "notes.json"
VALIDATION_RECIPE = "validation-recipe.yaml"
PRUNE_HEADS = 0.5
PRUNE_FFN = 0.5
PRUNE_BATCHES = 200   # of recipes.BATCH_SIZE subset sentences (6,400)
RECOVERY_KEY = "recovered"
RECOVERY_STEPS = 400
RECOVERY_SEED = 42
# Recovery distils from the unpruned student: the bars compare the pruned model with it,
# and it has the pruned model's tokenizer, depth and width, so hidden and attention
# states match 1:1 with no projection. Logit KD as the chosen students' (T 2, hard 0.5);
# the intermediate weight of C's chosen variant (0.1, annealed to 0).
RECOVERY_DISTILL = recipes.with_intermediate(recipes.logit_kd(2.0, 0.5), 0.1, 0.0)
# The export methods whose graphs hold int8 weights.
INT8_METHODS = ("onnx-int8", static_int8.METHOD)
# The goals of issue 16: (bar, whether the measured value must be at least or at most it).
BARS: dict[str, tuple[float, str]] = {
    "int8_speedup_b32_vs_student": (2.5, "at_least"),
    "int8_speedup_b1_vs_student": (2.0, "at_least"),
    "int8_accuracy_loss_pts": (0.5, "at_most"),
    "int8_speedup_b32_vs_teacher": (5.0, "at_least"),
    "pruned_accuracy_loss_pts": (1.0, "at_most"),
    "pruned_speedup_b32_vs_student": (1.4, "at_least"),
}
# The cost model of `expected_minutes`, seconds on 2 CPU cores. A recovery step is a
# 3-layer student's step plus the unpruned student's forward (a third of a step); scoring
# a batch for pruning is a forward and a backward (about a step); an export is the
# TorchScript export, the int8 pass and its card's two evaluations and latency profiles.
STUDENT_STEP_S = tp.STEP_SECONDS["minilm3"]
RECOVERY_STEP_S = STUDENT_STEP_S * 4 / 3
EXPORT_S = 30.0
# The static int8 graph: reading the calibration sentences, a forward pass over them that
# records every MatMul input, and the quantization; no card. Estimated, not timed here:
# the throwaway experiment's graphs took under a minute each on a loaded machine.
STATIC_EXPORT_S = 30.0
# One pass over SST-2's 872 validation sentences: MPNet-base from the transfer section's
# cost model, MiniLM-L6 5.6x faster, a 3-layer student twice as fast again.
EVAL_S = {"mpnet": 872 / tp.TEACHER_SENTENCES_PER_S,
          "minilm6": 872 / tp.TEACHER_SENTENCES_PER_S / 5.6,
          "minilm3": 872 / tp.TEACHER_SENTENCES_PER_S / 11.2}
# Latency, per model over alternating()'s 5 rounds (14 passes at batch 1 and 6 at batch
# 32 a round): MiniLM-L6 21 ms and 384 ms a pass in this benchmark; a 3-layer model half
# that; int8 the bar's 2.5x less; MPNet-base 5.6x MiniLM-L6.
LATENCY_S = {"minilm6": 13.0, "minilm3": 6.5, "int8": 2.6, "mpnet": 73.0}


@dataclass(frozen=True)
class Sources:
    """The section's inputs: model directories (``best/``) and the student's run."""

    teacher: Path
    student_run: Path
    student_key: str
    transfer_teacher: Path | None = None
    transfer_student: Path | None = None

    @property
    def student(self) -> Path:
        return self.student_run / "best"


@dataclass(frozen=True)
class Entry:
    """A row: a PyTorch model, or (``method``) the ONNX directory made from ``source``
    (a PyTorch model; for static int8, the float32 ONNX row's directory)."""

    name: str
    source: Path
    method: str | None   # None | onnx | onnx-int8 | static_int8.METHOD
    own_teacher: str     # the row its second speed-up is against
    kind: str            # its key in EVAL_S / LATENCY_S

    def directory(self, folder: Path) -> Path:
        return self.source if self.method is None else folder / self.name


def _has_model(directory: Path) -> bool:
    return (directory / "config.json").is_file()


def sources(result: dict) -> Sources:
    """The inputs named by ``results.json`` (the same-data section's ``teacher``,
    ``students`` and ``targets``; the transfer section's, when present).

    Raises:
        ValueError: the same-data section has not run, or its models are gone.
    """
    best = (result.get("targets") or {}).get("best_student")
    if "students" not in result or best is None:
        raise ValueError("the compression section needs the same-data section's teacher and "
                         "best 3-layer student: run `python scripts/bench.py --section "
                         "same-data` first")
    found = Sources(Path(result["teacher"]["run_dir"]) / "best",
                    Path(result["students"][best]["run_dirs"][0]), best)
    for directory in (found.teacher, found.student):
        if not _has_model(directory):
            raise ValueError(f"{directory}: no model there; run the same-data section again")
    transfer = result.get("transfer") or {}
    b_student = transfer.get("rows", {}).get("B", {}).get("minilm3")
    if b_student is None:
        return found
    teacher = Path(transfer["teacher"]["run_dir"]) / "best"
    student = Path(b_student["run_dirs"][0]) / "best"
    if not (_has_model(teacher) and _has_model(student)):
        return found
    return Sources(found.teacher, found.student_run, best, teacher, student)


def folder(runs: Path, budget: recipes.Budget) -> Path:
    """The section's folder; another budget (epochs) gets its own, as the rows do."""
    return runs / plan.RowFactory(Sweep(runs, plan.teacher_dir(runs)), budget, "").key(FOLDER)


def entries(sources: Sources, where: Path) -> list[Entry]:
    """The rows, each after the row its directory is made from (the section's folder
    ``where`` holds the made ones)."""
    student, teacher = sources.student, "teacher_fp32"
    recovered, float_graph = where / RECOVERY_KEY / "best", where / "student_onnx_fp32"
    out = [Entry("teacher_fp32", sources.teacher, None, teacher, "minilm6"),
           Entry("student_fp32", student, None, teacher, "minilm3"),
           Entry(float_graph.name, student, "onnx", teacher, "minilm3"),
           Entry("student_onnx_int8", student, "onnx-int8", teacher, "int8"),
           Entry("student_onnx_int8_static", float_graph, static_int8.METHOD, teacher, "int8"),
           Entry("pruned_fp32", recovered, None, teacher, "minilm3"),
           Entry("pruned_onnx_int8", recovered, "onnx-int8", teacher, "int8")]
    if sources.transfer_teacher is not None and sources.transfer_student is not None:
        mpnet, transfer = "mpnet_teacher_fp32", sources.transfer_student
        out += [Entry(mpnet, sources.transfer_teacher, None, mpnet, "mpnet"),
                Entry("transfer_student_fp32", transfer, None, mpnet, "minilm3"),
                Entry("transfer_student_onnx_int8", transfer, "onnx-int8", mpnet, "int8")]
    return out


def weights_digest(directory: Path) -> str:
    """sha256 of a model directory's weight or graph files (``model*``)."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("model*")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Notes:
    """``notes.json``: per kind (``pruned``, ``exports``, ``accuracy``), per key, what a
    saved directory or number was made from, and what it cost."""

    def __init__(self, path: Path):
        self.path = path
        self.saved: dict[str, dict[str, dict]] = (json.loads(path.read_text())
                                                  if path.is_file() else {})

    def get(self, kind: str, key: str, made_from: dict[str, Any]) -> dict | None:
        """The saved entry, if it was made from ``made_from``."""
        entry = self.saved.get(kind, {}).get(key)
        if entry is None or any(entry.get(k) != v for k, v in made_from.items()):
            return None
        return entry

    def put(self, kind: str, key: str, entry: dict[str, Any]) -> None:
        self.saved.setdefault(kind, {})[key] = entry
        staged = self.path.with_name(self.path.name + ".tmp")
        staged.write_text(json.dumps(self.saved, indent=2) + "\n", encoding="utf-8")
        os.replace(staged, self.path)  # an interrupted write leaves the old notes


def ensure_pruned(where: Path, sources: Sources, budget: recipes.Budget,
                  notes: Notes) -> tuple[Path, dict]:
    """The pruned student (made again when the student or the fractions changed)."""
    from ..prune import prune_model

    out = where / f"pruned-h{PRUNE_HEADS:g}-f{PRUNE_FFN:g}"
    batches, batch_size = (2, 8) if budget.smoke else (PRUNE_BATCHES, recipes.BATCH_SIZE)
    made_from = {"source": str(sources.student), "source_digest": weights_digest(
        sources.student), "heads": PRUNE_HEADS, "ffn": PRUNE_FFN, "batches": batches}
    saved = notes.get("pruned", out.name, made_from)
    if saved is not None and _has_model(out) and saved["digest"] == weights_digest(out):
        print(f"compression: reusing {out}", flush=True)
        return out, saved
    start = time.perf_counter()
    # The run directory: its best/ is pruned, scored on its recipe's data (the subset).
    result = prune_model(str(sources.student_run), str(out), heads=PRUNE_HEADS, ffn=PRUNE_FFN,
                         batches=batches, batch_size=batch_size, overwrite=True)
    record = result["record"]
    entry = {**made_from, "digest": weights_digest(out), "seconds": time.perf_counter() - start,
             "params": result["params"], "intermediate_size": record["intermediate_size"],
             "heads_zeroed": sum(len(h) for h in record["heads_zeroed"].values()),
             "heads_total": sum(len(r["head_importance"]) for r in result["layers"]),
             "examples": record["examples"]}
    notes.put("pruned", out.name, entry)
    return out, entry


def recovery_row(sweep: Sweep, pruned: Path, budget: recipes.Budget) -> Row:
    """The pruned student distilled from the unpruned one (``sweep``'s teacher)."""
    recipe = recipes.recovery_recipe(budget, str(sweep.teacher_dir), pruned, RECOVERY_DISTILL,
                                     RECOVERY_STEPS, RECOVERY_SEED, sweep.runs / RECOVERY_KEY)
    return Row(RECOVERY_KEY, "pruned", "recovered from the unpruned student", "distill",
               recipe, RECOVERY_SEED)


def ensure_export(where: Path, entry: Entry, spec: str, smoke: bool, notes: Notes) -> None:
    """``entry``'s ONNX directory, written by ``textdistill quantize``'s code (static int8:
    by :mod:`~textdistill.bench.static_int8`, calibrated on ``spec``'s train split) unless
    a saved one was made from the same weights the same way."""
    from ..quantize import quantize_model

    out = entry.directory(where)
    # The spec is in the card (the accuracy quantize measures), so a new one remakes it.
    made_from = {"source": str(entry.source), "source_digest": weights_digest(entry.source),
                 "method": entry.method, "data": spec}
    if entry.method == static_int8.METHOD:
        made_from["calibration"] = static_int8.RECIPE
    saved = notes.get("exports", entry.name, made_from)
    if saved is not None and (out / "model.onnx").is_file() \
            and saved["digest"] == weights_digest(out):
        print(f"compression: reusing {out}", flush=True)
        return
    start = time.perf_counter()
    if entry.method == static_int8.METHOD:
        static_int8.quantize_static_qdq(entry.source, out, spec)
    else:
        quantize_model(entry.source, out, method=entry.method, data=spec, overwrite=True,
                       latency_repeats=1 if smoke else 10)
    notes.put("exports", entry.name, {**made_from, "digest": weights_digest(out),
                                      "seconds": time.perf_counter() - start})


def accuracy(directory: Path, spec: str, notes: Notes) -> dict:
    """``{"accuracy", "examples", "seconds"}`` of the model in ``directory`` on the eval
    split of ``spec``, saved per weights."""
    from ..evaluation import evaluate_model

    made_from = {"digest": weights_digest(directory), "spec": spec}
    saved = notes.get("accuracy", str(directory), made_from)
    if saved is not None:
        return saved
    result = evaluate_model(str(directory), spec, latency=False, progress_bar=False)
    entry = {**made_from, "accuracy": result["metrics"]["accuracy"],
             "examples": result["examples"], "seconds": result["eval_seconds"]}
    notes.put("accuracy", str(directory), entry)
    return entry


def measure(where: Path, mine: list[Entry], smoke: bool) -> tuple[dict, dict]:
    """(latency per row from alternating rounds, size and parameters per row)."""
    from ..evaluation import load_evaluable, model_costs

    models, costs = {}, {}
    for entry in mine:
        model, _, ref = load_evaluable(str(entry.directory(where)))
        models[entry.name] = model
        costs[entry.name] = model_costs(model, ref, seq_len=SEQ_LEN, latency=False)
    return alternating(models, smoke), costs


def validation_spec(where: Path, sources: Sources, budget: recipes.Budget) -> str:
    """A recipe whose eval split is SST-2's validation set at the benchmark's max length,
    for ``textdistill evaluate``'s ``--data``: the student's recipe with the data of
    :func:`~textdistill.bench.recipes.data_section` (no replaced eval file). The student's
    own recipe evaluates on the dev split D, where its row was chosen; the section
    reports validation, as the other sections do. Its train split is the student's
    subset, which static int8 calibrates on."""
    import yaml

    raw = yaml.safe_load((sources.student_run / "recipe.yaml").read_text(encoding="utf-8"))
    raw["data"] = recipes.data_section(budget, budget.subset)
    path = where / VALIDATION_RECIPE
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return str(path)


def run_section(where: Path, sources: Sources, budget: recipes.Budget,
                log: Callable[[str], None] = print) -> dict:
    """Make what is missing, measure, and collect the ``compression`` object."""
    where.mkdir(parents=True, exist_ok=True)
    notes = Notes(where / NOTES_FILE)
    spec = validation_spec(where, sources, budget)
    pruned, prune_note = ensure_pruned(where, sources, budget, notes)
    sweep = Sweep(where, sources.student)
    recovered = sweep.ensure(recovery_row(sweep, pruned, budget))
    mine = entries(sources, where)
    for entry in mine:
        if entry.method is not None:
            ensure_export(where, entry, spec, budget.smoke, notes)
    scores = {e.name: accuracy(e.directory(where), spec, notes) for e in mine}
    unrecovered = accuracy(pruned, spec, notes)
    start = time.perf_counter()
    latency, costs = measure(where, mine, budget.smoke)
    latency_s = time.perf_counter() - start
    log(f"compression: latency measured in {latency_s:.0f} s")
    exports = [notes.saved["exports"][e.name]["seconds"] for e in mine if e.method]
    cost = {"prune": prune_note["seconds"], "recovery": recovered["wall_time_s"],
            "exports": sum(exports), "latency": latency_s,
            "accuracy": sum(s["seconds"] for s in [*scores.values(), unrecovered])}
    return collect(Measured(scores, unrecovered["accuracy"], prune_note, recovered, latency,
                            costs, cost), mine, sources, budget, where)


@dataclass(frozen=True)
class Measured:
    """What :func:`run_section` made and measured, for :func:`collect`."""

    scores: dict[str, dict]       # row -> accuracy()
    unrecovered_accuracy: float   # the pruned model's, before recovery
    prune_note: dict              # ensure_pruned()'s note
    recovered: dict               # the recovery row's results.json
    latency: dict[str, dict]      # row -> alternating()'s figures
    costs: dict[str, dict]        # row -> model_costs(): runtime, params, size_mb
    cost_s: dict[str, float]      # part -> seconds it took to make


def collect(m: Measured, mine: list[Entry], sources: Sources, budget: recipes.Budget,
            where: Path) -> dict:
    """The ``compression`` object: every row, the pruning, the goals and the cost."""
    scores, latency, costs, prune_note = m.scores, m.latency, m.costs, m.prune_note
    rows = {}
    for entry in mine:
        lat, own = latency[entry.name], latency[entry.own_teacher]
        rows[entry.name] = {
            "accuracy": scores[entry.name]["accuracy"], "size_mb": costs[entry.name]["size_mb"],
            "params": costs[entry.name]["params"], "runtime": costs[entry.name]["runtime"],
            "precision": "int8" if entry.method in INT8_METHODS else "fp32",
            "latency_ms_b1": lat["latency_ms_b1"], "latency_ms_b32": lat["latency_ms_b32"],
            "speedup_vs_teacher_b1":
                latency["teacher_fp32"]["latency_ms_b1"] / lat["latency_ms_b1"],
            "speedup_vs_teacher_b32":
                latency["teacher_fp32"]["latency_ms_b32"] / lat["latency_ms_b32"],
            "own_teacher": entry.own_teacher,
            "speedup_vs_own_teacher_b32": own["latency_ms_b32"] / lat["latency_ms_b32"],
            "model_dir": str(entry.directory(where))}
    first = latency["teacher_fp32"]
    out: dict[str, Any] = {
        "command": "python scripts/bench.py --section compression",
        "setup": {
            "teacher_dir": str(sources.teacher), "student_key": sources.student_key,
            "student_run": str(sources.student_run),
            "transfer": sources.transfer_teacher is not None,
            "eval_examples": scores["teacher_fp32"]["examples"],
            "latency_seq_len": SEQ_LEN, "threads": first["threads"],
            "rounds": first["rounds"],
            "prune": {"heads": PRUNE_HEADS, "ffn": PRUNE_FFN, "batches": prune_note["batches"],
                      "examples": prune_note["examples"]},
            "recovery": {"steps": m.recovered["final_step"], "seed": RECOVERY_SEED,
                         "lr": recipes.LR,
                         "batch_size": recipes.BATCH_SIZE, "distill": RECOVERY_DISTILL},
            "static_int8": static_int8.RECIPE,
            "bars": {key: {"bar": bar, "kind": kind} for key, (bar, kind) in BARS.items()},
            "smoke": budget.smoke,
            "expected_minutes": expected_minutes(sources.transfer_teacher is not None),
        },
        "rows": rows,
        "pruning": {"params": prune_note["params"],
                    "intermediate_size": prune_note["intermediate_size"],
                    "heads_zeroed": prune_note["heads_zeroed"],
                    "heads_total": prune_note["heads_total"],
                    "accuracy_before_recovery": m.unrecovered_accuracy},
        "cost_s": m.cost_s, "device": machine.device(), "versions": machine.versions(),
    }
    out["goals"] = goals(rows)
    return out


def goals(rows: dict[str, dict]) -> dict[str, dict]:
    """Each bar of :data:`BARS` with its measured value."""
    student, int8 = rows["student_fp32"], rows["student_onnx_int8"]
    teacher, pruned = rows["teacher_fp32"], rows["pruned_fp32"]
    measured = {
        "int8_speedup_b32_vs_student": student["latency_ms_b32"] / int8["latency_ms_b32"],
        "int8_speedup_b1_vs_student": student["latency_ms_b1"] / int8["latency_ms_b1"],
        "int8_accuracy_loss_pts": 100 * (student["accuracy"] - int8["accuracy"]),
        "int8_speedup_b32_vs_teacher": teacher["latency_ms_b32"] / int8["latency_ms_b32"],
        "pruned_accuracy_loss_pts": 100 * (student["accuracy"] - pruned["accuracy"]),
        "pruned_speedup_b32_vs_student": student["latency_ms_b32"] / pruned["latency_ms_b32"],
    }
    out = {}
    for key, (bar, kind) in BARS.items():
        value = measured[key]
        out[key] = {"bar": bar, "kind": kind, "measured": value,
                    "met": value >= bar if kind == "at_least" else value <= bar}
    return out


def expected_minutes(with_transfer: bool) -> dict[str, float]:
    """What each part of the section should cost on 2 CPU cores (the cost model above)."""
    transfer = (Path("transfer-teacher"), Path("transfer-student")) if with_transfer \
        else (None, None)
    mine = entries(Sources(Path("teacher"), Path("student"), "B", *transfer), Path("."))
    kinds = [entry.kind for entry in mine]
    evals = [*kinds, "minilm3"]  # and the pruned model before recovery
    seconds = {
        "prune": PRUNE_BATCHES * STUDENT_STEP_S,
        "recovery": RECOVERY_STEPS * RECOVERY_STEP_S + tp.KD_RUN_OVERHEAD_S,
        "exports": sum(STATIC_EXPORT_S if entry.method == static_int8.METHOD else EXPORT_S
                       for entry in mine if entry.method is not None),
        "accuracy": sum(EVAL_S["minilm3" if kind == "int8" else kind] for kind in evals),
        "latency": sum(LATENCY_S[kind] for kind in kinds),
    }
    return {part: value / 60 for part, value in seconds.items()}
