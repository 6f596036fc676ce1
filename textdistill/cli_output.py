"""What the ``textdistill`` verbs print: fixed-width tables and each verb's summary.

:mod:`textdistill.cli` parses and calls; the functions here turn what a call returned
into lines. Under torchrun every rank runs the verb, and only rank 0 prints
(:func:`print_once`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def print_once(text: str = "") -> None:
    """Print ``text`` on rank 0 only (everywhere in a single process)."""
    from .runner import is_main_process

    # Under torchrun every rank runs the verb; one copy of each line is enough.
    if is_main_process():
        print(text, flush=True)


# ------------------------------------------------------------------------------ tables


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value / 1e6:.1f}M" if value >= 100_000 else f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain fixed-width table; the first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def results_table(results: dict[str, Any]) -> str:
    """Teacher (if any) vs student: metrics, parameters, latency - for finetune/distill.
    A fine-tuned model is called "model": it may well be a teacher."""
    params = results.get("params") or {}
    latency = results.get("latency") or {}
    header = ["model", "accuracy", "f1", "mcc", "params", "ms b1", "ms b32"]
    rows = []
    if results.get("teacher_eval"):
        t, lat = results["teacher_eval"], latency.get("teacher") or {}
        rows.append(["teacher", t.get("accuracy"), t.get("f1"), t.get("mcc"),
                     params.get("teacher"), _ms(lat.get("1")), _ms(lat.get("32"))])
    lat = latency.get("student") or {}
    trained = "model" if results.get("mode") == "finetune" else "student"
    for name, metrics in ((f"{trained} (best)", results.get("best_eval")),
                          (f"{trained} (final)", results.get("final_eval"))):
        metrics = metrics or {}
        rows.append([name, metrics.get("accuracy"), metrics.get("f1"), metrics.get("mcc"),
                     params.get("student"), _ms(lat.get("1")), _ms(lat.get("32"))])
    return format_table(rows, header)


# ------------------------------------------------------------------------------- verbs


def print_training(results: dict[str, Any], best: Path, results_file: Path) -> None:
    """The summary of ``finetune`` / ``distill`` after training."""
    print_once()
    print_once(results_table(results))
    print_once()
    print_once(f"best step {results['best_step']} of {results['final_step']}  |  "
               f"{results['train_examples']} train / {results['eval_examples']} eval "
               f"examples  |  {results['wall_time_s']:.0f}s")
    print_once(f"best model: {best}   results: {results_file}")
    onnx = results.get("onnx")
    if onnx is not None:
        print_once(f"{onnx['method']}: {onnx['path']}  accuracy {_fmt(onnx['accuracy'])}, "
                   f"ms b1 {_ms(onnx['latency_ms']['1'])}, "
                   f"ms b32 {_ms(onnx['latency_ms']['32'])}, {_fmt(onnx['size_mb'])} MiB "
                   f"(best/: {_fmt(onnx['pytorch']['size_mb'])} MiB)")


def print_evaluation(result: dict[str, Any]) -> None:
    """``evaluate``'s metrics, size and latency table."""
    metrics = result["metrics"]
    print_once(f"{result['model']} ({result['runtime']}) on {result['data']} "
               f"({result['examples']} examples, labels {result['label_names']}):")
    rows = [["accuracy", metrics["accuracy"]], ["f1", metrics["f1"]], ["mcc", metrics["mcc"]],
            ["params", result["params"]], ["size on disk MiB (model files)", result["size_mb"]]]
    if "latency_ms" in result:
        for b in ("1", "32"):
            rows.append([f"latency ms (batch {b}, {result['seq_len']} tokens)",
                         _ms(result["latency_ms"][b])])
            rows.append([f"throughput samples/s (batch {b})",
                         _ms(result["samples_per_second"][b])])
    print_once(format_table(rows, ["metric", "value"]))


def _student_source(recipe: Any) -> str:
    spec = recipe.student
    if spec.kind == "from_teacher":
        # Block b's output is hidden state b + 1, the number the layer mapping uses.
        return (f"from_teacher: teacher blocks {spec.from_teacher} (0-based block indices; "
                f"their outputs are hidden states {[b + 1 for b in spec.from_teacher]})")
    if spec.kind == "config":
        shape = spec.config
        return (f"config: {shape.num_layers} layers, {shape.hidden_size} wide, "
                f"{shape.num_heads} heads, {shape.intermediate_size} intermediate")
    blocks = "" if spec.layers is None else f", blocks {spec.layers} (0-based)"
    return f"pretrained: {spec.pretrained}{blocks}"


