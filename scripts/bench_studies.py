#!/usr/bin/env python
"""Why logit KD gains so little over the label-only student A in the SST-2 benchmark.

Two controlled studies on top of ``make bench``. They reuse its teacher, subset, budget
and row builders (``scripts/bench.py``), so run them after it:

* **Room to gain.** The 3-layer student A trails the teacher by ~1.7 pt; a 2-layer student
  (teacher layers 0 and 3) trails it by ~5 pt. Labels only (A2) against logit KD with the
  benchmark's B recipe (B2: ``kd_kl``, T=2, hard-label weight 0.5, no augmentation). If
  KD were held back only by a lack of room, B2 would clearly beat A2.
* **A teacher that never saw the students' sentences.** The benchmark's teacher learnt
  the whole training set, the students' 20,000 sentences included, so on them its soft
  targets mostly repeat the gold labels. Here the same teacher recipe
  (``recipes/benchmark/teacher.yaml``) learns only the 47,349 sentences outside the
  subset, and A (its layers, labels only) and B (its logits) are trained from it exactly
  as in the benchmark. On the subset its targets are predictions, not recalled labels.

For each teacher the page also shows how often its class on the students' subset is the
gold label, and its mean confidence there, read from the teacher-logit cache that its B
rows built.

Seeds 42 and 43. Rows are saved in ``runs/bench/`` beside the benchmark's (``study-*``,
``heldout-*``, ``teacher-heldout``) and reused, so an interrupted run resumes. Writes
``docs/benchmark-studies.md`` and ``docs/benchmarks/studies.json``.

    python scripts/bench_studies.py            # ~55 min on 2 CPU cores from scratch
    python scripts/bench_studies.py --report   # rewrite the page from saved rows
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/ is not a package)

SEEDS = (42, 43)
# The benchmark's B recipe on the subset alone (B-T2-hard0.5-noaug).
LOGIT_KD = {"temperature": 2.0, "logit_loss": "kd_kl", "soft_weight": 1.0,
            "hard_weight": 0.5, "matches": []}
LOGIT_KD_NAME = "T2-hard0.5-noaug"
HELDOUT = "teacher-heldout"


class HeldOutBench(bench.Bench):
    """The benchmark's rows, trained from a teacher that never saw the students' subset."""

    @property
    def teacher_dir(self) -> Path:
        return self.runs / HELDOUT / "best"

    def complement_file(self) -> Path:
        """The training sentences outside the students' subset, as a TSV in the order of
        the subset's seeded shuffle (written once; rewritten only if it would change)."""
        from textdistill.data.loading import DataConfig, load_raw_splits

        students = DataConfig(**self.data_section())
        whole = load_raw_splits(dataclasses.replace(students, max_train_samples=None))["train"]
        subset = load_raw_splits(students)["train"]
        shuffled = whole.shuffle(seed=students.shuffle_seed)  # as the subset was drawn
        if shuffled.select(range(len(subset)))["sentence"] != subset["sentence"]:
            raise RuntimeError("the students' subset is not the head of the seeded shuffle; "
                               "cannot take its complement")
        rest = shuffled.select(range(len(subset), len(shuffled)))
        lines = ["sentence\tlabel"]
        for sentence, label in zip(rest["sentence"], rest["label"]):
            if "\t" in sentence or "\n" in sentence:
                raise ValueError(f"cannot write {sentence!r} to a TSV without quoting")
            lines.append(f"{sentence}\t{label}")
        text = "\n".join(lines) + "\n"
        path = self.runs / f"{HELDOUT}-data" / "train.tsv"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return path

    def teacher_recipe(self) -> dict[str, Any]:
        raw = super().teacher_recipe()
        raw["data"]["train_file"] = str(self.complement_file())
        raw["data"]["max_train_samples"] = 200 if self.smoke else None
        raw["output"]["dir"] = str(self.runs / HELDOUT)
        return raw

    def teacher_row(self) -> bench.Row:
        return bench.Row(HELDOUT, "teacher", "fine-tuned on the complement", "finetune",
                         self.teacher_recipe(), 42)


