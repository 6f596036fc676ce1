"""scripts/bench.py into the checkout's own docs/ also refreshes what is made from its
results there (README's table, the pages scripts/gen_docs.py generates), and leaves both
alone for any other --docs folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """scripts/bench.py pointed at a copy of this checkout's README and benchmark JSON;
    (the module, the calls its regenerate_docs got)."""
    (tmp_path / "docs" / "benchmarks").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "benchmarks" / "results.json", tmp_path / "docs" / "benchmarks")
    (tmp_path / "README.md").write_text(
        "# x\n<!-- bench:start -->\nold\n<!-- bench:end -->\n", encoding="utf-8")
    bench = load_script("bench")
    calls = []
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "regenerate_docs", lambda: calls.append("gen_docs"))
    return bench, calls


def test_a_run_into_the_checkouts_docs_regenerates_the_generated_pages(checkout, tmp_path):
    bench, calls = checkout
    assert bench.main(["--report"]) == 0
    assert calls == ["gen_docs"]
    assert "| teacher: MiniLM-L6 fine-tuned |" in (tmp_path / "README.md").read_text()


def test_a_run_into_another_docs_folder_regenerates_nothing(checkout, tmp_path):
    bench, calls = checkout
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "docs", other)
    assert bench.main(["--report", "--docs", str(other)]) == 0
    assert calls == []
    assert "old" in (tmp_path / "README.md").read_text()
    assert (other / "benchmarks.md").is_file()