def _label_table(counts: dict[str, dict[str, int]]) -> str:
    """Rows per split and class, as ``check`` prints them."""
    names = list(next(iter(counts.values())))
    rows = [[split, sum(by_name.values()), *by_name.values()] for split, by_name in
            counts.items()]
    return format_table(rows, ["data split", "rows", *names])


def _print_steps(recipe: Any, info: dict[str, Any]) -> None:
    """The steps ``check`` found around training: what ``student.prune`` removes before
    it, what ``output.quantize`` writes after it."""
    pruning, onnx_dir = info["pruning"], info["onnx_dir"]
    if pruning is not None:
        spec = recipe.student.prune
        (heads, total), (neurons, width) = pruning["heads"], pruning["neurons"]
        print_once()
        print_once(f"before training, student.prune removes {heads} of {total} attention "
                   f"heads (heads {spec.heads}) and {neurons} of {width} feed-forward neurons "
                   f"per block (ffn {spec.ffn}; intermediate_size {width} -> "
                   f"{width - neurons}), the least important on up to {pruning['batches']} "
                   f"batches of {pruning['batch_size']} labelled training rows (not scored "
                   "by check)")
    if onnx_dir is not None:
        print_once()
        print_once(f"after training, output.quantize writes best/ as {recipe.output.quantize} "
                   f"to {onnx_dir}, measured on the eval split")


def print_check(recipe_path: str, recipe: Any, mode: str, info: dict[str, Any]) -> None:
    """``check``'s report of a recipe (``info`` from :func:`~textdistill.runner.describe`):
    the resolved recipe, the models, the layer mapping, the labels and the notes."""
    built = info["built"]
    print_once(f"# {recipe_path}: valid ({mode})")
    print_once(recipe.to_yaml().rstrip())
    print_once()
    rows = [[f"teacher {i}" if len(info["params"]["teachers"]) > 1 else "teacher", n, ref]
            for i, (n, ref) in enumerate(zip(info["params"]["teachers"], recipe.teacher_models))]
    rows.append(["student", info["params"]["student"], _student_source(recipe)])
    if info["params"]["projections"]:
        rows.append(["projections", info["params"]["projections"], "trained, not exported"])
    print_once(format_table(rows, ["model", "params", "source"]))
    print_once()
    if mode == "distill":
        print_once("layer mapping, in hidden-state numbers (0 = embeddings, i = output of the "
                   "i-th block = 0-based block i - 1):")
        print_once(info["mapping_table"])
    else:
        print_once("fine-tuning: no teacher, no layer mapping")
    if built.label_counts is not None:
        print_once()
        print_once(_label_table(built.label_counts))
    _print_steps(recipe, info)
    notes = [*recipe.notes, *built.notes, *info["plan"].notes]
    if recipe.data.dataset is None:
        for key in ("train", "eval"):
            path = getattr(recipe.data, key)
            if not Path(path).is_file():
                notes.append(f"data.{key} does not exist (yet): {path}")
    for note in notes:
        print_once(f"note: {note}")


def print_quantized(out: dict[str, Any]) -> None:
    """``quantize``'s comparison table and where it wrote."""
    rows = [[row["model"], row["accuracy"], row["f1"], row["params"], row["size_mb"],
             _ms(row["latency_ms_b1"]), _ms(row["latency_ms_b32"])] for row in out["rows"]]
    print_once()
    print_once(format_table(rows, ["model", "accuracy", "f1", "params", "MiB", "ms b1",
                                   "ms b32"]))
    print_once(f"latency: {out['rows'][0]['seq_len']} tokens, {out['rows'][0]['threads']} "
               "threads; " + (f"accuracy on {out['data']}" if out["data"]
                              else "no eval data: pass --data"))
    print_once(f"written: {out['path']}  (model.onnx, config.json, tokenizer, README.md)")


def print_pruned(out: dict[str, Any]) -> None:
    """``prune``'s per-block table of what it removed, and where it wrote."""
    record = out["record"]
    rows = [[row["block"], ", ".join(map(str, row["heads_removed"])) or "-",
             " ".join(f"{s:.2f}" for s in row["head_importance"]),
             f"{row['ffn_importance_removed']:.1%}"] for row in out["layers"]]
    print_once()
    print_once(format_table(rows, ["block", "heads removed", "head importance",
                                   "FFN importance removed"]))
    width = record["intermediate_size"]
    print_once(f"scored {record['examples']} examples in {record['batches']} batches; "
               f"intermediate_size {width['before']} -> {width['after']}; params "
               f"{_fmt(out['params']['before'])} -> {_fmt(out['params']['after'])} "
               f"({_fmt(out['params']['zeroed'])} in zeroed heads)")
    print_once(f"written: {out['path']}  (recover accuracy with a distill run: README, "
               "Pruning)")