def study_rows(main: bench.Bench, held: HeldOutBench) -> dict[str, list[tuple[bench.Bench, bench.Row]]]:
    """Each arm of the studies: its rows, each with the Bench (teacher) it belongs to."""
    two = list(bench.TWO_LAYERS)
    arms: dict[str, list[tuple[bench.Bench, bench.Row]]] = {
        "room/labels": [], "room/kd": [], "heldout/labels": [], "heldout/kd": []}
    for seed in SEEDS:
        arms["room/labels"].append((main, main.label_row(
            "study-A2-teacher", "2-layer, labels only", str(main.teacher_dir), seed,
            layers=two, student="A2")))
        arms["room/kd"].append((main, main.kd_row("study-B2", LOGIT_KD_NAME, dict(LOGIT_KD),
                                                  0, seed, layers=two)))
        arms["heldout/labels"].append((held, held.label_row(
            "heldout-A-teacher", "labels only", str(held.teacher_dir), seed)))
        arms["heldout/kd"].append((held, held.kd_row("heldout-B", LOGIT_KD_NAME,
                                                     dict(LOGIT_KD), 0, seed)))
    return arms


def teacher_on_subset(owner: bench.Bench, kd_row: bench.Row) -> dict | None:
    """How often the teacher's class on the students' subset is the gold label, and its
    mean confidence there, from the logit cache ``kd_row`` built (None if not built)."""
    import torch
    from safetensors.torch import load_file

    from textdistill.build import build
    from textdistill.recipe import recipe_from_dict
    from textdistill.teacher_cache import TeacherLogitCache, data_fingerprint, teacher_fingerprint

    recipe = recipe_from_dict(kd_row.recipe, source=f"bench:{kd_row.key}")
    built = build(recipe, "distill")
    train = built.data["train"]
    fingerprint = teacher_fingerprint(built.teachers, data_fingerprint(train),
                                      recipe.data.max_length)
    path = TeacherLogitCache.file_for(recipe.train.teacher_cache_dir, fingerprint)
    if not path.is_file():
        return None
    probs = load_file(str(path))["logits"][0].float().softmax(-1)  # (N, C), one teacher
    labels = torch.as_tensor(train["labels"])
    return {"examples": len(labels),
            "gold_agreement": (probs.argmax(-1) == labels).float().mean().item(),
            "mean_confidence": probs.max(-1).values.mean().item()}


