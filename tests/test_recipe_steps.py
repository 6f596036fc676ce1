"""A recipe that chains prune -> distill -> quantize: student.prune before training,
output.quantize after it, both checked before anything is written."""

from __future__ import annotations

import json
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from tiny import one_line_error, write_sentiment_tsv, write_tiny_classifier
from transformers import AutoModelForSequenceClassification

from textdistill.cli import main
from textdistill.prune import RECORD_KEY
from textdistill.pruning import find_blocks

needs_deploy = pytest.mark.skipif(
    find_spec("onnx") is None or find_spec("onnxruntime") is None,
    reason="needs the deploy extra (onnx, onnxruntime)")
HEADS = 4  # 2 blocks of 4 heads (head size 8), intermediate width 64


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("steps")
    train, dev = write_sentiment_tsv(root / "sst", n_train=48, n_eval=16)
    unlabelled = root / "unlabelled.txt"
    unlabelled.write_text("\n".join(["the plot was fun", "a boring film", "i loved it",
                                     "the acting was awful"] * 4) + "\n", encoding="utf-8")
    teacher = write_tiny_classifier(root / "teacher", num_heads=HEADS)
    return type("Ws", (), {"root": root, "train": train, "dev": dev, "teacher": teacher,
                           "unlabelled": unlabelled})


def _recipe(ws, tmp_path: Path) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump({
        "teacher": {"model": str(ws.teacher)},
        "student": {"from_teacher": [0, 1],
                    "prune": {"heads": 0.5, "ffn": 0.5, "batches": 2}},
        # 16 unlabelled transfer texts: the train split holds rows pruning must not score.
        "data": {"train": str(ws.train), "eval": str(ws.dev), "max_length": 32,
                 "label_names": ["negative", "positive"],
                 "transfer": {"files": [str(ws.unlabelled)], "leak_guard": False}},
        "distill": {"matches": "uniform"},
        "train": {"max_steps": 2, "batch_size": 8, "report_to": [], "progress_bar": False,
                  "save_steps": 1000},
        "output": {"dir": str(tmp_path / "run"), "quantize": "onnx-int8"}}), encoding="utf-8")
    return path


def _zeroed(model, layer: int, head: int) -> bool:
    blocks = find_blocks(model)
    block, span = blocks.blocks[layer], slice(head * blocks.head_size,
                                              (head + 1) * blocks.head_size)
    return all(not p[span].any() for p in (block.query.weight, block.key.weight,
                                           block.value.weight)) and \
        not block.attention_out.weight[:, span].any()


