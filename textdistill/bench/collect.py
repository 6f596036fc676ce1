"""The SST-2 benchmark's results JSON (``docs/benchmarks/results.json``), from saved rows.

Everything its page shows is in this JSON, the setup included: the page is rendered from
the JSON alone (:mod:`textdistill.bench.report`).
"""

from __future__ import annotations

import statistics
from typing import Any

from . import machine, plan, recipes
from .fidelity import Fidelity
from .latency import SEQ_LEN
from .sweep import Row

# The bar of the benchmark's issue, checked on the numbers (targets()).
BARS = {"retention_pct": 98.5, "gain_over_A_pts": 1.0, "speedup_b32": 1.8}
# How long `make bench` may take on 2 CPU cores.
BUDGET_MINUTES = 120


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def setup(budget: recipes.Budget, eval_examples: int, seeds: tuple[int, ...]) -> dict:
    """The budget every row shares, and the benchmark's constants its page states."""
    return {"train_subset": budget.subset, "subset_seed": recipes.SUBSET_SEED,
            "train_size": recipes.SST2_TRAIN_SIZE, "epochs_equivalent": budget.epochs,
            "batch_size": recipes.BATCH_SIZE, "lr": recipes.LR,
            "warmup_ratio": recipes.WARMUP_RATIO, "weight_decay": recipes.WEIGHT_DECAY,
            "eval_examples": eval_examples, "max_length": recipes.MAX_LENGTH,
            "latency_seq_len": SEQ_LEN, "seeds": list(seeds),
            "grid_copies": plan.GRID_COPIES, "bars": dict(BARS),
            "budget_minutes": BUDGET_MINUTES, "smoke": budget.smoke}


def summarize(rows: list[Row], results: list[dict], agreements: list[float],
              teacher_accuracy: float, arch: dict, runs: str) -> dict:
    """One variant over its seeds."""
    accs = [res["final_eval"]["accuracy"] for res in results]
    mean, std = mean_std(accs)
    steps = results[0]["final_step"]
    train_time = statistics.fmean(res["train_time_s"] for res in results)
    return {
        "variant": rows[0].variant, "accuracy_mean": mean, "accuracy_std": std,
        "accuracies": accs, "seeds": [r.seed for r in rows],
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
             latency: dict) -> tuple[dict, dict, list[dict]]:
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
            agreements = [fidelity.agreement(r, res, teacher) for r, res in zip(mine, results)]
            summaries.append(summarize(mine, results, agreements,
                                       teacher["final_eval"]["accuracy"], arch,
                                       str(sweep.runs)))
        variants[student] = summaries
        # The variant chosen on the first seed (A: the stronger init), which then got more.
        chosen[student] = max(summaries, key=lambda s: (len(s["seeds"]), s["accuracies"][0]))
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
            engine: dict | None, latency: dict) -> dict:
    """Everything the page shows, from saved rows only."""
    chosen, variants, saved = students(bench, fidelity, teacher, latency)
    t_lat = latency["teacher"]
    result: dict[str, Any] = {
        "command": "make bench  (python scripts/bench.py)",
        "setup": setup(bench.factory.budget, teacher["eval_examples"], bench.seeds),
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


def targets(result: dict) -> dict:
    """The issue's bar (``setup.bars``), checked on the numbers above."""
    bars = result["setup"]["bars"]
    chosen = result["students"]
    three = {k: v for k, v in chosen.items() if k in "BCD"}
    if "A" not in chosen or not three:
        return {}
    best_key = max(three, key=lambda k: (len(three[k]["seeds"]), three[k]["accuracy_mean"]))
    best = three[best_key]
    gain = 100 * (best["accuracy_mean"] - chosen["A"]["accuracy_mean"])
    speedup = result["teacher"]["latency_ms_b32"] / best["latency_ms_b32"]
    return {
        "best_student": best_key,
        "retention_pct": best["retention_pct"],
        "retention_ok": best["retention_pct"] >= bars["retention_pct"],
        "gain_over_A_pts": gain, "gain_ok": gain >= bars["gain_over_A_pts"],
        "speedup_b32": speedup, "speedup_ok": speedup >= bars["speedup_b32"],
    }
