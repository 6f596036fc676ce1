"""Smoke run of the compression section of scripts/bench.py on tiny models.

The real section (the same-data section's MiniLM teacher and best student, the transfer
section's MPNet teacher and B student, ~10 min) is `python scripts/bench.py --section
compression`; this runs every part of it - pruning, recovery, ONNX exports, accuracy,
latency - on tiny models standing in for the other sections' saved ones.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from tiny import load_script, write_tiny_classifier

from textdistill.bench import compression, compression_report, recipes, report
from textdistill.bench.findings import pct
from textdistill.onnx_model import METHODS

pytestmark = pytest.mark.skipif(
    find_spec("onnx") is None or find_spec("onnxruntime") is None,
    reason="needs the deploy extra (onnx, onnxruntime)")
ROOT = Path(__file__).resolve().parents[1]
SENTENCES = 120
VALIDATION_SENTENCES = 24  # conftest's bench_workspace
DEV_SENTENCES = 10
ROWS = {"teacher_fp32", "student_fp32", "student_onnx_fp32", "student_onnx_int8",
        "student_onnx_int8_static", "pruned_fp32", "pruned_onnx_int8", "mpnet_teacher_fp32",
        "transfer_student_fp32", "transfer_student_onnx_int8"}


def saved_sections(runs: Path) -> dict:
    """What the same-data and transfer sections' JSON says about their models: tiny
    ones, the student with the run directory (best/ and recipe.yaml) of a bench row."""
    budget = recipes.Budget(smoke=True, sst2_dir=recipes.find_sst2())
    teacher = write_tiny_classifier(runs / "teacher" / "best", num_layers=4)
    student_run = runs / "B-T2-hard0.5-noaug-s42"
    write_tiny_classifier(student_run / "best", num_layers=3, seed=1)
    # As a real row, the student evaluates on a dev split, not on validation.
    dev = runs / "dev.tsv"
    dev.write_text("sentence\tlabel\n" + "".join(f"dev sentence {i}\t{i % 2}\n"
                                                   for i in range(DEV_SENTENCES)))
    recipe = recipes.kd_recipe(budget, str(teacher), [0, 2, 3], recipes.logit_kd(2.0, 0.5), 0,
                               42, student_run, runs / "teacher_cache", eval_file=str(dev))
    (student_run / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    write_tiny_classifier(runs / "transfer-teacher" / "best", num_layers=6, seed=2)
    write_tiny_classifier(runs / "transfer-B" / "best", num_layers=3, seed=3)
    return {"teacher": {"run_dir": str(runs / "teacher")},
            "students": {"B": {"run_dirs": [str(student_run)]}},
            "targets": {"best_student": "B"},
            "transfer": {"teacher": {"run_dir": str(runs / "transfer-teacher")},
                         "rows": {"B": {"minilm3": {"run_dirs": [str(runs / "transfer-B")]}}}}}


def _made(where: Path) -> dict[Path, int]:
    """Modification times of every model file the section made, and of the notes."""
    files = [*where.glob("*/model*"), *where.glob("*/best/model*"), *where.glob("*/results.json"),
             where / compression.NOTES_FILE]
    return {path: path.stat().st_mtime_ns for path in files}


@pytest.fixture(scope="module")
def smoke(bench_workspace):
    """(runs, the section's folder, the JSON it was given, its ``compression`` object)."""
    runs = bench_workspace / "runs"
    given = saved_sections(runs)
    budget = recipes.Budget(smoke=True, sst2_dir=recipes.find_sst2())
    where = compression.folder(runs, budget)
    result = compression.run_section(where, compression.sources(given), budget)
    return runs, where, given, json.loads(json.dumps(result))  # as results.json holds it


def test_every_row_has_its_figures(smoke):
    _, where, _, result = smoke
    rows = result["rows"]
    assert set(rows) == ROWS
    for name, row in rows.items():
        assert 0.0 <= row["accuracy"] <= 1.0, name
        for key in ("size_mb", "latency_ms_b1", "latency_ms_b32", "speedup_vs_teacher_b32"):
            assert isinstance(row[key], float) and row[key] > 0, (name, key)
    assert rows["teacher_fp32"]["speedup_vs_teacher_b32"] == 1.0
    assert rows["student_onnx_int8"]["runtime"] == "onnxruntime"
    assert rows["student_onnx_int8"]["precision"] == "int8"
    assert rows["student_onnx_int8_static"]["precision"] == "int8"
    assert rows["student_fp32"]["runtime"] == "pytorch"
    # The float32 graph computes what the PyTorch student computes.
    assert rows["student_onnx_fp32"]["accuracy"] == rows["student_fp32"]["accuracy"]
    assert rows["transfer_student_onnx_int8"]["own_teacher"] == "mpnet_teacher_fp32"
    assert rows["pruned_onnx_int8"]["model_dir"] == str(where / "pruned_onnx_int8")
    assert set(result["goals"]) == set(compression.BARS)
    assert all(isinstance(goal["met"], bool) for goal in result["goals"].values())
    assert result["setup"]["eval_examples"] == 24 and result["setup"]["smoke"]
    assert set(result["cost_s"]) == set(result["setup"]["expected_minutes"])


def test_every_row_is_scored_on_validation_not_on_the_students_dev_split(smoke):
    _, where, _, result = smoke
    assert result["setup"]["eval_examples"] == VALIDATION_SENTENCES
    notes = json.loads((where / compression.NOTES_FILE).read_text())
    assert {entry["examples"] for entry in notes["accuracy"].values()} == {VALIDATION_SENTENCES}


def test_the_static_row_is_a_calibrated_qdq_graph_of_the_float_one(smoke):
    import onnx
    import torch

    from textdistill.build import load_tokenizer
    from textdistill.onnx_model import OnnxClassifier

    _, where, _, _ = smoke
    static, float_graph = where / "student_onnx_int8_static", where / "student_onnx_fp32"
    ops = {node.op_type for node in onnx.load(str(static / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    card = (static / "README.md").read_text()
    assert "static quantization, in QDQ format, of the float32" in card
    assert METHODS["onnx"] not in card  # not the float32 directory's card
    tokenizer = load_tokenizer(static)
    batch = tokenizer(["a good film", "a bad and dull film that goes on"], padding=True,
                      return_tensors="pt")
    logits = {d: OnnxClassifier(d, threads=1)(**batch).logits for d in (static, float_graph)}
    # The tiny random model's logits are small (under 0.01) and barely depend on the input,
    # so the bound is relative to them and checks int8 precision, not accuracy: int8 moved
    # them by 1.6% of the largest logit (measured), within 5%.
    largest = float(logits[float_graph].abs().max())
    torch.testing.assert_close(logits[static], logits[float_graph], atol=0.05 * largest,
                               rtol=0)


def test_static_quantization_logs_no_plea_for_pre_processing(smoke, tmp_path, caplog):
    from textdistill.bench import static_int8

    _, where, given, _ = smoke
    spec = str(Path(given["students"]["B"]["run_dirs"][0]) / "recipe.yaml")
    with caplog.at_level("WARNING"):
        static_int8.quantize_static_qdq(where / "student_onnx_fp32", tmp_path / "static", spec)
    assert (tmp_path / "static" / "model.onnx").is_file()
    assert "pre-processing" not in caplog.text


def test_the_pruned_row_is_the_pruned_student_after_recovery(smoke):
    _, where, _, result = smoke
    pruning = result["pruning"]
    # write_tiny_classifier: 3 blocks of 2 heads, 64 feed-forward neurons each.
    assert pruning["heads_total"] == 6 and pruning["heads_zeroed"] == 3
    assert pruning["intermediate_size"] == {"before": 64, "after": 32}
    recovered = json.loads((where / "recovered" / "best" / "config.json").read_text())
    assert recovered["intermediate_size"] == 32
    recipe = yaml.safe_load((where / "recovered" / "recipe.yaml").read_text())
    assert recipe["teacher"]["model"] == result["setup"]["student_run"] + "/best"
    assert recipe["student"]["pretrained"] == str(where / "pruned-h0.5-f0.5")
    assert result["rows"]["pruned_fp32"]["model_dir"] == str(where / "recovered" / "best")


def test_the_section_shows_the_numbers_of_the_json(smoke, tmp_path):
    result = smoke[-1]
    page = "\n".join(compression_report.section(result))
    assert "Smoke run" in page
    for name, row in result["rows"].items():
        assert (f"| {compression_report.ROW_LABELS[name]} | {row['params'] / 1e6:.1f}M | "
                f"{row['size_mb']:.1f} | {pct(row['accuracy'])} |") in page
    goal = result["goals"]["int8_accuracy_loss_pts"]
    assert f"| <= 0.5 pt | {goal['measured']:+.2f} pt |" in page
    assert "3 of 6 heads zeroed" in page and "intermediate size 64 -> 32" in page
    assert compression_report.static_against_dynamic(result)[-1] in page
    assert compression_report.plot(result, tmp_path) == "compression.png"
    assert (tmp_path / "compression.png").stat().st_size > 0


def test_the_page_says_how_static_int8_compares_with_dynamic_either_way():
    def compared(static_b1: float, static_b32: float, static_accuracy: float) -> str:
        rows = {"student_onnx_int8": {"latency_ms_b1": 2.0, "latency_ms_b32": 50.0,
                                      "accuracy": 0.8624, "size_mb": 17.5},
                "student_onnx_int8_static": {"latency_ms_b1": static_b1,
                                             "latency_ms_b32": static_b32,
                                             "accuracy": static_accuracy, "size_mb": 53.3}}
        setup = {"static_int8": {"activations": "QUInt8", "method": "Percentile",
                                 "sentences": 256, "ops": ["MatMul", "Gemm"]}}
        lines = compression_report.static_against_dynamic({"rows": rows, "setup": setup})
        return "\n".join(lines)

    slower = compared(2.5, 55.0, 0.8624)
    assert ("calibration on 256 training sentences, MatMul/Gemm only) against the dynamic int8 "
            "row: 1.25x slower at batch 1, 1.10x slower at batch 32, +0.00 pt of accuracy "
            "(86.24% against 86.24%), 53.3 MB against 17.5 MB.") in slower
    assert "offers dynamic int8 only: static int8 is not faster here" in slower
    faster = compared(1.6, 40.0, 0.8601)
    assert "1.25x faster at batch 1, 1.25x faster at batch 32, -0.23 pt" in faster
    assert "though static int8 is faster here at both batch sizes" in faster
    mixed = compared(1.6, 55.0, 0.8624)
    assert "1.25x faster at batch 1, 1.10x slower at batch 32" in mixed
    assert "is not faster here at every batch size" in mixed
    # A section run before the static row existed says nothing about it.
    assert compression_report.static_against_dynamic(
        {"rows": {"student_onnx_int8": {}}, "setup": {}}) == []


def test_a_second_run_makes_nothing_again(smoke, bench_workspace):
    runs, where, given, _ = smoke
    before = _made(where)
    budget = recipes.Budget(smoke=True, sst2_dir=recipes.find_sst2())
    again = compression.run_section(where, compression.sources(given), budget)
    # 5 ONNX graphs, the pruned and the recovered weights, the recovery's results, notes.
    assert _made(where) == before and len(before) == 9
    assert set(again["rows"]) == ROWS


def test_bench_runs_the_section_alone_and_keeps_the_other_sections(smoke, tmp_path):
    """`--section compression` reads its models from results.json and writes only its own
    object (the same-data section's stay; here the committed page's JSON, pointed at the
    tiny models)."""
    runs, _, given, _ = smoke
    docs = tmp_path / "docs"
    (docs / "benchmarks").mkdir(parents=True)
    result = json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text())
    result["teacher"]["run_dir"] = given["teacher"]["run_dir"]
    best = result["targets"]["best_student"] = "B"
    result["students"][best]["run_dirs"] = given["students"]["B"]["run_dirs"]
    result.pop("transfer", None)
    result.pop("compression", None)
    saved = docs / "benchmarks" / "results.json"
    saved.write_text(json.dumps(result))
    argv = ["--smoke", "--section", "compression", "--runs", str(runs), "--docs", str(docs)]
    assert load_script("bench").main(argv) == 0
    written = json.loads(saved.read_text())
    assert {k: v for k, v in written.items() if k != "compression"} == result
    assert "mpnet_teacher_fp32" not in written["compression"]["rows"]
    page = (docs / "benchmarks.md").read_text()
    assert page == report.markdown(written) and compression_report.TITLE in page
    assert (docs / "benchmarks" / "compression.png").is_file()


def test_without_the_same_data_section_it_says_what_to_run(tmp_path, capsys):
    docs = tmp_path / "docs"
    argv = ["--smoke", "--section", "compression", "--runs", str(tmp_path / "runs"),
            "--docs", str(docs)]
    with pytest.raises(SystemExit, match="run `python scripts/bench.py --section same-data`"):
        load_script("bench").main(argv)
    assert not (docs / "benchmarks" / "results.json").exists()
    with pytest.raises(ValueError, match="no model there"):
        compression.sources({"teacher": {"run_dir": str(tmp_path)},
                             "students": {"B": {"run_dirs": [str(tmp_path)]}},
                             "targets": {"best_student": "B"}})


def test_without_the_deploy_extra_nothing_runs(tmp_path):
    """Checked first: `all` would otherwise fail after hours of the other sections."""
    from textdistill.errors import MissingExtraError

    bench = load_script("bench")

    def missing(purpose: str) -> None:
        raise MissingExtraError(f"{purpose} needs onnx: pip install 'textdistill[deploy]'")

    bench.require_deploy_extra = missing
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match=r"the compression section needs onnx: pip install"):
        bench.main(["--smoke", "--runs", str(runs), "--docs", str(tmp_path / "docs")])
    assert not runs.exists()


def test_without_a_compression_object_the_section_is_not_yet_measured():
    assert "Not yet measured" in "\n".join(compression_report.section(None))
    committed = json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text())
    if "compression" not in committed:
        page = report.markdown(committed, "benchmark-studies.md")
        assert f"{compression_report.TITLE}\n\nNot yet measured" in page


def test_goals_check_each_bar_in_its_direction():
    def row(accuracy: float, b1: float, b32: float) -> dict:
        return {"accuracy": accuracy, "latency_ms_b1": b1, "latency_ms_b32": b32}

    rows = {"teacher_fp32": row(0.90, 20.0, 400.0), "student_fp32": row(0.88, 10.0, 200.0),
            "student_onnx_int8": row(0.876, 4.0, 75.0), "pruned_fp32": row(0.86, 8.0, 150.0)}
    goals = compression.goals(rows)
    assert goals["int8_speedup_b32_vs_student"]["measured"] == pytest.approx(200 / 75)
    assert goals["int8_accuracy_loss_pts"]["measured"] == pytest.approx(0.4)
    assert {key: goal["met"] for key, goal in goals.items()} == {
        "int8_speedup_b32_vs_student": True, "int8_speedup_b1_vs_student": True,
        "int8_accuracy_loss_pts": True, "int8_speedup_b32_vs_teacher": True,
        "pruned_accuracy_loss_pts": False, "pruned_speedup_b32_vs_student": False}


def test_the_pareto_front_keeps_the_rows_nothing_beats():
    rows = {"slow-best": {"latency_ms_b32": 400.0, "accuracy": 0.90},
            "slow-worse": {"latency_ms_b32": 300.0, "accuracy": 0.85},
            "mid": {"latency_ms_b32": 200.0, "accuracy": 0.88},
            "fast": {"latency_ms_b32": 80.0, "accuracy": 0.87},
            "fast-tie": {"latency_ms_b32": 80.0, "accuracy": 0.86}}
    assert compression_report.pareto_front(rows) == ["fast", "mid", "slow-best"]


def test_the_full_section_is_planned_in_minutes():
    expected = compression.expected_minutes(with_transfer=True)
    assert set(expected) == set(compression_report.PARTS)
    assert 5 <= sum(expected.values()) <= 15
    assert sum(compression.expected_minutes(with_transfer=False).values()) \
        < sum(expected.values())


def test_a_retrained_student_is_pruned_recovered_and_exported_again(smoke):
    """Last in the module: it replaces the student the tests above measured."""
    _, where, given, _ = smoke
    before = _made(where)
    write_tiny_classifier(Path(given["students"]["B"]["run_dirs"][0]) / "best", num_layers=3,
                          seed=7)
    budget = recipes.Budget(smoke=True, sst2_dir=recipes.find_sst2())
    compression.run_section(where, compression.sources(given), budget)
    after = _made(where)
    remade = {path.relative_to(where).parts[0] for path in after if after[path] != before[path]}
    # The teacher's and the transfer models' are kept: made from unchanged weights.
    assert remade == {"pruned-h0.5-f0.5", "recovered", "student_onnx_fp32", "student_onnx_int8",
                      "student_onnx_int8_static", "pruned_onnx_int8", compression.NOTES_FILE}
