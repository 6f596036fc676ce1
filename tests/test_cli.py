"""The ``textdistill`` CLI end to end on tiny random models and a tiny generated dataset."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
import yaml
from tiny import (
    PAIR_LABELS,
    one_line_error,
    write_pair_csv,
    write_sentiment_tsv,
    write_tiny_classifier,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textdistill.cli import main

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
RESULT_KEYS = {"final_eval", "best_eval", "best_step", "params", "wall_time_s", "teacher_eval",
               "latency", "train_examples", "eval_examples", "textdistill_version"}
TRAIN = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "warmup": 0.0, "logging_steps": 4,
         "save_steps": 1000, "report_to": [], "progress_bar": False, "save_total_limit": 1}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Shared inputs: a tiny 'pretrained' model, SST-2-like tsv files, a cache dir."""
    root = tmp_path_factory.mktemp("cli")
    train, dev = write_sentiment_tsv(root / "sst", n_train=192)
    return types.SimpleNamespace(
        root=root, base=write_tiny_classifier(root / "base", labels=None, seed=0),
        train=train, dev=dev, cache=root / "hf-cache")


def _data(ws, **changes) -> dict:
    data = {"train": str(ws.train), "eval": str(ws.dev),
            "label_names": ["negative", "positive"], "max_length": 32,
            "cache_dir": str(ws.cache)}
    data.update(changes)
    return data


def _recipe(path: Path, **sections) -> str:
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return str(path)


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))




@pytest.fixture(scope="module")
def teacher_run(ws):
    """`textdistill finetune` of the tiny pretrained model: the teacher of later tests."""
    run = ws.root / "teacher"
    recipe = _recipe(ws.root / "teacher.yaml", student={"pretrained": str(ws.base)},
                     data=_data(ws), train=TRAIN, output={"dir": str(run)})
    assert main(["finetune", recipe]) == 0
    return run


@pytest.fixture(scope="module")
def student_run(ws, teacher_run):
    """`textdistill distill` from that teacher into a 1-block student."""
    run = ws.root / "student"
    recipe = _recipe(
        ws.root / "distill.yaml", teacher={"model": str(teacher_run / "best")},
        student={"from_teacher": [1]}, data=_data(ws),
        distill={"temperature": 2.0, "hard_weight": 0.5, "intermediate_weight": 0.1,
                 "matches": "uniform"},
        train=TRAIN, output={"dir": str(run)})
    assert main(["distill", recipe]) == 0
    return types.SimpleNamespace(run=run, recipe=recipe)


# ------------------------------------------------------------------------ end to end


