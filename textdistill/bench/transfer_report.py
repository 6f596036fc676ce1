"""The transfer section of ``docs/benchmarks.md``, rendered from ``results.json``'s
``transfer`` object alone ("not yet measured" without one)."""

from __future__ import annotations

from .findings import pct
from .mpnet import REFERENCE as MPNET
from .recipes import MINILM

TITLE = "## Distillation where it pays: few labels, a strong teacher, unlabeled text"
ROW_LABELS = {"A": "A: labels of L only", "P": "P: pseudo-labels on L + U",
              "B": "B: soft KD on L + U", "B_aug": "B_aug: B + augmentation",
              "C": "C: same-tokenizer student + hidden/attention matches"}
# How the page names the section's base models (their references are python:<module>).
MODEL_NAMES = {MPNET: "MPNet-base (all-mpnet-base-v2)", MINILM: "all-MiniLM-L6-v2"}
STUDENT_LABELS = {"minilm3": "MiniLM, 3 blocks", "minilm6": "MiniLM, 6 blocks",
                  "mpnet4": "MPNet, 4 teacher blocks"}
# Goal key -> (what it compares, unit of its bar and value).
GOALS = {"b_over_a_pts_3layer": ("3-layer B over A", "pt"),
         "b_minus_p_pts_3layer": ("3-layer B against P (B - P)", "pt"),
         "b_minus_p_pts_6layer": ("6-layer B against P (B - P)", "pt"),
         "retention_pct_6layer": ("6-layer B retention of the teacher", "%"),
         "retention_pct_3layer": ("3-layer B retention of the teacher", "%"),
         "speedup_b32_3layer": ("3-layer student speed at batch 32", "x")}
PARTS = {"teacher": "teacher fine-tuning on L", "teacher_logits": "teacher logits on L + U",
         "A": "rows A", "P": "rows P", "B": "rows B (candidates and seeds)",
         "B_aug": "rows B_aug", "C": "rows C", "latency": "latency"}


def _model(ref: str) -> str:
    return MODEL_NAMES.get(ref, ref)


def _missing_students(t: dict) -> list[str]:
    """The students of the section with no finished row yet."""
    done = {student for students in t["rows"].values() for student in students}
    return [s for s in t["setup"]["students"] if s not in done]


def _not_run_line(t: dict) -> list[str]:
    missing = _missing_students(t)
    if not missing:
        return []
    names = ", ".join(f"{STUDENT_LABELS.get(s, s)} (`{s}`)" for s in missing)
    return ["", f"Not yet run: every row of {names}; `python scripts/bench.py --section "
            "transfer` trains them, reusing the rows above."]


def _value(value: float, unit: str) -> str:
    return {"pt": f"{value:+.2f} pt", "%": f"{value:.2f}%", "x": f"{value:.2f}x"}[unit]


def _bar(value: float, unit: str) -> str:
    return {"pt": f">= {value:+.1f} pt", "%": f">= {value:g}%", "x": f">= {value:g}x"}[unit]


