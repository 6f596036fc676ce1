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
