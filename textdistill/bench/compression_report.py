"""The compression section of ``docs/benchmarks.md`` and its figure, rendered from
``results.json``'s ``compression`` object alone ("not yet measured" without one)."""

from __future__ import annotations

from pathlib import Path

from .findings import pct

TITLE = "## Compression: ONNX Runtime, int8 weights and pruning"
FIGURE = "compression.png"
ROW_LABELS = {
    "teacher_fp32": "teacher (MiniLM-L6), PyTorch fp32",
    "student_fp32": "student, PyTorch fp32",
    "student_onnx_fp32": "student, ONNX Runtime fp32",
    "student_onnx_int8": "student, ONNX Runtime int8",
    "student_onnx_int8_static": "student, ONNX Runtime int8 static (QDQ, calibrated)",
    "pruned_fp32": "pruned + recovered student, PyTorch fp32",
    "pruned_onnx_int8": "pruned + recovered student, ONNX Runtime int8",
    "mpnet_teacher_fp32": "transfer teacher (MPNet-base), PyTorch fp32",
    "transfer_student_fp32": "transfer B student (3 blocks), PyTorch fp32",
    "transfer_student_onnx_int8": "transfer B student (3 blocks), ONNX Runtime int8",
}
# Goal key -> (what it compares, unit of its bar and value).
GOALS = {
    "int8_speedup_b32_vs_student": ("int8 student vs fp32 student, batch 32", "x"),
    "int8_speedup_b1_vs_student": ("int8 student vs fp32 student, batch 1", "x"),
    "int8_accuracy_loss_pts": ("accuracy lost by int8 (fp32 student - int8 student)", "pt"),
    "int8_speedup_b32_vs_teacher": ("int8 student vs fp32 teacher, batch 32", "x"),
    "pruned_accuracy_loss_pts": ("accuracy lost by pruning + recovery (student - pruned)",
                                 "pt"),
    "pruned_speedup_b32_vs_student": ("pruned fp32 vs unpruned fp32 student, batch 32", "x"),
}
PARTS = {"prune": "pruning (importance scoring)", "recovery": "recovery distillation",
         "exports": "ONNX exports and int8 quantization (with their cards)",
         "accuracy": "accuracy on SST-2 validation", "latency": "latency (alternating rounds)"}


def pareto_front(rows: dict[str, dict]) -> list[str]:
    """The rows no other row beats on both batch-32 latency and accuracy, fastest first."""
    front: list[str] = []
    best = -1.0
    for name in sorted(rows, key=lambda n: (rows[n]["latency_ms_b32"], -rows[n]["accuracy"])):
        if rows[name]["accuracy"] > best:
            front.append(name)
            best = rows[name]["accuracy"]
    return front


def _goal_value(value: float, unit: str) -> str:
    return f"{value:.2f}x" if unit == "x" else f"{value:+.2f} pt"


def _bar(goal: dict, unit: str) -> str:
    sign = ">=" if goal["kind"] == "at_least" else "<="
    return f"{sign} {goal['bar']:g}{'x' if unit == 'x' else ' pt'}"