def test_finetune_writes_recipe_best_model_and_results(teacher_run):
    results = _results(teacher_run)
    assert RESULT_KEYS <= set(results)
    assert results["mode"] == "finetune" and results["teacher_eval"] is None
    assert set(results["best_eval"]) == {"accuracy", "f1", "mcc"}
    assert results["best_eval"]["accuracy"] > 0.7, results  # the sentiment words are learnable
    assert results["params"]["teacher"] is None and results["params"]["student"] > 0
    assert set(results["latency"]["student"]) == {"1", "32"}
    assert results["train_examples"] == 192 and results["eval_examples"] == 32
    saved = yaml.safe_load((teacher_run / "recipe.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["lr"] == TRAIN["lr"] and saved["output"]["dir"] == str(teacher_run)
    model = AutoModelForSequenceClassification.from_pretrained(teacher_run / "best")
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_export_of_a_finetune_run_says_fine_tuned_from_its_base(ws, teacher_run, tmp_path):
    hub = tmp_path / "hub"
    assert main(["export", str(teacher_run), str(hub)]) == 0
    card = (hub / "README.md").read_text(encoding="utf-8")
    assert "fine-tuned with textdistill from" in card and "unspecified" not in card
    assert ws.base.name in card and "## Training config" in card


def test_distill_then_evaluate_then_export(ws, student_run, capsys, tmp_path):
    results = _results(student_run.run)
    assert RESULT_KEYS <= set(results) and results["mode"] == "distill"
    assert set(results["teacher_eval"]) == {"accuracy", "f1", "mcc"}
    assert results["params"]["student"] < results["params"]["teacher"]
    assert set(results["latency"]["teacher"]) == {"1", "32"}
    best = student_run.run / "best"

    capsys.readouterr()
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", str(best), "--data", student_run.recipe, "--json",
                 str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "latency ms (batch 32" in printed and "params" in printed
    evaluated = json.loads(out_json.read_text(encoding="utf-8"))
    assert evaluated["examples"] == 32 and set(evaluated["latency_ms"]) == {"1", "32"}
    assert evaluated["metrics"]["accuracy"] == pytest.approx(results["best_eval"]["accuracy"])
    # The same split given as a file, labels as ids of the model's classes.
    assert main(["evaluate", str(best), "--data", str(ws.dev), "--no-latency",
                 "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["metrics"] == evaluated["metrics"]

    hub = tmp_path / "hub"
    assert main(["export", str(student_run.run), str(hub)]) == 0
    exported = AutoModelForSequenceClassification.from_pretrained(hub).eval()
    tokenizer = AutoTokenizer.from_pretrained(hub)
    trained = AutoModelForSequenceClassification.from_pretrained(best).eval()
    inputs = tokenizer(["the movie was great", "i hated the plot"], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(exported(**inputs).logits, trained(**inputs).logits,
                                   rtol=0, atol=0)
    assert exported.config.id2label == {0: "negative", 1: "positive"}
    # The weights are as readable as the config beside them (safetensors writes 0600).
    modes = {p.name: p.stat().st_mode & 0o777 for p in hub.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == modes["config.json"], modes
    card = (hub / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "pipeline_tag: text-classification" in card and "textdistill" in card
    assert "| teacher |" in card and "| student (this model) |" in card
    assert "temperature: 2.0" in card

    capsys.readouterr()
    assert main(["export", str(student_run.run), str(hub)]) == 2
    one_line_error(capsys, "not empty", "--overwrite")
    assert main(["export", str(student_run.run), str(hub), "--overwrite"]) == 0


def test_push_offline_exits_2_and_leaves_a_complete_export(student_run, capsys, tmp_path):
    hub = tmp_path / "pushed"
    assert main(["export", str(student_run.run), str(hub), "--push", "someone/tiny"]) == 2
    one_line_error(capsys, "cannot push to the Hub", "offline", str(hub))
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in hub.iterdir()}
    AutoModelForSequenceClassification.from_pretrained(hub)


def test_existing_run_needs_resume_or_overwrite(student_run, capsys):
    capsys.readouterr()
    assert main(["distill", student_run.recipe]) == 2
    one_line_error(capsys, "already holds a run", "--resume", "output.overwrite")
    before = _results(student_run.run)
    # A finished run resumes to its end: nothing more to train, the same best step.
    assert main(["distill", student_run.recipe, "--resume"]) == 0
    assert _results(student_run.run)["best_step"] == before["best_step"]
    # Overwrite deletes the old run only once every check has passed.
    capsys.readouterr()
    assert main(["distill", student_run.recipe, "--set", "output.overwrite=true",
                 "--set", "data.label_names=[bad, good]"]) == 2
    one_line_error(capsys, "teacher.model: label names differ")
    assert _results(student_run.run)["final_step"] == before["final_step"]
    assert (student_run.run / "best").is_dir()
    assert main(["distill", student_run.recipe, "--set", "output.overwrite=true",
                 "--set", "train.max_steps=2"]) == 0
    assert _results(student_run.run)["final_step"] == 2


# ------------------------------------------------------------------ data and labels


def test_sentence_pairs_distill_and_evaluate(ws, capsys, tmp_path):
    train, dev = write_pair_csv(tmp_path / "pairs")
    teacher = write_tiny_classifier(tmp_path / "nli-teacher", labels=PAIR_LABELS, seed=3)
    run = tmp_path / "nli"
    recipe = _recipe(
        tmp_path / "nli.yaml", teacher={"model": str(teacher)},
        student={"config": {"num_layers": 1, "hidden_size": 16, "num_heads": 2,
                            "intermediate_size": 32}},
        data={"train": str(train), "eval": str(dev), "max_length": 32,
              "text_columns": ["premise", "hypothesis"], "cache_dir": str(ws.cache)},
        distill={"matches": "last"}, train={**TRAIN, "max_steps": 3},
        output={"dir": str(run)})
    assert main(["distill", recipe]) == 0
    results = _results(run)
    assert results["label_names"] == list(PAIR_LABELS) and results["eval_examples"] == 24
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", str(run / "best"), "--data", str(dev), "--text-columns",
                 "premise", "hypothesis", "--no-latency", "--json", str(out_json)]) == 0
    evaluated = json.loads(out_json.read_text())
    assert evaluated["metrics"] == pytest.approx(results["final_eval"])
    # The pair's token types reach the model: [CLS] premise [SEP] hypothesis [SEP].
    tokenizer = AutoTokenizer.from_pretrained(run / "best")
    assert 1 in tokenizer("the cat sat", "it was good")["token_type_ids"]


def test_label_order_mismatch_fails_up_front_and_remap_fixes_it(ws, capsys, tmp_path):
    teacher = write_tiny_classifier(tmp_path / "swapped", labels=("positive", "negative"))
    sections = dict(teacher={"model": str(teacher)}, student={"from_teacher": [0]},
                    data=_data(ws), train={**TRAIN, "max_steps": 2},
                    output={"dir": str(tmp_path / "run")})
    recipe = _recipe(tmp_path / "swapped.yaml", **sections)
    capsys.readouterr()
    assert main(["distill", recipe]) == 2
    one_line_error(capsys, "teacher.model: label order mismatch", "remap_labels")
    assert not (tmp_path / "run" / "checkpoints").exists(), "nothing trained"

    assert main(["distill", recipe, "--set", "teacher.remap_labels=true"]) == 0
    results = _results(tmp_path / "run")
    assert results["label_names"] == ["positive", "negative"]  # the teacher's ids
    # evaluate matches classes by name on its own: the same teacher accuracy.
    out_json = tmp_path / "teacher-eval.json"
    assert main(["evaluate", str(teacher), "--data", str(ws.dev), "--label-names", "negative",
                 "positive", "--no-latency", "--json", str(out_json)]) == 0
    evaluated = json.loads(out_json.read_text())
    assert evaluated["metrics"] == pytest.approx(results["teacher_eval"])


def test_tokenizer_mismatch_fails_up_front(ws, capsys, tmp_path, teacher_run):
    other = write_tiny_classifier(tmp_path / "other", labels=None)
    (other / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                               "movie", "good"]) + "\n", encoding="utf-8")
    for name in ("tokenizer.json",):
        (other / name).unlink(missing_ok=True)
    recipe = _recipe(tmp_path / "tok.yaml", teacher={"model": str(teacher_run / "best")},
                     student={"pretrained": str(other)}, data=_data(ws),
                     train={**TRAIN, "max_steps": 1}, output={"dir": str(tmp_path / "run")})
    capsys.readouterr()
    assert main(["check", recipe]) == 2
    one_line_error(capsys, "student.pretrained: teacher and student tokenizers differ")


# ---------------------------------------------------------------------------- check


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny models standing in for the Hub teachers of the GPU recipes."""
    root = tmp_path_factory.mktemp("stand-ins")
    return {
        "t12": write_tiny_classifier(root / "t12", num_layers=12, hidden_size=16, seed=1),
        "t24": write_tiny_classifier(root / "t24", num_layers=24, hidden_size=24, seed=2),
        "t12_nli": write_tiny_classifier(root / "t12-nli", labels=PAIR_LABELS, num_layers=12,
                                         hidden_size=16, seed=3),
        "base": write_tiny_classifier(root / "base", labels=None, seed=4),
        "base6": write_tiny_classifier(root / "base6", labels=None, num_layers=6, seed=5),
    }


def _stand_in_overrides(path: Path, stand_ins: dict) -> list[str]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    overrides = []
    teacher = (raw.get("teacher") or {}).get("model")
    three_classes = len((raw.get("data") or {}).get("label_names") or []) == 3
    if isinstance(teacher, list):
        overrides.append(f"teacher.model=[{stand_ins['t12']}, {stand_ins['t24']}]")
    elif teacher is not None:
        overrides.append(f"teacher.model={stand_ins['t12_nli' if three_classes else 't12']}")
    student = raw.get("student") or {}
    if "pretrained" in student:  # keeping blocks [0, 2, 4] needs a deeper stand-in
        overrides.append(f"student.pretrained={stand_ins['base6' if 'layers' in student else 'base']}")
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_check_accepts_every_shipped_recipe(path, stand_ins, capsys):
    assert main(["check", str(path), *_stand_in_overrides(path, stand_ins)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "student" in out and "params" in out
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if raw.get("teacher") and (raw.get("distill") or {}).get("matches"):
        assert "layer mapping" in out and "feature" in out and "projection" in out
    elif raw.get("teacher"):
        assert "(no intermediate matches)" in out
    if "config" in raw["student"]:  # TinyBERT: 312 -> 16 wide stand-in, auto projection
        assert "linear 312->16 (auto)" in out
    if isinstance((raw.get("teacher") or {}).get("model"), list):
        assert "t_index" in out


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("case", ["missing", "yaml", "unknown_key", "bad_set", "no_model",
                                  "evaluate_dir", "evaluate_spec", "export_run", "no_teacher",
                                  "bad_match"])
def test_bad_input_exits_2_with_one_line(case, ws, tmp_path, capsys):
    good = dict(student={"pretrained": str(ws.base)}, data=_data(ws),
                output={"dir": str(tmp_path / "run")})
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train: {lr: [1\n", encoding="utf-8")
    argv, fragment = {
        "missing": (["finetune", str(tmp_path / "none.yaml")], "recipe not found"),
        "yaml": (["check", str(bad_yaml)], "not valid YAML"),
        "unknown_key": (["check", _recipe(tmp_path / "unknown.yaml", **good,
                                          train={"lrr": 1})], "unknown key train.lrr"),
        "bad_set": (["finetune", _recipe(tmp_path / "good.yaml", **good), "--set", "data.nope=1"],
                    "unknown key data.nope; valid keys:"),
        "no_model": (["check", _recipe(tmp_path / "no-model.yaml", **{
            **good, "student": {"pretrained": str(tmp_path / "nothing")}})],
            "student.pretrained: no such model directory"),
        "evaluate_dir": (["evaluate", str(tmp_path / "nothing"), "--data", "sst2"],
                         "MODEL_DIR: no such model directory"),
        "evaluate_spec": (["evaluate", str(ws.base), "--data", "dataset.xlsx"],
                          "is not 'sst2', a recipe"),
        "export_run": (["export", str(tmp_path), str(tmp_path / "hub")], "best not found"),
        "no_teacher": (["distill", _recipe(tmp_path / "good.yaml", **good)],
                       "needs a teacher section"),
        "bad_match": (["check", _recipe(tmp_path / "match.yaml", **good,
                                        teacher={"model": str(ws.base)},
                                        distill={"matches": [{"feature": "hidden",
                                                              "student_layer": 5,
                                                              "teacher_layer": 1}]})],
                      "distill.matches[0].student_layer: 5 but the student has 2 layers"),
    }[case]
    capsys.readouterr()
    assert main(argv) == 2
    one_line_error(capsys, fragment)


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["check", str(tmp_path / "none.yaml"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["finetune", "distill", "evaluate", "check", "export",
                                  "quantize", "prune"])
def test_every_verb_has_help_with_examples(verb, capsys):
    assert main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"textdistill {verb}" in out


def test_quickstart_comparison_table():
    from tiny import load_script

    quickstart = load_script("quickstart")

    def result(accuracy, params, b1, b32):
        return {"metrics": {"accuracy": accuracy, "f1": accuracy}, "params": params,
                "latency_ms": {"1": b1, "32": b32}}

    table = quickstart.comparison_table(result(0.9, 22_700_000, 20.0, 400.0),
                                        result(0.88, 17_400_000, 10.0, 200.0))
    assert "22.7M" in table and "17.4M" in table
    assert "-0.0200" in table and "2.00x faster" in table and "0.77x" in table
