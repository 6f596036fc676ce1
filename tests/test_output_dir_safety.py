"""The CLI never loses a run and never lets two runs share output.dir: the lock, resuming
with a changed recipe, output.overwrite keeping the old run until the new one has a
checkpoint, and Ctrl-C checkpointing its step. Tiny models, tiny data."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import types
from pathlib import Path

import pytest
import yaml
from tiny import one_line_error, write_sentiment_tsv, write_tiny_classifier

from textdistill.cli import main
from textdistill.distiller import Distiller
from textdistill.run_dir import RunDir

TRAIN = {"max_steps": 4, "batch_size": 16, "lr": 3e-3, "warmup": 0.0, "logging_steps": 1,
         "save_steps": 2, "eval_steps": 2, "report_to": [], "progress_bar": False,
         "save_total_limit": None}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A tiny base model, sentiment tsv files and one finished 4-step finetune run."""
    root = tmp_path_factory.mktemp("safety")
    train, dev = write_sentiment_tsv(root / "sst", n_train=64, n_eval=16)
    ws = types.SimpleNamespace(root=root, base=write_tiny_classifier(root / "base", seed=0),
                               train=train, dev=dev)
    ws.done = root / "done"
    assert main(["finetune", recipe(ws, ws.done)]) == 0
    return ws


def recipe(ws, out: Path, **train) -> str:
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump({
        "student": {"pretrained": str(ws.base)},
        "data": {"train": str(ws.train), "eval": str(ws.dev), "max_length": 32,
                 "label_names": ["negative", "positive"], "cache_dir": str(ws.root / "hf")},
        "train": {**TRAIN, **train}, "output": {"dir": str(out)}}), encoding="utf-8")
    return str(path)


def copy_of_done(ws, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(ws.done, out)
    return out


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with its content hash (and every folder)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(directory.rglob("*"))}




def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def fail_at_step(monkeypatch, step: int, error: BaseException | None = None) -> None:
    """Make training raise ``error`` (or send this process a real SIGINT) after ``step``."""
    real = Distiller._optimizer_step

    def optimizer_step(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.state.step == step:
            if error is None:
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise error

    monkeypatch.setattr(Distiller, "_optimizer_step", optimizer_step)


# --------------------------------------------------------------------------------- lock


@pytest.fixture
def live_pid():
    sleeper = subprocess.Popen(["sleep", "60"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def test_a_second_run_into_a_locked_dir_exits_2_and_touches_nothing(ws, tmp_path, capsys,
                                                                     live_pid):
    out = copy_of_done(ws, tmp_path)
    lock = {"pid": live_pid, "host": socket.gethostname(), "started": "earlier"}
    RunDir(out).lock.write_text(json.dumps(lock), encoding="utf-8")
    before = snapshot(out)
    for extra in ([], ["--resume"], ["--set", "output.overwrite=true"]):
        assert main(["finetune", recipe(ws, out), *extra]) == 2
        one_line_error(capsys, f"{out} is in use by another run", f"pid {live_pid}",
                       str(RunDir(out).lock))
        assert snapshot(out) == before


def test_a_lock_left_by_a_dead_run_is_taken_over(ws, tmp_path, capsys):
    out = copy_of_done(ws, tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    RunDir(out).lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    assert main(["finetune", recipe(ws, out), "--resume"]) == 0
    assert f"note: taking over {RunDir(out).lock}, left by pid {gone.pid}" in \
        capsys.readouterr().out
    assert not RunDir(out).lock.exists()


# ------------------------------------------------------------------------------ resume


def test_resume_with_another_recipe_exits_2_and_touches_nothing(ws, tmp_path, capsys):
    out = copy_of_done(ws, tmp_path)
    before = snapshot(out)
    assert main(["finetune", recipe(ws, out, lr=1e-2, seed=3), "--resume"]) == 2
    one_line_error(capsys, "--resume: the recipe differs", "train.lr (0.003 -> 0.01)",
                   "train.seed (42 -> 3)", "output.overwrite=true")
    assert snapshot(out) == before


def test_resume_may_extend_a_run(ws, tmp_path, capsys):
    out = copy_of_done(ws, tmp_path)
    assert main(["finetune", recipe(ws, out, max_steps=6), "--resume"]) == 0
    assert "note: resuming with train.max_steps changed: 4 -> 6" in capsys.readouterr().out
    assert results(out)["final_step"] == 6
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["max_steps"] == 6


def test_ctrl_c_checkpoints_its_step_and_resume_ends_equal(ws, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    fail_at_step(monkeypatch, 3)
    assert main(["finetune", recipe(ws, out)]) == 130
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("textdistill: error:")]
    assert errors == [f"textdistill: error: interrupted at step 3; checkpoint saved: "
                      f"{RunDir(out).checkpoint(3)}; resume with --resume"]
    assert not RunDir(out).lock.exists()
    monkeypatch.undo()
    assert main(["finetune", recipe(ws, out), "--resume"]) == 0
    final = "checkpoints/checkpoint-4/model.safetensors"
    assert (out / final).read_bytes() == (ws.done / final).read_bytes()


# ------------------------------------------------------------------------ overwrite


def test_overwrite_checks_everything_before_touching_the_old_run(ws, tmp_path, capsys):
    out = copy_of_done(ws, tmp_path)
    before = snapshot(out)
    path = recipe(ws, out)
    bad_data = ["--set", "output.overwrite=true", "--set", f"data.train={tmp_path}/none.tsv"]
    assert main(["finetune", path, *bad_data]) == 2
    one_line_error(capsys, "none.tsv")
    bad_labels = ["--set", "output.overwrite=true", "--set", "data.text_columns=[nosuch]"]
    assert main(["finetune", path, *bad_labels]) == 2
    one_line_error(capsys, "nosuch")
    assert snapshot(out) == before


def test_overwrite_restores_the_old_run_when_the_new_one_fails_before_a_checkpoint(
        ws, tmp_path, monkeypatch):
    out = copy_of_done(ws, tmp_path)
    before = snapshot(out)
    fail_at_step(monkeypatch, 1, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        main(["finetune", recipe(ws, out), "--set", "output.overwrite=true"])
    assert snapshot(out) == before


def test_overwrite_drops_the_old_run_once_the_new_one_has_a_checkpoint(
        ws, tmp_path, monkeypatch):
    out = copy_of_done(ws, tmp_path)
    fail_at_step(monkeypatch, 3, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        main(["finetune", recipe(ws, out), "--set", "output.overwrite=true"])
    run = RunDir(out)
    assert [p.name for p in run.saved_checkpoints()] == ["checkpoint-2"]
    assert not run.set_aside.exists() and not run.results.exists()
    assert not run.lock.exists()


def test_a_run_killed_mid_overwrite_gets_the_old_run_back_on_the_next_start(ws, tmp_path,
                                                                            capsys):
    out = copy_of_done(ws, tmp_path)
    before = snapshot(out)
    run = RunDir(out)
    run.set_aside_run()  # as output.overwrite left it when SIGKILLed before a checkpoint
    run.recipe.write_text("the new run's recipe")
    assert main(["finetune", recipe(ws, out)]) == 2
    assert "note: restored the earlier run" in capsys.readouterr().out
    assert snapshot(out) == before
