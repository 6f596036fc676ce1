#!/usr/bin/env python
"""Why logit KD gains so little over the label-only student A in the SST-2 benchmark.

Two controlled studies on top of ``make bench`` (run them after it), described in
``textdistill/bench/studies.py``: a 2-layer student with and without logit KD (room to
gain), and A and B trained from a teacher that never saw the students' subset (the same
teacher recipe on the training sentences outside it).

Seeds 42 and 43. Rows are saved in ``runs/bench/`` beside the benchmark's (``study-*``,
``heldout-*``, ``teacher-heldout``) and reused, so an interrupted run resumes. Writes
``docs/benchmarks/studies.json``, then renders ``docs/benchmark-studies.md`` from it.

    python scripts/bench_studies.py            # ~55 min on 2 CPU cores from scratch
    python scripts/bench_studies.py --report   # render the page again from studies.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from textdistill.bench import plan, recipes, studies, studies_report
from textdistill.bench.sweep import Sweep


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--runs", default=str(recipes.CHECKOUT / "runs" / "bench"),
                        help="the benchmark's run folder (default: runs/bench)")
    parser.add_argument("--docs", default=str(recipes.CHECKOUT / "docs"),
                        help="where benchmark-studies.md and benchmarks/ go (default: docs)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: render the page from benchmarks/studies.json")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on 200 sentences, one seed: checks the script runs")
    parser.add_argument("--base-model", default=recipes.MINILM,
                        help=f"the benchmark teacher's base model (default {recipes.MINILM}); "
                             "the smoke test passes a tiny one")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Train the held-out teacher and the study rows that are missing; the JSON."""
    runs = Path(args.runs).resolve()
    budget = recipes.Budget(smoke=args.smoke, sst2_dir=recipes.find_sst2())
    main_sweep = Sweep(runs, plan.teacher_dir(runs))
    main = plan.RowFactory(main_sweep, budget, args.base_model)
    held = plan.RowFactory(studies.heldout_sweep(runs), budget, args.base_model)
    teacher = main_sweep.result(plan.BenchmarkPlan(main).teacher_row())
    if teacher is None:
        sys.exit(f"no finished benchmark teacher in {main_sweep.teacher_dir.parent}: "
                 "run `make bench` (scripts/bench.py) first")
    held_teacher = held.sweep.ensure(studies.heldout_teacher_row(held))
    seeds = studies.SEEDS[:1] if args.smoke else studies.SEEDS
    start = time.perf_counter()
    for sweep, row in [pair for rows in studies.study_rows(main, held, seeds).values()
                       for pair in rows]:
        sweep.ensure(row)
    print(f"study rows: {time.perf_counter() - start:.0f} s", flush=True)
    return studies.collect(main, held, {"benchmark": teacher, "heldout": held_teacher}, seeds)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    docs = Path(args.docs).resolve()
    saved = docs / "benchmarks" / "studies.json"
    if args.report:
        if not saved.is_file():
            sys.exit(f"no {saved}: run without --report first")
        result = json.loads(saved.read_text())
    else:
        result = run(args)
        if not result:
            sys.exit("some study rows did not finish; see the log above")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (docs / "benchmark-studies.md").write_text(studies_report.markdown(result),
                                               encoding="utf-8")
    print(f"KD gain, 2-layer: {result['room_kd_gain_pts']:+.2f} pt; held-out teacher: "
          f"{result['heldout_kd_gain_pts']:+.2f} pt")
    print(f"wrote {docs / 'benchmark-studies.md'} from {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