def collect(main: bench.Bench, held: HeldOutBench, teachers: dict[str, dict]) -> dict:
    arms = study_rows(main, held)
    out: dict[str, Any] = {"command": "python scripts/bench_studies.py", "seeds": list(SEEDS),
                           "setup": {"train_subset": main.subset, "epochs_equivalent": main.epochs,
                                     "batch_size": bench.BATCH_SIZE, "lr": bench.LR},
                           "teachers": {}, "arms": {}}
    for name, rows in arms.items():
        results = [owner.result(row) for owner, row in rows]
        if any(r is None for r in results):
            return {}
        accs = [r["final_eval"]["accuracy"] for r in results]
        mean, std = bench._mean_std(accs)
        out["arms"][name] = {"variant": rows[0][1].variant, "layers": rows[0][1].layers,
                             "accuracies": accs, "accuracy_mean": mean, "accuracy_std": std,
                             "run_dirs": [str(owner.runs / row.key) for owner, row in rows]}
    for study in ("room", "heldout"):
        arm = out["arms"]
        out[f"{study}_kd_gain_pts"] = 100 * (arm[f"{study}/kd"]["accuracy_mean"]
                                             - arm[f"{study}/labels"]["accuracy_mean"])
    for name, owner, teacher in (("benchmark", main, teachers["benchmark"]),
                                 ("heldout", held, teachers["heldout"])):
        kd_row = arms["room/kd" if name == "benchmark" else "heldout/kd"][0][1]
        out["teachers"][name] = {"accuracy": teacher["final_eval"]["accuracy"],
                                 "train_examples": teacher["train_examples"],
                                 "on_student_subset": teacher_on_subset(owner, kd_row)}
    out["versions"] = bench._versions()
    out["device"] = bench._device()
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(result: dict) -> str:
    teachers, arms = result["teachers"], result["arms"]

    def accs(arm: dict) -> str:
        return ", ".join(_pct(a) for a in arm["accuracies"])

    def subset(name: str, key: str) -> str:
        stats = teachers[name]["on_student_subset"]
        return "-" if stats is None else f"{100 * stats[key]:.1f}%"

    lines = [
        "# Why distillation gains little here: two studies",
        "",
        "Written by `python scripts/bench_studies.py` from `docs/benchmarks/studies.json`; "
        "it reuses the [benchmark](benchmarks.md)'s teacher, 20,000-sentence subset, budget "
        f"({result['setup']['epochs_equivalent']:g} epochs of it, batch "
        f"{result['setup']['batch_size']}, lr {result['setup']['lr']:g}) and row builders. "
        f"Seeds {', '.join(str(s) for s in result['seeds'])}; accuracy on the 872 SST-2 "
        "validation sentences at the end of training.",
        "",
        f"- **Device:** {result['device']}.",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "## The teachers",
        "",
        "The students' soft targets are the teacher's outputs on their own training "
        "sentences. How often those agree with the gold labels shows how much a soft target "
        "can add to the label.",
        "",
        "| teacher | trained on | validation acc. (%) | its class = gold label on the "
        "students' subset | mean confidence there |",
        "|---|---:|---:|---:|---:|",
        f"| benchmark teacher | {teachers['benchmark']['train_examples']:,} sentences "
        f"(subset included) | {_pct(teachers['benchmark']['accuracy'])} | "
        f"{subset('benchmark', 'gold_agreement')} | {subset('benchmark', 'mean_confidence')} |",
        f"| held-out teacher | {teachers['heldout']['train_examples']:,} sentences "
        f"(subset excluded) | {_pct(teachers['heldout']['accuracy'])} | "
        f"{subset('heldout', 'gold_agreement')} | {subset('heldout', 'mean_confidence')} |",
        "",
        "## Results",
        "",
        "| study | student | trained on | accuracy (%) per seed | mean |",
        "|---|---|---|---:|---:|",
    ]
    names = {"room/labels": ("room to gain", "2 layers (0, 3) of the benchmark teacher",
                             "labels only (A2)"),
             "room/kd": ("room to gain", "2 layers (0, 3) of the benchmark teacher",
                         f"labels + logit KD (B2, {LOGIT_KD_NAME})"),
             "heldout/labels": ("held-out teacher", "3 layers (0, 2, 4) of the held-out "
                                "teacher", "labels only (A)"),
             "heldout/kd": ("held-out teacher", "3 layers (0, 2, 4) of the held-out teacher",
                            f"labels + its logits (B, {LOGIT_KD_NAME})")}
    for key, (study, student, training) in names.items():
        arm = arms[key]
        lines.append(f"| {study} | {student} | {training} | {accs(arm)} | "
                     f"{_pct(arm['accuracy_mean'])} |")
    lines += ["", "## What they show", ""] + conclusions(result) + [""]
    return "\n".join(lines)


