"""The benchmark script (scripts/bench.py): a smoke run on a tiny model, and its checks.

The real benchmark (MiniLM-L6, 20,000 SST-2 sentences, ~1.5 h) is `make bench`; this
runs every row, the speed script and the report for a few steps on 200 sentences so
that the script cannot rot.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tiny import write_tiny_classifier

from textdistill.data import default_sst2_dir

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is created.
    sys.modules["bench"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(default_sst2_dir() is None, reason="needs the local SST-2 copy")
def test_smoke_run_writes_the_page_and_resumes(tmp_path):
    bench = _load_script()
    base = write_tiny_classifier(tmp_path / "base", num_layers=6)
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    argv = ["--smoke", "--base-model", str(base), "--runs", str(runs), "--docs", str(docs)]
    assert bench.main(argv) == 0

    result = json.loads((docs / "benchmarks" / "results.json").read_text())
    teacher = result["teacher"]
    assert 0.0 <= teacher["accuracy"] <= 1.0
    assert teacher["params"] > 0 and teacher["latency_ms_b1"] > 0 and teacher["latency_ms_b32"] > 0
    assert sorted(result["students"]) == list("ABCDE")
    for key, student in result["students"].items():
        for name in ("accuracy_mean", "accuracy_std", "retention_pct", "params",
                     "latency_ms_b1", "latency_ms_b32"):
            assert isinstance(student[name], float | int), (key, name)
        assert 0.0 <= student["accuracy_mean"] <= 1.0
        # Fidelity: one agreement with the teacher per seed, a share of the eval set.
        assert len(student["teacher_agreements"]) == len(student["seeds"])
        assert all(0.0 <= a <= 1.0 for a in student["teacher_agreements"])
    assert result["students"]["E"]["params"] < result["students"]["C"]["params"] \
        < teacher["params"]
    assert {"engine_vs_hand_ratio", "epoch_speedup", "peak_rss_mb"} <= set(result["speed"])
    assert result["speed"]["epoch_speedup"] > 0
    assert result["device"] and result["versions"]["torch"] == torch.__version__
    # Both A inits, every B grid point and every C variant ran; D and E follow C's winner.
    assert len(result["variants"]["A"]) == 2
    assert [v["variant"].rsplit("-", 1)[0] for v in result["variants"]["B"]] == \
        [f"T{t:g}-hard{h:g}" for t, h, _ in bench.B_GRID]
    assert len(result["variants"]["C"]) == len(bench.C_VARIANTS) == 2
    # A distillation row marked augN trains on the subset plus N copies of each sentence.
    for variant in result["variants"]["B"]:
        row = json.loads(Path(variant["run_dirs"][0], "results.json").read_text())
        copies = int(variant["variant"].rsplit("aug", 1)[1]) if "-aug" in variant["variant"] \
            else 0
        assert row["train_examples"] == (1 + copies) * result["setup"]["train_subset"]

    page = (docs / "benchmarks.md").read_text()
    assert "not yet measured" in page and "make bench" in page
    assert f"{100 * teacher['accuracy']:.2f}" in page
    assert (docs / "benchmarks" / "accuracy.png").stat().st_size > 0
    assert (docs / "benchmarks" / "tradeoff.png").stat().st_size > 0

    # A second run trains nothing: every finished row (and the speed run) is reused.
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    engine_stamp = (docs / "benchmarks" / "engine.json").stat().st_mtime_ns
    assert bench.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")} == stamps
    assert (docs / "benchmarks" / "engine.json").stat().st_mtime_ns == engine_stamp

    # The grid and the seeds share one teacher-logit cache: one file per transfer set
    # (aug3, noaug), however many rows read it.
    assert len(list((runs / "teacher_cache").glob("logits-*.safetensors"))) == 2

    # --report rewrites the page from saved rows, keeping the measured latency.
    before = json.loads((docs / "benchmarks" / "results.json").read_text())
    assert bench.main(argv + ["--report"]) == 0
    rewritten = json.loads((docs / "benchmarks" / "results.json").read_text())
    assert rewritten["latency"] == before["latency"]

    # A row trained from another teacher (the same path, retrained) is stale.
    planner = bench.Bench(argparse.Namespace(runs=str(runs), docs=str(docs), smoke=True,
                                             base_model=str(base)))
    rows = {row.key: row for row in planner.rows()}
    kd_row = next(row for key, row in rows.items() if key.startswith("B-"))
    assert planner.uses_teacher(kd_row) and planner.result(kd_row) is not None
    stamp = runs / kd_row.key / bench.TEACHER_STAMP
    stamp.write_text(json.dumps({"teacher_digest": "another-teacher"}))
    assert planner.result(kd_row) is None
    pretrained = next(row for key, row in rows.items() if key.startswith("A-pretrained"))
    assert not planner.uses_teacher(pretrained) and planner.result(pretrained) is not None

    # Agreement compares the final weights' predictions on the eval set: the teacher
    # agrees with itself on every sentence, and a row's saved agreement is its own.
    teacher_result = json.loads((runs / "teacher" / "results.json").read_text())
    teacher_predictions = planner.validation_predictions("teacher", teacher_result)
    assert len(teacher_predictions) == rewritten["setup"]["eval_examples"] == 200
    teacher_row = bench.Row("teacher", "teacher", "", "finetune", {}, 42)
    assert planner.agreement(teacher_row, teacher_result, teacher_result) == 1.0
    (runs / "teacher" / bench.AGREEMENT_FILE).unlink()

    # The library's distill defaults are chosen from this benchmark, so changing them must
    # not make saved rows stale: KD rows state every weight, and a fine-tuning row's
    # (unused) distill section is not compared.
    assert all(set(bench.KD_PINNED) <= set(row.recipe["distill"])
               for row in rows.values() if row.mode == "distill")
    saved_recipe = runs / pretrained.key / "recipe.yaml"
    text = saved_recipe.read_text()
    spec = yaml.safe_load(text)
    spec["distill"]["hard_weight"] = 0.123
    saved_recipe.write_text(yaml.safe_dump(spec))
    assert planner.result(pretrained) is not None
    saved_recipe.write_text(text)
    kd_recipe = runs / kd_row.key / "recipe.yaml"
    spec = yaml.safe_load(kd_recipe.read_text())
    spec["distill"]["hard_weight"] = 0.123
    kd_recipe.write_text(yaml.safe_dump(spec))
    stamp.write_text(json.dumps({"teacher_digest": planner.teacher_digest()}))
    assert planner.result(kd_row) is None


def test_targets_are_checked_against_the_numbers():
    bench = _load_script()

    def student(acc, lat=100.0, seeds=(42, 43, 44)):
        return {"accuracy_mean": acc, "retention_pct": 100 * acc / 0.90,
                "latency_ms_b32": lat, "seeds": list(seeds)}

    result = {"teacher": {"accuracy": 0.90, "latency_ms_b32": 200.0},
              "students": {"A": student(0.875), "B": student(0.80, seeds=(42,)),
                           "C": student(0.888)}}
    met = bench.targets(result)
    assert met["best_student"] == "C"
    assert met["retention_ok"] and met["gain_ok"] and met["speedup_ok"]
    result["students"]["C"] = student(0.880, lat=150.0)
    missed = bench.targets(result)
    assert not missed["retention_ok"] and not missed["gain_ok"] and not missed["speedup_ok"]
    assert missed["gain_over_A_pts"] == pytest.approx(0.5)


def _load_studies():
    _load_script()  # scripts/bench_studies.py imports it as "bench"
    spec = importlib.util.spec_from_file_location("bench_studies",
                                                  ROOT / "scripts" / "bench_studies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_studies"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(default_sst2_dir() is None, reason="needs the local SST-2 copy")
def test_studies_smoke_run(tmp_path):
    studies = _load_studies()
    bench = studies.bench
    base = write_tiny_classifier(tmp_path / "base", num_layers=6)
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    argv = ["--smoke", "--base-model", str(base), "--runs", str(runs), "--docs", str(docs)]
    with pytest.raises(SystemExit):  # the benchmark's teacher comes first
        studies.main(argv)
    bench.Bench(argparse.Namespace(runs=str(runs), docs=str(docs), smoke=True,
                                   base_model=str(base), epochs=None)).run_teacher()
    assert studies.main(argv) == 0

    result = json.loads((docs / "benchmarks" / "studies.json").read_text())
    assert set(result["arms"]) == {"room/labels", "room/kd", "heldout/labels", "heldout/kd"}
    for arm in result["arms"].values():
        assert len(arm["accuracies"]) == len(studies.SEEDS)
        assert all(0.0 <= a <= 1.0 for a in arm["accuracies"])
    assert result["arms"]["room/kd"]["layers"] == bench.TWO_LAYERS
    assert result["arms"]["heldout/kd"]["layers"] == bench.THREE_LAYERS
    gain = result["arms"]["room/kd"]["accuracy_mean"] - result["arms"]["room/labels"]["accuracy_mean"]
    assert result["room_kd_gain_pts"] == pytest.approx(100 * gain)
    for teacher in result["teachers"].values():
        stats = teacher["on_student_subset"]
        assert stats["examples"] == 200
        assert 0.0 <= stats["gold_agreement"] <= 1.0 and 0.5 <= stats["mean_confidence"] <= 1.0

    # The held-out teacher learns from the training sentences outside the students' subset.
    held = studies.HeldOutBench(argparse.Namespace(runs=str(runs), docs=str(docs), smoke=True,
                                                   base_model=str(base), epochs=None))
    complement = held.complement_file().read_text().splitlines()[1:]
    assert len(complement) == bench.SST2_TRAIN_SIZE - 200
    subset_rows = json.loads((runs / "heldout-A-teacher-s42" / "results.json").read_text())
    assert subset_rows["train_examples"] == 200
    planner = bench.Bench(argparse.Namespace(runs=str(runs), docs=str(docs), smoke=True,
                                             base_model=str(base), epochs=None))
    from textdistill.data.loading import DataConfig, load_raw_splits
    subset = load_raw_splits(DataConfig(**planner.data_section()))["train"]
    whole = load_raw_splits(DataConfig(**{**planner.data_section(),
                                          "max_train_samples": None}))["train"]
    def pairs(split):
        return {f"{s}\t{y}" for s, y in zip(split["sentence"], split["label"])}
    assert pairs(subset) | set(complement) == pairs(whole)
    assert len(subset) + len(complement) == len(whole)
    assert (docs / "benchmark-studies.md").read_text().count("held-out teacher") >= 2

    # A second run trains nothing, and --report rewrites the page from saved rows.
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    assert studies.main(argv) == 0
    assert studies.main(argv + ["--report"]) == 0
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/results.json")} == stamps