def _setup(t: dict) -> list[str]:
    st, teacher = t["setup"], t["teacher"]
    samples = st["unlabelled_samples"]
    used = f"a seeded sample of {samples:,}" if samples else "all"
    students = "; ".join(f"`{k}`: blocks {v if v is not None else 'all'}"
                         for k, v in st["students"].items())
    return [
        f"- **Device:** {t['device']}. **Command:** `{t['command']}`.",
        f"- **Data:** SST-2's {st['train_size']:,} training rows, each text once "
        f"({st['duplicates_dropped']} repeats dropped), shuffled with seed {st['split_seed']}: "
        f"L = {st['labelled']:,} labelled sentences, D = {st['dev']:,} dev sentences (every "
        f"choice is made on D), U = the other {st['unlabelled_pool']:,}, labels dropped; the "
        f"transfer rows train on L plus {used} of U ({t['unlabelled']:,} texts). The "
        f"{st['eval_examples']} validation sentences are read once, for the chosen rows."
        + _words(st),
        f"- **Teacher:** {_model(st['teacher_model'])} fine-tuned on L ({teacher['train_steps']} "
        f"steps of {st['batch_size']}, lr {st['teacher_lr']:g}, its best of "
        f"{st['evaluations']} evaluations on D: step {teacher['best_step']}); "
        f"{teacher['params'] / 1e6:.1f}M parameters, its own tokenizer.",
        f"- **Students:** {_model(st['student_model'])} ({students}), reading the text through "
        f"their own tokenizer. Every row: {st['kd_steps']} steps of {st['batch_size']} "
        f"(A: its candidate's), lr {st['lr']:g}, max {st['max_length']} tokens, "
        f"{st['evaluations']} evaluations on D, the best kept. B_aug adds "
        f"{st['augment_copies']} augmented cop{'y' if st['augment_copies'] == 1 else 'ies'} "
        "of every training text (`data.augment`).",
        f"- **Choices:** each row's candidates ran on seed {st['seeds'][0]}"
        + (f", and the best on D also on seeds {', '.join(str(s) for s in st['seeds'][1:])}"
           if len(st["seeds"]) > 1 else "") + ": "
        + "; ".join(f"{name}: {', '.join(c)}" for name, c in st["candidates"].items()) + ".",
        f"- **Latency:** CPU, {st['latency_seq_len']}-token sequences, alternating rounds.",
    ]


def _words(st: dict) -> str:
    words = st.get("mean_words")
    if not words:
        return ""
    return (f" SST-2's training rows include the phrases of its parse trees: L, D and U "
            f"average {words['labelled']:.1f}, {words['dev']:.1f} and "
            f"{words['unlabelled']:.1f} words, the validation sentences "
            f"{words['validation']:.1f}: dev and validation accuracies do not compare.")


def _rows(t: dict) -> list[str]:
    teacher = t["teacher"]
    lines = ["| row | student | params | val. acc. (%) | retention | dev acc. (%) | ms @ b1 "
             "| ms @ b32 | speed-up @ b32 | train time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| teacher | {_model(t['setup']['teacher_model'])} | "
             f"{teacher['params'] / 1e6:.1f}M | "
             f"{pct(teacher['accuracy'])} | 100% | {pct(teacher['dev_accuracy'])} | "
             f"{teacher['latency_ms_b1']:.1f} | {teacher['latency_ms_b32']:.0f} | 1.00x | "
             f"{teacher['train_time_s'] / 60:.1f} min |"]
    for name, student, row in _chosen(t):
        acc = _accuracy(row)
        dev = ", ".join(pct(a) for a in row["dev_accuracies"])
        lines.append(
            f"| {ROW_LABELS[name]} ({row['candidate']}; {_seeds(row)}) | "
            f"{STUDENT_LABELS.get(student, student)} | {row['params'] / 1e6:.1f}M | {acc} "
            f"| {row['retention_pct']:.1f}% | {dev} | {row['latency_ms_b1']:.1f} | "
            f"{row['latency_ms_b32']:.0f} | {row['speedup_b32']:.2f}x | "
            f"{row['train_time_s'] / 60:.1f} min |")
    if not t["setup"]["with_c"]:
        lines += ["", "Row C (an MPNet student of teacher blocks "
                  f"{t['setup']['c_student']['layers']} with hidden and attention matches) "
                  "was not run: it needs the live teacher at every step "
                  f"(`--with-c`{_expected_c(t)})."]
    return lines + _not_run_line(t)


