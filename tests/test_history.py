"""History: logging, queries, JSON round trip, plotting and display."""

import pytest

from textdistill.history import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _history(with_eval=True):
    h = History(metric_for_best="f1")
    for step in (10, 20, 30):
        record = {"step": step, "epoch": step / 20, "lr": 1e-4, "loss": 3.0 / step,
                  "loss/kd": 2.0 / step, "loss/hard": 1.0 / step}
        if step >= 20:
            record["loss/hidden_s1_t2"] = 0.5 / step
        h.log_train(record)
        h.log_throughput({"step": step, "samples_per_second": 100.0 + step,
                          "steps_per_second": 3.0})
    if with_eval:
        h.log_eval({"step": 20, "epoch": 1.0, "accuracy": 0.7, "f1": 0.6, "mcc": 0.3,
                    "loss": 0.5})
        h.log_eval({"step": 30, "epoch": 1.5, "accuracy": 0.8, "f1": 0.75, "mcc": 0.5})
        h.best_metric, h.best_step = 0.75, 30
    h.wall_time_s = 12.5
    return h


def test_logging_copies_records():
    h = History()
    record = {"step": 1, "loss": 1.0}
    h.log_train(record)
    record["loss"] = 99.0
    assert h.train == [{"step": 1, "loss": 1.0}]


def test_series_components_and_last_eval():
    h = _history()
    assert h.loss_components() == ["loss/kd", "loss/hard", "loss/hidden_s1_t2"]
    assert h.series("loss") == ([10, 20, 30], [0.3, 0.15, 0.1])
    assert h.series("loss/hidden_s1_t2") == ([20, 30], [0.025, 0.5 / 30])
    assert h.series("accuracy", source="eval") == ([20, 30], [0.7, 0.8])
    assert h.series("loss", source="eval") == ([20], [0.5])
    assert h.series("samples_per_second", source="throughput")[1] == [110.0, 120.0, 130.0]
    assert h.series("missing") == ([], [])
    with pytest.raises(ValueError, match="choose one of"):
        h.series("loss", source="nope")
    last = h.last_eval()
    assert last["accuracy"] == 0.8
    last["accuracy"] = 0.0  # a copy: the history is untouched
    assert h.eval[-1]["accuracy"] == 0.8
    assert History().last_eval() is None
    assert h.eval_metrics() == ["accuracy", "f1", "mcc", "loss"]
    assert h.final_step == 30 and h.final_loss == pytest.approx(0.1)


def test_json_round_trip(tmp_path):
    h = _history()
    path = h.save_json(tmp_path / "sub" / "history.json")
    back = History.from_json(path)
    assert back == h
    assert back.metric_for_best == "f1" and back.best_step == 30
    assert History.from_dict(h.to_dict()) == h
    with pytest.raises(ValueError, match="unknown History keys"):
        History.from_dict({**h.to_dict(), "bogus": 1})


@pytest.mark.parametrize("with_eval", [True, False])
def test_plot_writes_png(tmp_path, with_eval):
    h = _history(with_eval)
    out = h.plot(tmp_path / "plots" / "history.png", title="tiny run")
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024


def test_plot_empty_history_and_nonpositive_losses(tmp_path):
    data = History().plot(tmp_path / "empty.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1024
    h = History()
    h.log_train({"step": 1, "loss": -0.5, "loss/kd": 0.0})  # linear axis path
    h.log_train({"step": 2, "loss": float("nan"), "loss/kd": 0.1})
    assert h.plot(tmp_path / "neg.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_leaves_pyplot_untouched(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    _history().plot(tmp_path / "h.png")
    assert plt.get_fignums() == before


def test_plot_without_matplotlib(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        _history().plot(tmp_path / "h.png")


def test_repr_and_html():
    h = _history()
    text = repr(h)
    assert text.startswith("History(") and "steps=30" in text
    assert "final_loss=0.1" in text and "f1=0.75 @ step 30" in text
    page = h._repr_html_()
    assert page.startswith("<table") and "f1=0.75 @ step 30" in page
    assert "loss/hidden_s1_t2" in page
    empty = repr(History())
    assert "steps=-" in empty and "best=-" in empty
    assert "<table" in History()._repr_html_()
