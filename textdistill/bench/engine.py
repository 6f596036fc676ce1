"""Engine speed: textdistill's loop against a minimal hand-written PyTorch loop.

The real MiniLM-L6 teacher, a student of its layers 0, 2 and 4, batch 32, SST-2
sentences; loss kd_kl + hard CE + hidden MSE + attention MSE on the uniform mapping.
Every configuration runs in its own process (``python scripts/bench_engine.py --child
NAME`` prints one ``RESULT {json}`` line), so that its peak RSS is its own.

The Distiller is timed through its public API only: step times come from a
:class:`~textdistill.distiller.StepCallback`, and the teacher-logit cache's build time is
the difference between two one-step ``train()`` calls on the same cache folder, the
first building the cache, the second reading it.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from ..run_dir import RunDir
from . import recipes

CONFIGS = ("hand", "hand_default_adamw", "engine", "engine_dynamic", "logits_live",
           "logits_cached")
EPOCH_CONFIGS = ("epoch_hand", "epoch_engine")
LR = 5e-5
TEMPERATURE = 2.0
PAD_TO = recipes.MAX_LENGTH
# (student layer, teacher layer) of the uniform 3 -> 6 mapping; layer 0 is the
# embeddings, which have hidden states but no attention map.
HIDDEN_PAIRS = ((0, 0), (1, 2), (2, 4), (3, 6))
# The engine issue's bars: the engine within 3% of the hand loop at equal padding, and
# its defaults at least twice as fast over a whole epoch.
BARS = {"engine_vs_hand_ratio": 0.97, "epoch_speedup": 2.0}
RESULT_PREFIX = "RESULT "


def load(threads: int, n_examples: int, model: str) -> tuple[Any, Any, Any, Any]:
    """(teacher, student, tokenizer, tokenized SST-2 training examples)."""
    import torch

    torch.set_num_threads(threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..data.loading import load_raw_splits, tokenize_splits
    from ..data.sst2 import sst2_data_config
    from ..models.student import student_from_teacher
    from ..refs import model_location

    path = model_location(model, "--model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, attn_implementation="eager")
    student = student_from_teacher(teacher, list(recipes.THREE_LAYERS))
    cfg = sst2_data_config(recipes.find_sst2(), max_length=PAD_TO,
                           max_train_samples=n_examples, max_eval_samples=32)
    data = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)["train"]
    return teacher, student, tokenizer, data


def hand_loop(models, steps: int, warmup: int, fused: bool = True) -> float:
    """The floor: a plain PyTorch loop with the same models and the same math.

    ``fused`` picks the optimizer implementation: the engine's (the fused AdamW kernel)
    for the like-for-like ratio, or torch's default, which a textbook loop would use.
    Returns the seconds taken by the ``steps`` steps after ``warmup`` untimed ones.
    """
    import torch
    from transformers import get_scheduler

    from ..accelerator import make_adamw
    from ..data.batching import BatchPlan, pad_batch
    from ..losses import get_loss

    teacher, student, tokenizer, data = models
    teacher.eval().requires_grad_(False)
    student.train()
    kd, ce = get_loss("kd_kl"), get_loss("hard_ce")
    hidden, attention = get_loss("hidden_mse"), get_loss("attention_mse")
    groups = [{"params": [p for p in student.parameters() if p.ndim >= 2],
               "weight_decay": recipes.WEIGHT_DECAY},
              {"params": [p for p in student.parameters() if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = make_adamw(groups, lr=LR) if fused else torch.optim.AdamW(groups, lr=LR)
    total = warmup + steps
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=total)
    plan = BatchPlan(tuple(len(x) for x in data["input_ids"]), recipes.BATCH_SIZE, seed=42,
                     group_by_length=False)
    batches = plan.global_batches(0)
    start = time.perf_counter()
    for step in range(total):
        if step == warmup:
            start = time.perf_counter()
        b = pad_batch(data[batches[step % len(batches)]], tokenizer.pad_token_id, pad_to=PAD_TO)
        inputs = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        s = student(**inputs, output_hidden_states=True, output_attentions=True)
        with torch.no_grad():
            t = teacher(**inputs, output_hidden_states=True, output_attentions=True)
        mask = b["attention_mask"]
        loss = kd(s.logits, t.logits, temperature=TEMPERATURE) + ce(s.logits, b["labels"])
        for sl, tl in HIDDEN_PAIRS:
            loss = loss + hidden(s.hidden_states[sl], t.hidden_states[tl], mask)
            if sl:
                loss = loss + attention(s.attentions[sl - 1], t.attentions[tl - 1], mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _train(models, config, *, logits_only: bool, student=None, callbacks=()) -> float:
    """Seconds of one ``Distiller.train`` call."""
    from .. import Distiller

    teacher, default_student, tokenizer, data = models
    distiller = Distiller(teacher, student if student is not None else default_student,
                          recipes.engine_distill_config(logits_only, TEMPERATURE), config,
                          tokenizer=tokenizer)
    start = time.perf_counter()
    distiller.train(data, callbacks=list(callbacks))
    return time.perf_counter() - start


def engine_loop(models, name: str, steps: int, warmup: int) -> tuple[float, float]:
    """The Distiller on configuration ``name``: (seconds of the ``steps`` steps after
    ``warmup`` untimed ones, seconds to build the teacher-logit cache, 0 without one)."""
    from ..distiller import StepCallback

    stamps: dict[int, float] = {}

    class Clock(StepCallback):
        def on_step_end(self, distiller, state):
            stamps[state.step] = time.perf_counter()
            return False

    logits_only = name.startswith("logits")
    pad_to = PAD_TO if name == "engine" else None
    with tempfile.TemporaryDirectory() as out:
        cache = RunDir(out).teacher_cache if name == "logits_cached" else None
        cache_seconds = 0.0
        if cache is not None:
            one_step = recipes.engine_training_config(out, lr=LR, max_steps=1, teacher_cache=cache)
            cold, warm = (_train(models, one_step, logits_only=True,
                                 student=copy.deepcopy(models[1])) for _ in range(2))
            # On a tiny cache the difference is within timing noise, never a negative cost.
            cache_seconds = max(cold - warm, 0.0)
        cfg = recipes.engine_training_config(out, lr=LR, max_steps=warmup + steps,
                                             pad_to=pad_to, teacher_cache=cache)
        _train(models, cfg, logits_only=logits_only, callbacks=[Clock()])
    return stamps[warmup + steps] - stamps[warmup], cache_seconds


def engine_epoch(models) -> float:
    """One epoch of the Distiller with its default batching; seconds of ``train()``."""
    with tempfile.TemporaryDirectory() as out:
        return _train(models, recipes.engine_training_config(out, lr=LR), logits_only=False)


def run_ab(args: Namespace) -> dict:
    """Hand loop and engine in one process, in alternating blocks of steps.

    Separate processes on a shared 2-core machine run minutes apart and the machine's
    speed drifts between them (by 5% to over 15% here), more than the overhead being
    measured; alternating blocks on the same loaded models cancel that drift.
    """
    models = load(args.threads, args.examples, args.model)
    hand, engine = [], []
    for _ in range(args.ab_rounds):
        hand.append(hand_loop(models, args.ab_steps, warmup=2))
        engine.append(engine_loop(models, "engine", args.ab_steps, warmup=2)[0])
    return {"hand_seconds": hand, "engine_seconds": engine,
            "ratio": sum(hand) / sum(engine), "steps_per_block": args.ab_steps}


def child(args: Namespace) -> dict:
    """One configuration's measurement (in the child process)."""
    from ..speed import peak_rss_mb

    if args.child == "ab":
        result = run_ab(args)
    elif args.child in EPOCH_CONFIGS:
        models = load(args.threads, args.epoch_examples, args.model)
        examples = len(models[3])
        steps = math.ceil(examples / recipes.BATCH_SIZE)
        seconds = hand_loop(models, steps, warmup=0) if args.child == "epoch_hand" \
            else engine_epoch(models)
        result = {"seconds": seconds, "examples": examples, "steps": steps,
                  "samples_per_second": examples / seconds}
    else:
        models = load(args.threads, args.examples, args.model)
        result = {}
        if args.child.startswith("hand"):
            seconds = hand_loop(models, args.steps, args.warmup, fused=args.child == "hand")
        else:
            seconds, cache_seconds = engine_loop(models, args.child, args.steps, args.warmup)
            if args.child == "logits_cached":
                result["cache_build_seconds"] = cache_seconds
        result.update(samples_per_second=args.steps * recipes.BATCH_SIZE / seconds,
                      seconds=seconds)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def spawn(script: Path, config: str, options: list[str], env: dict[str, str]) -> dict:
    """Run ``script --child config`` in a new process; its result."""
    cmd = [sys.executable, str(script), "--child", config, *options]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not line:
        sys.exit(f"{config} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(line[0][len(RESULT_PREFIX):])
    print(f"    {result}", flush=True)
    return result