def _by_length(t: dict) -> list[str]:
    """Validation accuracy per bucket of sentence length, of the teacher and each chosen row,
    and B's retention per bucket; nothing for a JSON without ``by_length``."""
    lengths = t.get("by_length")
    if not lengths:
        return []

    def cells(values: list[float | None], shown) -> str:
        return " | ".join("n/a" if v is None else shown(v) for v in values)

    buckets = lengths["buckets"]
    lines = ["### Validation accuracy by sentence length", "",
             "| model | " + " | ".join(f"{bucket} words ({count})" for bucket, count
                                       in zip(buckets, lengths["sentences"])) + " |",
             "|---|" + "---:|" * len(buckets),
             f"| teacher | {cells(lengths['teacher'], pct)} |"]
    for name, student, _ in _chosen(t):
        accuracies = lengths["rows"].get(name, {}).get(student)
        if accuracies is not None:
            lines.append(f"| {ROW_LABELS[name]} ({STUDENT_LABELS.get(student, student)}) | "
                         f"{cells(accuracies, pct)} |")
    retentions = _b_retention(lengths)
    lines += [f"| B's retention of the teacher ({STUDENT_LABELS.get(student, student)}) | "
              f"{cells(values, lambda v: f'{v:.1f}%')} |" for student, values in retentions.items()]
    words = t["setup"].get("mean_words")
    trained = (f" L, D and U average {words['labelled']:.1f}, {words['dev']:.1f} and "
               f"{words['unlabelled']:.1f} words (`setup.mean_words`)." if words else "")
    return [*lines, "", f"Validation accuracy (%) on the sentences of each length, in "
            f"whitespace-separated words; a row's is the mean over its seeds.{trained}"
            + _length_verdict(buckets, retentions), ""]


def _b_retention(lengths: dict) -> dict[str, list[float | None]]:
    """Student -> B's accuracy per length bucket as a percentage of the teacher's."""
    teacher = lengths["teacher"]
    return {student: [None if b is None or not t else 100 * b / t
                      for b, t in zip(accuracies, teacher)]
            for student, accuracies in lengths["rows"].get("B", {}).items()}


def _length_verdict(buckets: list[str], retentions: dict[str, list[float | None]]) -> str:
    """B's retention on the shortest and the longest sentences, and whether the gap to the
    teacher grows between them; empty unless two buckets have a retention."""
    ends = {}
    for student, values in retentions.items():
        known = [i for i, v in enumerate(values) if v is not None]
        if len(known) > 1:
            ends[student] = (known[0], known[-1])
    if not ends:
        return ""
    parts = [f"{retentions[s][first]:.1f}% on sentences of {buckets[first]} words and "
             f"{retentions[s][last]:.1f}% on {buckets[last]} "
             f"({STUDENT_LABELS.get(s, s)})" for s, (first, last) in ends.items()]
    wider = [STUDENT_LABELS.get(s, s) for s, (first, last) in ends.items()
             if retentions[s][last] < retentions[s][first]]
    verdict = ("the gap to the teacher grows with length" if len(wider) == len(ends) else
               "the gap to the teacher does not grow with length" if not wider else
               f"the gap to the teacher grows with length for {', '.join(wider)} only")
    return f" B's retention of the teacher is {'; '.join(parts)}: {verdict}."


def _chosen(t: dict):
    """(row name, student, row) of every chosen row, in table order."""
    for name, students in t["rows"].items():
        for student, row in students.items():
            yield name, student, row


def _accuracy(row: dict) -> str:
    """A chosen row's validation accuracy: mean, and ± the std when it ran on several seeds."""
    return pct(row["accuracy_mean"]) + (f" ± {pct(row['accuracy_std'])}"
                                        if len(row["seeds"]) > 1 else "")


def _seeds(row: dict) -> str:
    count = len(row["seeds"])
    return f"{count} seed{'s' if count > 1 else ''}"


def _expected_c(t: dict) -> str:
    minutes = t["setup"].get("c_expected_minutes")
    return f", about {minutes:.0f} min more" if minutes is not None else ""


def _goals(t: dict) -> list[str]:
    lines = ["| goal | bar | measured | |", "|---|---|---:|---|"]
    for key, goal in t["goals"].items():
        label, unit = GOALS[key]
        measured = "not measured" if goal["measured"] is None else _value(goal["measured"], unit)
        verdict = {True: "met", False: "**missed**", None: ""}[goal["met"]]
        lines.append(f"| {label} | {_bar(goal['bar'], unit)} | {measured} | {verdict} |")
    return lines


