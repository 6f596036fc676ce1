"""RunDir: the names a run writes, finding checkpoints, starting over."""

from __future__ import annotations

from textdistill.run_dir import RunDir, staging_path


def test_layout_is_the_one_users_see(tmp_path):
    run = RunDir(str(tmp_path))
    assert run.root == tmp_path
    assert run.best == tmp_path / "best"
    assert run.best_staging == tmp_path / "best.tmp"
    assert run.checkpoints == tmp_path / "checkpoints"
    assert run.checkpoint(12) == tmp_path / "checkpoints" / "checkpoint-12"
    assert run.logs == tmp_path / "logs"
    assert run.teacher_cache == tmp_path / "teacher_cache"
    assert run.history == tmp_path / "history.json"
    assert run.results == tmp_path / "results.json"
    assert run.recipe == tmp_path / "recipe.yaml"
    assert staging_path(run.checkpoint(3)).name == "checkpoint-3.tmp"


def test_saved_checkpoints_are_complete_ones_by_step(tmp_path):
    run = RunDir(tmp_path)
    assert run.saved_checkpoints() == []
    for step in (10, 9, 100):
        run.checkpoint(step).mkdir(parents=True)
    staging_path(run.checkpoint(110)).mkdir()  # a save that never finished
    (run.checkpoints / "checkpoint-notes").mkdir()
    (run.checkpoints / "checkpoint-7").write_text("a file, not a checkpoint")
    assert run.saved_checkpoints() == [run.checkpoint(9), run.checkpoint(10),
                                       run.checkpoint(100)]


def test_previous_run_and_clear_touch_only_what_a_run_writes(tmp_path):
    run = RunDir(tmp_path)
    assert run.previous_run() == []
    run.checkpoints.mkdir()
    assert run.previous_run() == [], "an empty checkpoints/ is no earlier run"
    run.checkpoint(4).mkdir()
    for folder in (run.best, run.best_staging, run.logs, run.teacher_cache):
        folder.mkdir()
        (folder / "file").write_text("x")
    for file in (run.history, run.results, run.recipe):
        file.write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    assert run.previous_run() == ["checkpoints/", "best/", "results.json"]

    run.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt"]
    assert run.previous_run() == []
    run.clear()  # nothing left to delete: no error
