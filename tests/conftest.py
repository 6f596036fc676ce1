"""What every test shares: one torch thread, no Hub, quiet datasets progress bars."""

from __future__ import annotations

import datasets
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tiny models gain nothing from threads, and on a shared 2-core machine a second
    # OpenMP thread that has to wait for a busy core makes each step ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Every Hub miss would retry for ~25 s; tests build their models and data themselves.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def quiet_datasets():
    """datasets' progress bars off for a module whose tests map many tiny splits."""
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture(scope="module")
def bench_workspace(tmp_path_factory, request):
    """A folder holding a tiny GLUE-shaped SST-2 copy (``SENTENCES`` training rows, from the
    requesting module), with the environment a benchmark smoke run reads set for the
    module."""
    from tiny import write_sentiment_tsv

    tmp = tmp_path_factory.mktemp("bench")
    write_sentiment_tsv(tmp / "sst2", n_train=request.module.SENTENCES, n_eval=24)
    patch = pytest.MonkeyPatch()
    patch.setenv("TEXTDISTILL_SST2_DIR", str(tmp / "sst2"))
    # Module scope: the function-scoped _offline fixture does not cover its setup.
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    yield tmp
    patch.undo()

