"""RunLock: one run per output directory; stale locks of this host are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from textdistill.errors import RunLockedError
from textdistill.run_dir import RunDir
from textdistill.run_lock import RunLock


def test_the_lock_names_its_holder_and_goes_away_also_on_an_exception(tmp_path):
    lock = RunDir(tmp_path).lock
    with pytest.raises(KeyboardInterrupt):
        with RunLock(tmp_path):
            holder = json.loads(lock.read_text())
            assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
            with pytest.raises(RunLockedError, match="in use by another run"):
                with RunLock(tmp_path):  # a second run in this same process
                    pass
            raise KeyboardInterrupt
    assert not lock.exists()


def test_a_live_holder_or_another_host_is_refused_and_nothing_is_left_behind(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for holder in ({"pid": sleeper.pid, "host": socket.gethostname()},
                       {"pid": 1, "host": "elsewhere"}, "not json"):
            tmp_path.mkdir(exist_ok=True)
            lock = RunDir(tmp_path).lock
            lock.write_text(holder if isinstance(holder, str) else json.dumps(holder))
            with pytest.raises(RunLockedError, match=f"delete {lock}"):
                with RunLock(tmp_path):
                    pass
            assert lock.read_text() == (holder if isinstance(holder, str)
                                        else json.dumps(holder))
            lock.unlink()
            tmp_path.rmdir()
    finally:
        sleeper.kill()
        sleeper.wait()
    fresh = tmp_path / "a" / "b"
    # The folders made for a lock that could not be taken are removed again.
    (tmp_path / "x").mkdir(parents=True)
    (tmp_path / "x" / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunLockedError):
        with RunLock(tmp_path / "x"):
            pass
    assert not fresh.exists()
    with RunLock(fresh):
        assert fresh.is_dir()
    assert not (tmp_path / "a").exists()


def test_a_dead_holder_on_this_host_is_taken_over_with_a_note(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = RunDir(tmp_path).lock
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    notes = []
    with RunLock(tmp_path, log=notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert notes == [f"note: taking over {lock}, left by pid {gone.pid} which no longer runs"]
    assert not lock.exists()