def conclusions(result: dict, pays: float = 0.5) -> list[str]:
    """What the numbers say; ``pays`` is the gain (pt) that counts as KD paying off
    (seed noise on 872 sentences is about 0.5 pt)."""
    room, held = result["room_kd_gain_pts"], result["heldout_kd_gain_pts"]
    labels = result["arms"]["heldout/labels"]["accuracy_mean"]
    teacher = result["teachers"]["heldout"]
    gap = 100 * (result["teachers"]["benchmark"]["accuracy"]
                 - result["arms"]["room/labels"]["accuracy_mean"])
    lines = []
    if room < pays:
        lines.append(f"- **Room to gain:** the 2-layer student trails the teacher by {gap:.1f} "
                     f"pt on labels alone, yet logit KD moves it by {room:+.2f} pt (mean over "
                     "seeds). More room does not make KD pay here, so the 3-layer students' "
                     "small gain is not only a matter of their small gap to the teacher.")
    else:
        lines.append(f"- **Room to gain:** logit KD gains {room:+.2f} pt for the 2-layer "
                     f"student, which trails the teacher by {gap:.1f} pt on labels alone: KD "
                     "pays where there is room, so the 3-layer students' small gain comes with "
                     "their small gap.")
    line = (f"- **Held-out teacher:** from the teacher that never saw the subset, labels alone "
            f"reach {_pct(labels)} ({100 * labels / teacher['accuracy']:.1f}% of that "
            f"teacher's {_pct(teacher['accuracy'])}), and adding its logits moves the student "
            f"by {held:+.2f} pt.")
    stats = teacher["on_student_subset"]
    if held < pays and stats is not None:
        line += (f" Its targets on the subset are predictions, not recalled labels, and its "
                 f"class differs from the gold label on {100 * (1 - stats['gold_agreement']):.1f}"
                 f"% of it; there KD pulls the student away from the label, and elsewhere, at "
                 f"{100 * stats['mean_confidence']:.1f}% mean confidence on the subset, it "
                 "mostly repeats the label.")
    lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--runs", default=str(bench.ROOT / "runs" / "bench"),
                        help="the benchmark's run folder (default: runs/bench)")
    parser.add_argument("--docs", default=str(bench.ROOT / "docs"),
                        help="where benchmark-studies.md and benchmarks/ go (default: docs)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: rewrite the page from the saved rows")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps on 200 sentences: checks the script runs")
    parser.add_argument("--base-model", help="the benchmark teacher's base model "
                        f"(default {bench.MINILM}); the smoke test passes a tiny one")
    args = parser.parse_args(argv)
    args.epochs = None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main_bench, held = bench.Bench(args), HeldOutBench(args)
    main_bench.runs.mkdir(parents=True, exist_ok=True)

    teacher = main_bench.result(main_bench.teacher_row())
    if teacher is None:
        parser.error(f"no finished benchmark teacher in {main_bench.runs / 'teacher'}: "
                     "run `make bench` (scripts/bench.py) first")
    if args.report:
        held_teacher = held.result(held.teacher_row())
        if held_teacher is None:
            parser.error(f"no finished held-out teacher in {held.runs / HELDOUT}: "
                         "run without --report")
    else:
        held_teacher = held.run_teacher()
        start = time.perf_counter()
        from textdistill.recipe import recipe_from_dict

        for owner, row in [pair for rows in study_rows(main_bench, held).values()
                           for pair in rows]:
            if owner.result(row) is None:
                owner.execute(row, recipe_from_dict(row.recipe, source=f"bench:{row.key}"))
        print(f"study rows: {time.perf_counter() - start:.0f} s", flush=True)

    result = collect(main_bench, held, {"benchmark": teacher, "heldout": held_teacher})
    if not result:
        parser.error("some study rows are not finished: run without --report")
    docs = Path(args.docs).resolve()
    (docs / "benchmarks").mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks" / "studies.json").write_text(json.dumps(result, indent=2) + "\n",
                                                      encoding="utf-8")
    (docs / "benchmark-studies.md").write_text(markdown(result), encoding="utf-8")
    print(f"KD gain, 2-layer: {result['room_kd_gain_pts']:+.2f} pt; held-out teacher: "
          f"{result['heldout_kd_gain_pts']:+.2f} pt")
    print(f"wrote {docs / 'benchmark-studies.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
