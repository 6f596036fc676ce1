"""The engine benchmark (textdistill/bench/engine.py) on a tiny model, in this process.

``scripts/bench_engine.py`` runs each configuration as ``--child NAME`` in its own process;
here every configuration's measurement runs once, a few steps each, and the JSON and the
page are built from them.
"""

from __future__ import annotations

from argparse import Namespace

import pytest
import torch
from tiny import write_sentiment_tsv, write_tiny_classifier

from textdistill.bench import engine, engine_report


@pytest.fixture
def args(tmp_path, monkeypatch):
    write_sentiment_tsv(tmp_path / "sst2", n_train=80, n_eval=8)
    monkeypatch.setenv("TEXTDISTILL_SST2_DIR", str(tmp_path / "sst2"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    model = write_tiny_classifier(tmp_path / "model", num_layers=6)
    yield Namespace(threads=1, examples=64, epoch_examples=64, model=str(model), steps=2,
                    warmup=1, repeats=1, ab_rounds=1, ab_steps=1, child=None)
    torch.set_num_threads(threads)


def test_every_configuration_measures_and_the_page_renders(args, tmp_path, monkeypatch):
    # Every run writes into its own temporary folder: nothing lands in the current
    # directory (a cache once went to "./False", from teacher_cache=str(False)).
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def measure(config: str) -> dict:
        args.child = config
        result = engine.child(args)
        assert result["peak_rss_mb"] > 0, config
        return result

    runs = {config: [measure(config)] for config in engine.CONFIGS}
    for config, (run,) in runs.items():
        assert run["samples_per_second"] > 0 and run["seconds"] > 0, config
    assert runs["logits_cached"][0]["cache_build_seconds"] >= 0.0
    ab = measure("ab")
    assert len(ab["hand_seconds"]) == len(ab["engine_seconds"]) == 1 and ab["ratio"] > 0
    epoch = {config: measure(config) for config in engine.EPOCH_CONFIGS}
    assert epoch["epoch_engine"]["examples"] == 64 and epoch["epoch_engine"]["steps"] == 2

    assert not any(cwd.iterdir()), sorted(p.name for p in cwd.iterdir())

    report = engine_report.results(args, ["--steps", "2"], runs, ab, epoch)
    assert report["setup"]["bars"] == engine.BARS
    assert report["epoch"]["speedup"] == pytest.approx(
        epoch["epoch_hand"]["seconds"] / epoch["epoch_engine"]["seconds"])
    page = engine_report.markdown(report)
    assert f"Engine / hand loop throughput: {report['engine_vs_hand_ratio']:.3f}**" in page
    assert "hidden MSE (4 pairs) + attention MSE (3 pairs), uniform 3->6 mapping" in page