def _cost(t: dict) -> list[str]:
    cost, st = t["cost"], t["setup"]
    expected = st["expected_minutes"]
    measured = {"teacher": cost["teacher_s"], **cost["rows_s"], "latency": cost.get("latency_s")}
    lines = ["| part | expected | measured |", "|---|---:|---:|"]
    for part, label in PARTS.items():
        if part not in expected:
            continue
        seconds = measured.get(part)
        shown = f"{seconds / 60:.1f} min" if seconds is not None else (
            "inside the first row of each transfer set" if part == "teacher_logits"
            else "not run")
        lines.append(f"| {label} | {expected[part]:.0f} min | {shown} |")
    total = sum(v for v in measured.values() if v is not None)
    missing = _missing_students(t)
    partial = (f" for the rows that ran ({', '.join(missing)} not yet)" if missing else "")
    return lines + ["", f"{total / 60:.0f} min in all{partial} (expected "
                    f"{sum(expected.values()):.0f} min; the budget is "
                    f"{st['budget_minutes'] / 60:g} h on 2 CPU cores). Expected costs come from "
                    "per-step costs measured on this CPU; the first row of each transfer set "
                    "also computes the teacher's logits on it, once, for every row after it. "
                    f"{cost['runs']} runs are saved in `runs/bench/transfer-*` and reused."]


def section(transfer: dict | None) -> list[str]:
    """The section's lines; a "not yet measured" note without a ``transfer`` object."""
    if not transfer:
        return [TITLE, "", "Not yet measured: `python scripts/bench.py --section transfer` "
                "writes this section.", ""]
    smoke = ["", "**Smoke run** (a few steps on a tiny data set): the numbers check the "
             "script, not the method."] if transfer["setup"]["smoke"] else []
    return [TITLE, *smoke, "", *_setup(transfer), "", "### Rows", "", *_rows(transfer), "",
            *_by_length(transfer), "### Goals", "", *_goals(transfer), "", "### Cost", "",
            *_cost(transfer), ""]


def headline(transfer: dict) -> list[str]:
    """The README's table: the teacher and each chosen row, validation accuracy first."""
    teacher = transfer["teacher"]
    lines = ["| model | params | SST-2 acc. (%) | retention | ms @ b32 | speed-up @ b32 |",
             "|---|---:|---:|---:|---:|---:|",
             f"| teacher: {_model(transfer['setup']['teacher_model'])} fine-tuned on L | "
             f"{teacher['params'] / 1e6:.1f}M | {pct(teacher['accuracy'])} | 100% | "
             f"{teacher['latency_ms_b32']:.0f} | 1.00x |"]
    for name, student, row in _chosen(transfer):
        lines.append(f"| {ROW_LABELS[name]} ({STUDENT_LABELS.get(student, student)}; "
                     f"{_seeds(row)}) | {row['params'] / 1e6:.1f}M | {_accuracy(row)} | "
                     f"{row['retention_pct']:.1f}% | {row['latency_ms_b32']:.0f} | "
                     f"{row['speedup_b32']:.2f}x |")
    st = transfer["setup"]
    return lines + ["", f"SST-2 validation; L = {st['labelled']:,} labelled sentences, U = "
                    f"{transfer['unlabelled']:,} unlabeled ones, every choice made on a "
                    f"{st['dev']:,}-sentence dev split; CPU latency at "
                    f"{st['latency_seq_len']} tokens.", *_not_run_line(transfer)]


def page(transfer: dict | None) -> str:
    """The page when only the transfer section has run."""
    return "\n".join(["# Benchmarks: SST-2, real models, CPU", "",
                      "Written by `scripts/bench.py` from `docs/benchmarks/results.json`.", "",
                      *section(transfer)])
