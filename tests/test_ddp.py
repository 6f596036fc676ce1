"""Two processes on CPU (gloo): identical weights on both ranks, equal to one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(nproc: int, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_port", str(29500 + os.getpid() % 1000 + nproc), str(WORKER), str(out), "8"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_match_each_other_and_one_process(tmp_path):
    _torchrun(2, tmp_path)
    _torchrun(1, tmp_path)
    rank0 = torch.load(tmp_path / "weights-world2-rank0.pt")
    rank1 = torch.load(tmp_path / "weights-world2-rank1.pt")
    single = torch.load(tmp_path / "weights-world1-rank0.pt")
    assert rank0.keys() == single.keys() and any(k.startswith("projection.") for k in rank0)
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), f"ranks differ at {name}"
        torch.testing.assert_close(value, single[name], atol=1e-5, rtol=0, msg=name)
    two = json.loads((tmp_path / "history-world2.json").read_text())
    one = json.loads((tmp_path / "history-world1.json").read_text())
    # Metrics are gathered over all 20 eval examples on 2 ranks, as on one.
    assert two["eval"][-1]["accuracy"] == pytest.approx(one["eval"][-1]["accuracy"])
    torch.testing.assert_close(torch.tensor(two["loss"]), torch.tensor(one["loss"]),
                               atol=1e-5, rtol=1e-5)


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