def _setup(c: dict) -> list[str]:
    st, pruning = c["setup"], c["pruning"]
    prune, recovery = st["prune"], st["recovery"]
    distill = recovery["distill"]
    weight = distill["intermediate_weight"]
    width = pruning["intermediate_size"]
    params = pruning["params"]
    transfer = (" The transfer section's MPNet-base teacher and its chosen 3-block B student "
                "(seed 42) are measured too: the speed-up of a deployed student over a "
                "110M-parameter teacher." if st["transfer"] else "")
    return [
        f"- **Device:** {c['device']}. **Command:** `{c['command']}` (after the same-data "
        "section, whose models it reads).",
        f"- **Models:** the same-data teacher and its best 3-layer student, "
        f"**{st['student_key']}** (its seed-42 run, `{Path(st['student_run']).name}`).{transfer}",
        "- **ONNX Runtime:** `textdistill quantize` (TorchScript export, opset 17; `onnx-int8` "
        "adds ONNX Runtime's dynamic quantization: int8 weights, activations quantized per "
        "batch, no calibration data), run on its CPU provider with as many intra-op threads "
        "as PyTorch.",
        f"- **Pruning:** `textdistill prune` on the student, {100 * prune['heads']:g}% of its "
        f"heads and {100 * prune['ffn']:g}% of each block's feed-forward neurons, scored on "
        f"{prune['examples']:,} subset sentences: {pruning['heads_zeroed']} of "
        f"{pruning['heads_total']} heads zeroed (transformers 5 cannot load a model with fewer "
        f"heads in some blocks, so they still cost compute), intermediate size "
        f"{width['before']} -> {width['after']}, {params['before'] / 1e6:.1f}M -> "
        f"{params['after'] / 1e6:.1f}M parameters ({params['zeroed'] / 1e6:.2f}M of them zeros). "
        f"Accuracy right after pruning: {pct(pruning['accuracy_before_recovery'])}%.",
        f"- **Recovery:** a distillation row from the unpruned student (the model the bars "
        "compare with; same tokenizer, depth and width, so hidden states and attention maps "
        f"match 1:1): {recovery['steps']} steps of {recovery['batch_size']} on the subset, lr "
        f"{recovery['lr']:g}, kd_kl at T {distill['temperature']:g}, hard-label weight "
        f"{distill['hard_weight']:g}, hidden + attention MSE on the uniform mapping weighted "
        f"{weight['start']:g} annealed to {weight['end']:g}; evaluated once, at the end.",
        f"- **Accuracy:** all {st['eval_examples']} SST-2 validation sentences, max "
        f"{st['latency_seq_len']} tokens, through `textdistill evaluate`'s loop. **Size:** MiB "
        "of the weight or graph files. **Latency:** CPU, batches of "
        f"{st['latency_seq_len']}-token sequences, {st['threads']} threads, every row in one "
        f"process, the median over {st['rounds']} rounds that alternate the models of each "
        "round's median.",
    ]


def _rows(c: dict) -> list[str]:
    front = set(pareto_front(c["rows"]))
    lines = ["| model | params | size (MB) | SST-2 acc. (%) | ms @ b1 | ms @ b32 | speed-up "
             "vs teacher @ b1 | @ b32 | Pareto |", "|---|---:|---:|---:|---:|---:|---:|---:|:-:|"]
    for name, row in c["rows"].items():
        lines.append(f"| {ROW_LABELS.get(name, name)} | {row['params'] / 1e6:.1f}M | "
                     f"{row['size_mb']:.1f} | {pct(row['accuracy'])} | "
                     f"{row['latency_ms_b1']:.1f} | {row['latency_ms_b32']:.0f} | "
                     f"{row['speedup_vs_teacher_b1']:.2f}x | "
                     f"{row['speedup_vs_teacher_b32']:.2f}x | {'yes' if name in front else ''} |")
    lines += ["", "Speed-ups are against the MiniLM-L6 teacher in PyTorch fp32. An int8 graph "
              "counts each int8 weight as one parameter (plus a scale and zero point per "
              "tensor); its size shows the 4x."]
    own = {name: row for name, row in c["rows"].items() if row["own_teacher"] != "teacher_fp32"}
    for name, row in own.items():
        if name != row["own_teacher"]:
            lines.append(f"{ROW_LABELS.get(name, name)}: "
                         f"{row['speedup_vs_own_teacher_b32']:.1f}x faster at batch 32 than "
                         f"its own teacher, {ROW_LABELS.get(row['own_teacher'])}.")
    return lines


def _times(static_ms: float, dynamic_ms: float) -> str:
    if static_ms < dynamic_ms:
        return f"{dynamic_ms / static_ms:.2f}x faster"
    if static_ms > dynamic_ms:
        return f"{static_ms / dynamic_ms:.2f}x slower"
    return "as fast"


