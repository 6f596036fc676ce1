"""scripts/quickstart.py's last steps on a tiny run: the ONNX int8 student and its row in
the comparison table (the whole quickstart, on MiniLM-L6, is `make quickstart`)."""

from __future__ import annotations

from importlib.util import find_spec

import pytest
import yaml
from tiny import load_script, write_sentiment_tsv, write_tiny_classifier


@pytest.mark.skipif(find_spec("onnx") is None or find_spec("onnxruntime") is None,
                    reason="needs the deploy extra (onnx, onnxruntime)")
def test_the_quantized_student_gets_a_row_in_the_table(tmp_path, capsys):
    quickstart = load_script("quickstart")
    train, dev = write_sentiment_tsv(tmp_path / "sst2", n_train=32, n_eval=16)
    run = tmp_path / "student"
    write_tiny_classifier(run / "best")
    (run / "recipe.yaml").write_text(yaml.safe_dump({
        "student": {"pretrained": str(run / "best")},
        "data": {"train": str(train), "eval": str(dev), "label_names": ["negative", "positive"],
                 "max_length": 32},
        "output": {"dir": str(run)}}), encoding="utf-8")
    eval_args = ["--data", str(dev), "--label-names", "negative", "positive"]
    timings: dict[str, float] = {}

    student = quickstart.evaluate("student", run / "best", eval_args, tmp_path / "eval.json",
                                  timings)
    int8 = quickstart.quantize_student(run, tmp_path / "onnx-int8", eval_args, timings)
    assert (tmp_path / "onnx-int8" / "model.onnx").is_file()
    assert int8["runtime"] == "onnxruntime" and int8["examples"] == student["examples"] == 16
    assert (tmp_path / "eval-onnx-int8.json").is_file()
    assert "$ textdistill quantize" in capsys.readouterr().out

    table = quickstart.comparison_table(student, student, int8)
    lines = table.splitlines()
    assert lines[-3].startswith("student, ONNX Runtime int8")
    assert lines[-1].startswith("student, ONNX Runtime int8 vs teacher")
    assert f"{int8['metrics']['accuracy'] - student['metrics']['accuracy']:+.4f}" in lines[-1]
