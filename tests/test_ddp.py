"""Two processes on CPU (gloo): identical weights on both ranks, equal to one process."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(nproc: int, out: Path, mode: str = "distiller") -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_port", str(29500 + os.getpid() % 1000 + nproc), str(WORKER), str(out), "8",
           mode]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _assert_ranks_agree_and_match_one_process(out: Path) -> None:
    """The student's and the projections' weights: equal on both ranks of the 2-process run,
    and to 1e-5 to the 1-process run's."""
    rank0 = torch.load(out / "weights-world2-rank0.pt")
    rank1 = torch.load(out / "weights-world2-rank1.pt")
    single = torch.load(out / "weights-world1-rank0.pt")
    assert rank0.keys() == single.keys() and any(k.startswith("projection.") for k in rank0)
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), f"ranks differ at {name}"
        torch.testing.assert_close(value, single[name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_match_each_other_and_one_process(tmp_path):
    _torchrun(2, tmp_path)
    _torchrun(1, tmp_path)
    _assert_ranks_agree_and_match_one_process(tmp_path)
    two = json.loads((tmp_path / "history-world2.json").read_text())
    one = json.loads((tmp_path / "history-world1.json").read_text())
    # Metrics are gathered over all 20 eval examples on 2 ranks, as on one.
    assert two["eval"][-1]["accuracy"] == pytest.approx(one["eval"][-1]["accuracy"])
    torch.testing.assert_close(torch.tensor(two["loss"]), torch.tensor(one["loss"]),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_distillation_trainer_two_processes_match_each_other_and_one_process(tmp_path):
    """DistillationTrainer under torchrun. The projection (hidden 32 -> 48) sits outside the
    DDP-wrapped student, so only the trainer's own averaging keeps it equal on both ranks.
    Accelerate's seeded sampler hands each rank its slice of the 1-process run's batches,
    so the weights also equal that run's."""
    _torchrun(2, tmp_path, "trainer")
    _torchrun(1, tmp_path, "trainer")
    _assert_ranks_agree_and_match_one_process(tmp_path)
    reports = {name: json.loads((tmp_path / f"trainer-{name}.json").read_text())
               for name in ("world2-rank0", "world2-rank1", "world1-rank0")}
    for name, report in reports.items():
        assert report["teacher_on_device"] and not report["teacher_training"], name
        assert report["teacher_frozen"] and report["teacher_unchanged"], name
        assert report["teacher_is_the_given_model"] and not report["teacher_is_ddp"], name
    assert reports["world2-rank0"]["student_is_ddp"] and reports["world2-rank1"]["student_is_ddp"]
    components = ("loss", "loss/kd", "loss/hard", "loss/hidden_s2_t4/hidden_mse",
                  "loss/attention_s1_t2/attention_mse")
    two, one = reports["world2-rank0"]["logs"], reports["world1-rank0"]["logs"]
    assert len(two) == len(one) == 4
    for key in components:
        values = [entry[key] for entry in two]
        assert all(math.isfinite(value) for value in values), (key, values)
        # Reduced over the ranks, each component is the 1-process run's.
        torch.testing.assert_close(torch.tensor(values), torch.tensor([e[key] for e in one]),
                                   atol=1e-5, rtol=1e-5, msg=key)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_cli_distill_under_torchrun_two_processes(tmp_path):
    """`torchrun -m textdistill.cli distill` with two CPU processes: one run directory,
    written once, evaluated on every example, with the teacher's logits cached."""
    import yaml
    from tiny import write_sentiment_tsv, write_tiny_classifier

    train, dev = write_sentiment_tsv(tmp_path / "sst", n_train=64, n_eval=20)
    teacher = write_tiny_classifier(tmp_path / "teacher", seed=1)
    run = tmp_path / "run"
    recipe = tmp_path / "distill.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": {"model": str(teacher)},
        "student": {"from_teacher": [1]},
        "data": {"train": str(train), "eval": str(dev),
                 "label_names": ["negative", "positive"], "max_length": 32,
                 "cache_dir": str(tmp_path / "hf-cache")},
        "distill": {"temperature": 2.0, "hard_weight": 0.5},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "logging_steps": 2,
                  "report_to": [], "progress_bar": False, "teacher_cache": True},
        "output": {"dir": str(run)}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29700 + os.getpid() % 1000), "-m", "textdistill.cli",
           "distill", str(recipe)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    # 64 examples, 8 per process and 2 processes: 4 steps an epoch.
    assert results["final_step"] == 8
    assert results["eval_examples"] == 20
    assert 0.0 <= results["final_eval"]["accuracy"] <= 1.0
    assert (run / "best" / "model.safetensors").is_file()
    assert len(list((run / "teacher_cache").glob("logits-*.safetensors"))) == 1
    # Only the main process prints: one summary, one set of data-preparation bars.
    assert result.stdout.count("distill: 64 training and 20 eval examples") == 1
    assert result.stdout.count("best model:") == 1
    # (datasets may skip the bar altogether when it reuses a cached map)
    assert result.stderr.count("Tokenizing train: 100%") <= 1
