"""Resume after faults on tiny models: Ctrl-C, a second train() on one Distiller, SIGKILL
mid-save, and checkpoints that carry a crafted pickle."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_bert, tiny_dataset

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig
from textdistill.checkpoints import LOOP_STATE, TENSORS
from textdistill.errors import TrainingInterrupted
from textdistill.state import StepCallback

TESTS = Path(__file__).resolve().parent


def make_distiller(run_dir: Path, student_seed: int = 7) -> Distiller:
    """8 steps over 20 examples at batch 8 (3 steps per epoch), checkpoints every 2."""
    distill = DistillationConfig(
        temperature=2.0, hard_weight=0.5,
        matches=[Match("hidden", 1, 2, projection="linear+tanh"), Match("attention", 2, 4)])
    cfg = TrainingConfig(output_dir=str(run_dir), batch_size=8, lr=1e-3, warmup=2,
                         max_steps=8, save_steps=2, eval_steps=4, logging_steps=2,
                         report_to=[], progress_bar=False, save_total_limit=None)
    teacher = tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3)
    return Distiller(teacher, tiny_bert(seed=student_seed), distill, cfg)


def data():
    return tiny_dataset(20, seed=2), tiny_dataset(12, seed=3)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every resumed one must equal."""
    distiller = make_distiller(tmp_path_factory.mktemp("straight"))
    distiller.train(*data())
    return distiller


def assert_same_weights(expected: Distiller, got: Distiller) -> None:
    ref = expected.student.state_dict()
    for name, value in got.student.state_dict().items():
        assert torch.equal(ref[name], value), name
    for (name, a), b in zip(expected.projections.state_dict().items(),
                            got.projections.state_dict().values()):
        assert torch.equal(a, b), name


class _CtrlCAt(StepCallback):
    """A real SIGINT to this process during step ``step``'s bookkeeping, as Ctrl-C."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, distiller, state):
        if state.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)
        return False


class _StopAt(StepCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, distiller, state):
        return state.step >= self.step


def test_ctrl_c_checkpoints_its_step_and_a_second_train_resumes_bit_exact(tmp_path, straight):
    distiller = make_distiller(tmp_path)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"^interrupted at step 3; checkpoint saved: "
                                                  r".*checkpoint-3; resume with train\(resume=True\)$"):
        distiller.train(*data(), callbacks=[_CtrlCAt(3)])
    assert signal.getsignal(signal.SIGINT) is handler
    assert [p.name for p in distiller.checkpoints()] == ["checkpoint-2", "checkpoint-3"]
    # The notebook case: train() again on the same Distiller (and Accelerator).
    history = distiller.train(*data(), resume=True)
    assert distiller.state.step == 8
    assert len(distiller.accelerator._optimizers) == 1
    assert_same_weights(straight, distiller)
    assert [r["step"] for r in history.eval] == [4, 8]


def test_a_second_fresh_train_starts_at_step_zero(tmp_path):
    distiller = make_distiller(tmp_path)
    distiller.train(*data(), callbacks=[_StopAt(3)])
    history = distiller.train(*data())
    assert distiller.state.step == 8
    assert len(distiller.accelerator._optimizers) == 1
    assert [r["step"] for r in history.train] == [2, 4, 6, 8]
    assert [r["step"] for r in history.eval] == [4, 8]


def _payload(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):  # unpickling calls open(marker, "w"): creates the file
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload(), protocol=2)


def test_resume_never_unpickles_a_crafted_checkpoint_file(tmp_path, straight):
    first = make_distiller(tmp_path)
    first.train(*data(), callbacks=[_StopAt(4)])
    checkpoint = first.checkpoints()[-1]
    assert {LOOP_STATE, TENSORS} <= {p.name for p in checkpoint.iterdir()}
    assert not list(checkpoint.glob("custom_checkpoint_*"))
    marker = tmp_path / "payload-ran"
    # Where Accelerate's register_for_checkpointing would look (weights_only=False).
    for index in range(3):
        (checkpoint / f"custom_checkpoint_{index}.pkl").write_bytes(_payload(marker))
    resumed = make_distiller(tmp_path, student_seed=99)
    resumed.train(*data(), resume=True)
    assert not marker.exists()
    assert_same_weights(straight, resumed)

    # Accelerate's own optimizer file is loaded with weights_only=True: refused, not run.
    (checkpoint / "optimizer.bin").write_bytes(_payload(marker))
    with pytest.raises(pickle.UnpicklingError):
        make_distiller(tmp_path).train(*data(), resume=str(checkpoint))
    assert not marker.exists()


def test_checkpoints_of_older_versions_still_resume_without_full_unpickling(tmp_path, straight):
    first = make_distiller(tmp_path)
    first.train(*data(), callbacks=[_StopAt(4)])
    checkpoint = first.checkpoints()[-1]
    # Rewrite it as register_for_checkpointing wrote it: scheduler, train state (history
    # as a JSON string), projections.
    state = json.loads((checkpoint / LOOP_STATE).read_text())
    state["train"]["history"] = json.dumps(state["train"]["history"])
    from safetensors.torch import load_file

    for index, obj in enumerate((state["scheduler"], state["train"],
                                 load_file(checkpoint / TENSORS))):
        torch.save(obj, checkpoint / f"custom_checkpoint_{index}.pkl")
    (checkpoint / LOOP_STATE).unlink()
    (checkpoint / TENSORS).unlink()
    resumed = make_distiller(tmp_path, student_seed=99)
    resumed.train(*data(), resume=True)
    assert_same_weights(straight, resumed)


_KILLED_MID_SAVE = f"""
import os, signal, sys
sys.path[:0] = [{str(TESTS)!r}]
import textdistill.checkpoints as checkpoints
from test_resume_safety import data, make_distiller

real_save_file = checkpoints.save_file

def save_file(tensors, path):  # Accelerate's files of step 6 are written; then SIGKILL
    if "checkpoint-6" in path:
        os.kill(os.getpid(), signal.SIGKILL)
    real_save_file(tensors, path)

checkpoints.save_file = save_file
make_distiller(__import__("pathlib").Path(sys.argv[1])).train(*data())
"""


def test_sigkill_during_a_save_resumes_from_the_last_complete_checkpoint(tmp_path, straight):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _KILLED_MID_SAVE, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6.tmp"]
    resumed = make_distiller(tmp_path, student_seed=99)
    resumed.train(*data(), resume=True)
    assert resumed.state.step == 8
    assert_same_weights(straight, resumed)
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"]