@needs_deploy
def test_prune_distill_quantize_in_one_run(ws, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill", str(_recipe(ws, tmp_path))]) == 0
    printed = capsys.readouterr().out
    assert "pruned the student: 4 of 8 heads zeroed, intermediate_size 64 -> 32" in printed
    assert "leaving 4 zeroed attention heads out of the graph" in printed

    best = AutoModelForSequenceClassification.from_pretrained(run / "best")
    record = getattr(best.config, RECORD_KEY)
    assert best.config.intermediate_size == 32
    assert record["fractions"] == {"heads": 0.5, "ffn": 0.5}
    # 2 full batches of 8 labelled rows, drawn from the labelled rows only.
    assert (record["examples"], record["batches"]) == (16, 2)
    zeroed = [(int(layer), h) for layer, heads in record["heads_zeroed"].items()
              for h in heads]
    assert len(zeroed) == 4 and all(_zeroed(best, layer, h) for layer, h in zeroed)

    assert (run / "onnx" / "model.onnx").is_file()
    onnx = json.loads((run / "results.json").read_text(encoding="utf-8"))["onnx"]
    assert (onnx["path"], onnx["method"]) == (str(run / "onnx"), "onnx-int8")
    assert onnx["data"] == str(run / "recipe.yaml")
    assert 0 <= onnx["accuracy"] <= 1 and onnx["size_mb"] > 0
    assert set(onnx["latency_ms"]) == {"1", "32"} and onnx["pytorch"]["size_mb"] > 0
    assert f"onnx-int8: {run / 'onnx'}  accuracy" in printed


def test_check_prints_the_plan_and_writes_nothing(ws, tmp_path, capsys):
    assert main(["check", str(_recipe(ws, tmp_path))]) == 0
    printed = capsys.readouterr().out
    assert ("student.prune removes 4 of 8 attention heads (heads 0.5) and 32 of 64 "
            "feed-forward neurons per block (ffn 0.5; intermediate_size 64 -> 32)") in printed
    assert "up to 2 batches of 8 labelled training rows (not scored by check)" in printed
    assert f"output.quantize writes best/ as onnx-int8 to {tmp_path / 'run' / 'onnx'}" \
        in printed
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("verb", ["check", "distill"])
@pytest.mark.parametrize("override, message", [
    ("student.prune.heads=1.0", "student.prune.heads: 1.0 is not a fraction to remove in "
                                "[0, 1)"),
    ("student.prune={heads: 0, ffn: 0}", "student.prune.heads, student.prune.ffn: both are 0"),
    ("student.prune.batches=0", "student.prune.batches: must be >= 1, got 0"),
    ("student.prune.heads=0.01", "student.prune.heads: 0.01 of 8 removes nothing"),
    ("output.quantize=int8", "output.quantize: 'int8' is not valid; choose one of "
                             "['onnx', 'onnx-int8']"),
])
def test_bad_values_are_one_line_and_write_nothing(ws, tmp_path, capsys, verb, override,
                                                   message):
    assert main([verb, str(_recipe(ws, tmp_path)), "--set", override]) == 2
    one_line_error(capsys, message)
    assert not (tmp_path / "run").exists()


def test_a_random_student_cannot_be_pruned(ws, tmp_path, capsys):
    assert main(["check", str(_recipe(ws, tmp_path)), "--set", "student.from_teacher=null",
                 "--set", "student.config={num_layers: 1, hidden_size: 32, num_heads: 4, "
                          "intermediate_size: 64}"]) == 2
    one_line_error(capsys, "student.prune: a student.config student starts from random "
                           "weights")


@pytest.mark.parametrize("verb", [["check", "--finetune"], ["finetune"]])
def test_finetune_refuses_a_pruned_student(ws, tmp_path, capsys, verb):
    assert main([verb[0], str(_recipe(ws, tmp_path)), *verb[1:], "--set",
                 "data.transfer.files=[]", "--set", "output.quantize=null"]) == 2
    one_line_error(capsys, "student.prune: a pruned student is recovered by distillation")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("verb", ["check", "distill"])
def test_without_the_deploy_extra_nothing_trains(ws, tmp_path, capsys, monkeypatch, verb):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    assert main([verb, str(_recipe(ws, tmp_path))]) == 2
    one_line_error(capsys, "output.quantize: onnx-int8 needs onnxruntime: "
                           "pip install 'textdistill[deploy]'")
    assert not (tmp_path / "run").exists()


@needs_deploy
def test_a_symlinked_onnx_folder_is_refused_before_training(ws, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "onnx").symlink_to(elsewhere)
    assert main(["distill", str(_recipe(ws, tmp_path))]) == 2
    one_line_error(capsys, "onnx is a symbolic link")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["onnx"]
    assert not any(elsewhere.iterdir())


@needs_deploy
def test_the_readme_chain_recipe_checks(ws, tmp_path, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in readme.split("```yaml\n")[1:] if "  prune: {" in b)
    raw = yaml.safe_load(block.split("```")[0])
    # The tiny stand-ins: a 2-block teacher, local data.
    raw["teacher"]["model"] = str(ws.teacher)
    raw["student"]["from_teacher"] = [0, 1]
    raw["data"] = {"train": str(ws.train), "eval": str(ws.dev), "max_length": 32,
                   "label_names": ["negative", "positive"]}
    raw["output"]["dir"] = str(tmp_path / "run")
    recipe = tmp_path / "readme.yaml"
    recipe.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["check", str(recipe)]) == 0
    assert "student.prune removes 4 of 8 attention heads" in capsys.readouterr().out
