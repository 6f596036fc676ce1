"""The SST-2 benchmark's results JSON (``docs/benchmarks/results.json``), from saved rows.

Everything its page shows is in this JSON, the setup included: the page is rendered from
the JSON alone (:mod:`textdistill.bench.report`). A row's accuracies are on SST-2's
validation set, read once from the model it ended with; its dev accuracies (D, on which
the plan chose) are its final evaluations.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from . import machine, plan, recipes
from .dev_split import validation_accuracy
from .fidelity import Fidelity
from .findings import BARS, choice_score, targets
from .latency import SEQ_LEN
from .sweep import Row

# How long `make bench` may take on 2 CPU cores.
BUDGET_MINUTES = 120


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def setup(budget: recipes.Budget, eval_examples: int, seeds: tuple[int, ...],
          dev: plan.DevSplit) -> dict:
    """The budget every row shares, and the benchmark's constants its page states."""
    return {"choice_split": "dev", "dev_examples": dev.size, "dev_seed": recipes.DEV_SEED,
            "dev_pool": dev.pool, "train_subset": budget.subset,
            "subset_seed": recipes.SUBSET_SEED,
            "train_size": recipes.SST2_TRAIN_SIZE, "epochs_equivalent": budget.epochs,
            "batch_size": recipes.BATCH_SIZE, "lr": recipes.LR,
            "warmup_ratio": recipes.WARMUP_RATIO, "weight_decay": recipes.WEIGHT_DECAY,
            "eval_examples": eval_examples, "max_length": recipes.MAX_LENGTH,
            "latency_seq_len": SEQ_LEN, "seeds": list(seeds),
            "grid_copies": plan.GRID_COPIES, "bars": dict(BARS),
            "budget_minutes": BUDGET_MINUTES, "smoke": budget.smoke}


def summarize(rows: list[Row], results: list[dict], accs: list[float],
              agreements: list[float], teacher_accuracy: float, arch: dict,
              runs: str) -> dict:
    """One variant over its seeds; ``accs`` are their validation accuracies."""
    mean, std = mean_std(accs)
    dev = [res["final_eval"]["accuracy"] for res in results]
    steps = results[0]["final_step"]
    train_time = statistics.fmean(res["train_time_s"] for res in results)
    return {
        "variant": rows[0].variant, "accuracy_mean": mean, "accuracy_std": std,
        "accuracies": accs, "dev_accuracies": dev, "dev_accuracy_mean": statistics.fmean(dev),
        "seeds": [r.seed for r in rows],
        "teacher_agreement_mean": statistics.fmean(agreements),
        "teacher_agreements": agreements,
        "retention_pct": 100.0 * mean / teacher_accuracy, "params": arch["params"],
        "latency_ms_b1": arch["latency_ms_b1"], "latency_ms_b32": arch["latency_ms_b32"],
        "throughput_samples_per_s_b32": arch["samples_per_second_b32"],
        "train_time_s": train_time, "train_steps": steps,
        "train_examples": results[0]["train_examples"],
        "train_samples_per_s": steps * recipes.BATCH_SIZE / train_time,
        "layers": list(rows[0].layers), "recipe": recipes.distill_of(rows[0].recipe),
        "run_dirs": [f"{runs}/{r.key}" for r in rows],
    }


def students(bench: plan.BenchmarkPlan, fidelity: Fidelity, teacher: dict,
             latency: dict, validation_file: Path) -> tuple[dict, dict, list[dict]]:
    """(the chosen variant per student, every variant per student, every saved result)."""
    sweep = bench.sweep
    rows = bench.rows()
    saved = {r.key: sweep.result(r) for r in rows}
    chosen: dict[str, dict] = {}
    variants: dict[str, list[dict]] = {}
    for student in "ABCDE":
        by_variant: dict[str, list[Row]] = {}
        for r in rows:
            if r.student == student and saved[r.key] is not None:
                by_variant.setdefault(r.variant, []).append(r)
        if not by_variant:
            continue
        arch = latency["2-layer" if student == "E" else "3-layer"]
        summaries = []
        for mine in by_variant.values():
            results = [saved[r.key] for r in mine]
            accs = [validation_accuracy(sweep.runs / r.key, validation_file,
                                        res["final_step"])[0] for r, res in zip(mine, results)]
            agreements = [fidelity.agreement(r, res, teacher) for r, res in zip(mine, results)]
            summaries.append(summarize(mine, results, accs, agreements,
                                       teacher["final_eval"]["accuracy"], arch,
                                       str(sweep.runs)))
        variants[student] = summaries
        # The variant chosen on the first seed (A: the stronger init), which then got more.
        chosen[student] = max(summaries, key=choice_score)
    return chosen, variants, [res for res in saved.values() if res is not None]


def speed_block(engine: dict) -> dict:
    """The engine benchmark's headline figures (docs/benchmarks/engine.json)."""
    epoch = engine.get("epoch", {})
    epochs = [k for k in ("epoch_hand", "epoch_engine") if k in epoch]
    return {
        "engine_vs_hand_ratio": engine["engine_vs_hand_ratio"],
        "epoch_speedup": epoch.get("speedup"),
        "epoch_examples": epoch.get("epoch_engine", {}).get("examples"),
        "epoch_seconds": {k: epoch[k]["seconds"] for k in epochs},
        "peak_rss_mb": {**{k: v["peak_rss_mb"] for k, v in engine["summary"].items()},
                        **{k: epoch[k]["peak_rss_mb"] for k in epochs}},
        "samples_per_second": {k: v["samples_per_second"]
                               for k, v in engine["summary"].items()},
        "setup": engine["setup"],
        "source": "docs/benchmarks/engine.json",
    }


def collect(bench: plan.BenchmarkPlan, fidelity: Fidelity, teacher: dict,
            engine: dict | None, latency: dict, dev: plan.DevSplit,
            validation_file: Path) -> dict:
    """Everything the page shows, from saved rows only; ``validation_file`` is read once
    per row (the teacher's final evaluation is already on it)."""
    chosen, variants, saved = students(bench, fidelity, teacher, latency, validation_file)
    t_lat = latency["teacher"]
    result: dict[str, Any] = {
        "command": "make bench  (python scripts/bench.py)",
        "setup": setup(bench.factory.budget, teacher["eval_examples"], bench.seeds, dev),
        "teacher": {"accuracy": teacher["final_eval"]["accuracy"], "params": t_lat["params"],
                    "layers": t_lat["layers"],
                    "latency_ms_b1": t_lat["latency_ms_b1"],
                    "latency_ms_b32": t_lat["latency_ms_b32"],
                    "throughput_samples_per_s_b32": t_lat["samples_per_second_b32"],
                    "train_time_s": teacher["train_time_s"],
                    "train_steps": teacher["final_step"],
                    "train_examples": teacher["train_examples"],
                    "run_dir": str(bench.sweep.teacher_dir.parent)},
        "students": chosen,
        "variants": variants,
        "latency": latency,
        "device": machine.device(),
        "versions": machine.versions(),
    }
    if engine is not None:
        result["speed"] = speed_block(engine)
    result["wall_time_s"] = {"teacher": teacher["wall_time_s"],
                             "rows": sum(res["wall_time_s"] for res in saved),
                             "speed": engine.get("wall_time_s") if engine else None}
    result["targets"] = targets(result)
    return result

