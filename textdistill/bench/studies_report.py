"""The studies' page (``docs/benchmark-studies.md``), rendered from their JSON alone."""

from __future__ import annotations

# A KD gain below this (pt) does not count as paying off: seed noise on the SST-2
# validation set is about this size.
PAYS_PTS = 0.5


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _layers(arm: dict, whose: str) -> str:
    layers = arm["layers"]
    return f"{len(layers)} layers ({', '.join(map(str, layers))}) of the {whose} teacher"


def _teachers(result: dict) -> list[str]:
    teachers = result["teachers"]

    def subset(name: str, key: str) -> str:
        return f"{100 * teachers[name]['on_student_subset'][key]:.1f}%"

    def row(name: str, label: str, data: str) -> str:
        t = teachers[name]
        return (f"| {label} | {t['train_examples']:,} sentences ({data}) | "
                f"{_pct(t['accuracy'])} | {subset(name, 'gold_agreement')} | "
                f"{subset(name, 'mean_confidence')} |")

    return [
        "## The teachers",
        "",
        "The students' soft targets are the teacher's outputs on their own training "
        "sentences. How often those agree with the gold labels shows how much a soft target "
        "can add to the label.",
        "",
        "| teacher | trained on | validation acc. (%) | its class = gold label on the "
        "students' subset | mean confidence there |",
        "|---|---:|---:|---:|---:|",
        row("benchmark", "benchmark teacher", "subset included"),
        row("heldout", "held-out teacher", "subset excluded"),
        "",
    ]


def _results(result: dict) -> list[str]:
    arms = result["arms"]
    room, held = "benchmark", "held-out"
    names = {"room/labels": ("room to gain", room, "labels only (A2)"),
             "room/kd": ("room to gain", room,
                         f"labels + logit KD (B2, {arms['room/kd']['variant']})"),
             "heldout/labels": ("held-out teacher", held, "labels only (A)"),
             "heldout/kd": ("held-out teacher", held,
                            f"labels + its logits (B, {arms['heldout/kd']['variant']})")}
    lines = ["## Results", "",
             "| study | student | trained on | accuracy (%) per seed | mean |",
             "|---|---|---|---:|---:|"]
    for key, (study, whose, training) in names.items():
        arm = arms[key]
        accs = ", ".join(_pct(a) for a in arm["accuracies"])
        lines.append(f"| {study} | {_layers(arm, whose)} | {training} | {accs} | "
                     f"{_pct(arm['accuracy_mean'])} |")
    return lines


def markdown(result: dict) -> str:
    st = result["setup"]
    lines = [
        "# Why distillation gains little here: two studies",
        "",
        "Written by `python scripts/bench_studies.py` from `docs/benchmarks/studies.json`; "
        f"it reuses the [benchmark](benchmarks.md)'s teacher, {st['train_subset']:,}-sentence "
        f"subset, budget ({st['epochs_equivalent']:g} epochs of it, batch "
        f"{st['batch_size']}, lr {st['lr']:g}) and row builders. "
        f"Seeds {', '.join(str(s) for s in result['seeds'])}; accuracy on the "
        f"{st['eval_examples']} SST-2 validation sentences at the end of training.",
        "",
        f"- **Device:** {result['device']}.",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        *_teachers(result),
        *_results(result),
    ]
    lines += ["", "## What they show", ""] + conclusions(result) + [""]
    return "\n".join(lines)


def conclusions(result: dict) -> list[str]:
    """What the numbers say."""
    room, held = result["room_kd_gain_pts"], result["heldout_kd_gain_pts"]
    labels = result["arms"]["heldout/labels"]["accuracy_mean"]
    teacher = result["teachers"]["heldout"]
    gap = 100 * (result["teachers"]["benchmark"]["accuracy"]
                 - result["arms"]["room/labels"]["accuracy_mean"])
    layers = len(result["arms"]["room/labels"]["layers"])
    # The benchmark's students have the held-out arms' shape.
    three = len(result["arms"]["heldout/labels"]["layers"])
    if room < PAYS_PTS:
        first = (f"- **Room to gain:** the {layers}-layer student trails the teacher by "
                 f"{gap:.1f} pt on labels alone, yet logit KD moves it by {room:+.2f} pt (mean "
                 f"over seeds). More room does not make KD pay here, so the {three}-layer "
                 "students' small gain is not only a matter of their small gap to the teacher.")
    else:
        first = (f"- **Room to gain:** logit KD gains {room:+.2f} pt for the {layers}-layer "
                 f"student, which trails the teacher by {gap:.1f} pt on labels alone: KD pays "
                 f"where there is room, so the {three}-layer students' small gain comes with "
                 "their small gap.")
    line = (f"- **Held-out teacher:** from the teacher that never saw the subset, labels alone "
            f"reach {_pct(labels)} ({100 * labels / teacher['accuracy']:.1f}% of that "
            f"teacher's {_pct(teacher['accuracy'])}), and adding its logits moves the student "
            f"by {held:+.2f} pt.")
    stats = teacher["on_student_subset"]
    if held < PAYS_PTS:
        line += (f" Its targets on the subset are predictions, not recalled labels, and its "
                 f"class differs from the gold label on {100 * (1 - stats['gold_agreement']):.1f}"
                 f"% of it; there KD pulls the student away from the label, and elsewhere, at "
                 f"{100 * stats['mean_confidence']:.1f}% mean confidence on the subset, it "
                 "mostly repeats the label.")
    return [first, line]