def static_against_dynamic(c: dict) -> list[str]:
    """The sentence comparing the static int8 row with the dynamic one (which
    ``textdistill quantize`` offers), or nothing when the JSON lacks either."""
    rows = c["rows"]
    static, dynamic = rows.get("student_onnx_int8_static"), rows.get("student_onnx_int8")
    calibration = c["setup"].get("static_int8")
    if static is None or dynamic is None or calibration is None:
        return []
    b1, b32 = (_times(static[key], dynamic[key]) for key in ("latency_ms_b1", "latency_ms_b32"))
    faster = all(static[key] < dynamic[key] for key in ("latency_ms_b1", "latency_ms_b32"))
    verdict = (", though static int8 is faster here at both batch sizes: a case for offering it"
               if faster else ": static int8 is not faster here at every batch size")
    return ["", f"Static int8 (QDQ, {calibration['activations']} activations with scales "
            f"fixed by {calibration['method']} calibration on {calibration['sentences']} "
            f"training sentences, {'/'.join(calibration['ops'])} only) against the dynamic "
            f"int8 row: {b1} at batch 1, {b32} at batch 32, "
            f"{100 * (static['accuracy'] - dynamic['accuracy']):+.2f} pt of accuracy "
            f"({pct(static['accuracy'])}% against {pct(dynamic['accuracy'])}%), "
            f"{static['size_mb']:.1f} MB against {dynamic['size_mb']:.1f} MB. "
            f"`textdistill quantize` offers dynamic int8 only{verdict} "
            "(see `docs/deploy.md`)."]


def _goals(c: dict) -> list[str]:
    lines = ["| goal | bar | measured | |", "|---|---|---:|---|"]
    for key, goal in c["goals"].items():
        label, unit = GOALS[key]
        verdict = "met" if goal["met"] else "**missed**"
        lines.append(f"| {label} | {_bar(goal, unit)} | {_goal_value(goal['measured'], unit)} "
                     f"| {verdict} |")
    return lines


def _cost(c: dict) -> list[str]:
    expected, measured = c["setup"]["expected_minutes"], c["cost_s"]
    lines = ["| part | expected | measured |", "|---|---:|---:|"]
    for part, label in PARTS.items():
        lines.append(f"| {label} | {expected[part]:.1f} min | {measured[part] / 60:.1f} min |")
    return lines + ["", f"{sum(measured.values()) / 60:.0f} min in all (expected "
                    f"{sum(expected.values()):.0f} min on 2 CPU cores, from per-step and "
                    "per-pass costs measured on this CPU; `textdistill/bench/compression.py`). "
                    "Measured times are those of the runs that made each part: the pruned "
                    "model, the recovery row and the ONNX directories are saved in "
                    "`runs/bench/compression` and reused while their source weights are "
                    "unchanged; latency is measured on every run."]


def section(compression: dict | None) -> list[str]:
    """The section's lines; a "not yet measured" note without a ``compression`` object."""
    if not compression:
        return [TITLE, "", "Not yet measured: `python scripts/bench.py --section compression` "
                "writes this section, after the same-data section.", ""]
    smoke = ["", "**Smoke run** (tiny models, a few steps): the numbers check the script, "
             "not the method."] if compression["setup"]["smoke"] else []
    return [TITLE, *smoke, "", *_setup(compression), "", "### Rows", "", *_rows(compression),
            *static_against_dynamic(compression), "",
            f"![accuracy against latency at batch 32](benchmarks/{FIGURE})", "",
            "### Goals", "", *_goals(compression), "", "### Cost", "", *_cost(compression), ""]


def plot(compression: dict | None, out: Path) -> str | None:
    """Accuracy against batch-32 latency (log scale), the Pareto front drawn; returns the
    file name in ``out`` (None without a ``compression`` object)."""
    if not compression:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = compression["rows"]
    front = pareto_front(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in rows.items():
        on_front = name in front
        ax.scatter([row["latency_ms_b32"]], [100 * row["accuracy"]],
                   marker="*" if on_front else "o", s=90 if on_front else 40,
                   color="tab:red" if row["precision"] == "int8" else "tab:blue")
        ax.annotate(ROW_LABELS.get(name, name), (row["latency_ms_b32"], 100 * row["accuracy"]),
                    textcoords="offset points", xytext=(5, 3), fontsize=7)
    ax.step([rows[n]["latency_ms_b32"] for n in front],
            [100 * rows[n]["accuracy"] for n in front], where="post", color="grey", ls="--",
            label="Pareto front (stars)")
    ax.set_xscale("log")
    ax.set_xlabel(f"CPU latency at batch 32, {compression['setup']['latency_seq_len']} tokens "
                  "(ms, log scale)")
    ax.set_ylabel("SST-2 validation accuracy (%)")
    ax.set_title("fp32 blue, int8 red", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / FIGURE, dpi=120)
    plt.close(fig)
    return FIGURE
