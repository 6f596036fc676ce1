"""Structured pruning: importance scores, the units removed, the saved model, the CLI."""

from __future__ import annotations

import json
import re
import types

import pytest
import torch
import yaml
from tiny import tiny_bert, tiny_dataset, write_sentiment_tsv, write_tiny_classifier
from transformers import AutoModelForSequenceClassification

from textdistill.cli import main
from textdistill.data.batching import pad_batch
from textdistill.errors import ConfigError
from textdistill.prune import RECORD_KEY
from textdistill.pruning import (
    Importance,
    apply_pruning,
    find_blocks,
    normalized_head_scores,
    plan_pruning,
    removed_counts,
    score_importance,
)

HEADS = 4          # tiny_bert(num_heads=4): head size 8, intermediate width 64
DEAD_HEADS = {0: [1], 1: [3]}
DEAD_NEURONS = {0: [3, 7, 40, 41], 1: [0, 9, 22, 63]}


def _batches(n: int = 48, size: int = 16) -> list[dict[str, torch.Tensor]]:
    data = tiny_dataset(n)
    return [pad_batch(data[i:i + size], 0) for i in range(0, n, size)]


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"],
                     attention_mask=batch["attention_mask"]).logits


def _kill_units(model) -> None:
    """Zero the heads and neurons of DEAD_HEADS / DEAD_NEURONS: they do nothing."""
    blocks = find_blocks(model)
    size = blocks.head_size
    with torch.no_grad():
        for layer, heads in DEAD_HEADS.items():
            block = blocks.blocks[layer]
            for head in heads:
                span = slice(head * size, (head + 1) * size)
                block.value.weight[span] = 0
                block.value.bias[span] = 0
                block.attention_out.weight[:, span] = 0
        for layer, neurons in DEAD_NEURONS.items():
            block = blocks.blocks[layer]
            block.ffn_in.weight[neurons] = 0
            block.ffn_in.bias[neurons] = 0


def _head_is_zero(model, layer: int, head: int) -> bool:
    blocks = find_blocks(model)
    block, span = blocks.blocks[layer], slice(head * blocks.head_size,
                                              (head + 1) * blocks.head_size)
    return all(not p[span].any() for p in (block.query.weight, block.key.weight,
                                           block.value.weight, block.query.bias,
                                           block.key.bias, block.value.bias)) and \
        not block.attention_out.weight[:, span].any()


# ------------------------------------------------------------------------ importance


def test_scoring_changes_nothing_in_the_model():
    model = tiny_bert(num_heads=HEADS)
    model.train()
    batches = _batches()
    before = _logits(model, batches[0])
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    importance = score_importance(model, batches)

    assert model.training
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(_logits(model, batches[0]), before)
    assert importance.heads.shape == (2, HEADS) and importance.neurons.shape == (2, 64)
    assert (importance.batches, importance.examples) == (3, 48)
    assert (importance.heads > 0).all()


def test_units_that_do_nothing_score_zero_and_are_removed_first():
    model = tiny_bert(num_heads=HEADS)
    _kill_units(model)
    importance = score_importance(model, _batches())

    for layer in range(2):
        zero_heads = (importance.heads[layer] == 0).nonzero().flatten().tolist()
        assert zero_heads == DEAD_HEADS[layer]
        zero_neurons = (importance.neurons[layer] == 0).nonzero().flatten().tolist()
        assert zero_neurons == DEAD_NEURONS[layer]
    plan = plan_pruning(importance, heads=2 / 8, ffn=4 / 64)
    assert plan.heads == ((1,), (3,))
    assert plan.neurons == tuple(tuple(DEAD_NEURONS[i]) for i in range(2))


def test_the_removed_units_are_the_least_important():
    importance = score_importance(tiny_bert(num_heads=HEADS, seed=3), _batches())
    plan = plan_pruning(importance, heads=0.5, ffn=0.25)

    heads = normalized_head_scores(importance)
    removed = [heads[layer, h] for layer, hs in enumerate(plan.heads) for h in hs]
    kept = [heads[layer, h] for layer in range(2) for h in range(HEADS)
            if h not in plan.heads[layer]]
    assert len(removed) == 4 and max(removed) <= min(kept)
    for layer, neurons in enumerate(plan.neurons):
        scores = importance.neurons[layer]
        mask = torch.zeros(64, dtype=torch.bool)
        mask[list(neurons)] = True
        assert mask.sum() == 16 and scores[mask].max() <= scores[~mask].min()


@pytest.mark.parametrize("heads, ffn, message", [
    (1.0, 0.0, "heads: 1.0 is not a fraction to remove in [0, 1)"),
    (0.0, -0.1, "ffn: -0.1 is not a fraction to remove in [0, 1)"),
    (float("nan"), 0.5, "heads: nan is not a fraction"),
    (0.0, 0.0, "nothing to prune"),
    (0.01, 0.0, "heads: 0.01 of 8 removes nothing"),
])
def test_bad_fractions_are_refused(heads, ffn, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        removed_counts(total_heads=8, ffn_width=64, heads=heads, ffn=ffn)


def test_a_fraction_near_one_keeps_a_unit():
    assert removed_counts(total_heads=8, ffn_width=64, heads=0.99, ffn=0.999) == (7, 63)


def test_a_model_without_known_heads_is_refused():
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    config = DebertaV2Config(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32)
    with pytest.raises(ConfigError, match="no attention heads or feed-forward layers that "
                                          "prune knows"):
        score_importance(DebertaV2ForSequenceClassification(config), _batches())


# --------------------------------------------------------------------------- surgery


def test_removing_dead_units_keeps_the_outputs_and_reloads(tmp_path):
    model = tiny_bert(num_heads=HEADS)
    _kill_units(model)
    batch = _batches()[0]
    expected = _logits(model, batch)
    plan = plan_pruning(score_importance(model, _batches()), heads=2 / 8, ffn=4 / 64)

    apply_pruning(model, plan)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)

    assert reloaded.config.intermediate_size == 60
    assert reloaded.config.num_attention_heads == HEADS
    for layer in reloaded.bert.encoder.layer:
        assert layer.intermediate.dense.out_features == 60
        assert layer.output.dense.in_features == 60
    assert _head_is_zero(reloaded, 0, 1) and _head_is_zero(reloaded, 1, 3)
    assert not _head_is_zero(reloaded, 0, 0)
    torch.testing.assert_close(_logits(model, batch), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(_logits(reloaded, batch), expected, rtol=0, atol=1e-6)


def _other_family(name: str):
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        MPNetConfig,
        MPNetForSequenceClassification,
    )

    torch.manual_seed(0)
    if name == "distilbert":
        return DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=60, dim=32, n_layers=2, n_heads=HEADS, hidden_dim=64))
    return MPNetForSequenceClassification(MPNetConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=HEADS,
        intermediate_size=64))


@pytest.mark.parametrize("family, width_key", [("distilbert", "hidden_dim"),
                                               ("mpnet", "intermediate_size")])
def test_other_families_prune_and_reload(tmp_path, family, width_key):
    model = _other_family(family)
    plan = plan_pruning(score_importance(model, _batches()), heads=0.25, ffn=0.5)
    apply_pruning(model, plan)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert getattr(reloaded.config, width_key) == 32
    assert all(_head_is_zero(reloaded, layer, h) for layer, heads in enumerate(plan.heads)
               for h in heads)
    batch = _batches()[0]
    torch.testing.assert_close(_logits(reloaded, batch), _logits(model, batch))


def test_zeroed_heads_stay_zero_under_training():
    """Recovery distillation must not revive a removed head: its weights get no gradient,
    whatever the loss (attention maps included), and AdamW's weight decay keeps zero."""
    model = tiny_bert(num_heads=HEADS)
    plan = plan_pruning(score_importance(model, _batches()), heads=0.5, ffn=0.0)
    apply_pruning(model, plan)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for batch in _batches():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    labels=batch["labels"], output_attentions=True)
        attention = sum((a - 1 / a.shape[-1]).pow(2).sum() for a in out.attentions)
        (out.loss + attention).backward()
        optimizer.step()
        optimizer.zero_grad()
    for layer, heads in enumerate(plan.heads):
        assert heads and all(_head_is_zero(model, layer, h) for h in heads)


def test_a_plan_that_does_not_fit_is_refused():
    importance = Importance(heads=torch.ones(3, HEADS), neurons=torch.ones(3, 64),
                            batches=1, examples=1)
    with pytest.raises(ConfigError, match="the pruning plan is for 3 blocks; the model has 2"):
        apply_pruning(tiny_bert(num_heads=HEADS), plan_pruning(importance, heads=0.5, ffn=0))


# ------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    train, dev = write_sentiment_tsv(root / "sst", n_train=48, n_eval=16)
    model = write_tiny_classifier(root / "model", num_heads=HEADS)
    return types.SimpleNamespace(root=root, train=train, dev=dev, model=model)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("textdistill: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _prune(ws, out, *extra: str) -> int:
    return main(["prune", str(ws.model), str(out), "--data", str(ws.train), "--batches", "3",
                 "--batch-size", "8", *extra])


def test_prune_then_distill_from_the_unpruned_model(ws, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert _prune(ws, out, "--heads", "0.5", "--ffn", "0.5") == 0
    printed = capsys.readouterr().out
    assert "intermediate_size 64 -> 32" in printed and f"written: {out}" in printed

    model = AutoModelForSequenceClassification.from_pretrained(out)
    record = getattr(model.config, RECORD_KEY)
    assert model.config.intermediate_size == 32
    assert (record["batches"], record["examples"]) == (3, 24)
    assert sum(len(h) for h in record["heads_zeroed"].values()) == 4
    for layer, heads in record["heads_zeroed"].items():
        assert all(_head_is_zero(model, int(layer), h) for h in heads)
    assert "removed by\n`textdistill prune`" in (out / "README.md").read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".pruned.*"))

    recipe = tmp_path / "recover.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": {"model": str(ws.model)},
        "student": {"pretrained": str(out)},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": ["negative", "positive"], "max_length": 32},
        "distill": {"matches": "uniform"},
        "train": {"max_steps": 2, "batch_size": 8, "report_to": [], "progress_bar": False,
                  "save_steps": 1000},
        "output": {"dir": str(tmp_path / "run")}}), encoding="utf-8")
    assert main(["distill", str(recipe)]) == 0
    recovered = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "best")
    assert recovered.config.intermediate_size == 32
    for layer, heads in record["heads_zeroed"].items():
        assert all(_head_is_zero(recovered, int(layer), h) for h in heads)

    # A run directory: its best/ is pruned, on its own recipe's data by default.
    again = tmp_path / "again"
    assert main(["prune", str(tmp_path / "run"), str(again), "--ffn", "0.25",
                 "--batches", "2", "--batch-size", "8"]) == 0
    twice = json.loads((again / "config.json").read_text(encoding="utf-8"))[RECORD_KEY]
    assert twice["data"] == str(tmp_path / "run" / "recipe.yaml")
    assert twice["intermediate_size"] == {"before": 32, "after": 24}
    assert twice["previous"]["heads_zeroed"] == record["heads_zeroed"]


def test_an_existing_output_is_refused_before_scoring(ws, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert _prune(ws, out, "--ffn", "0.5") == 2
    assert "is not empty; pass --overwrite" in _error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    assert _prune(ws, out, "--ffn", "0.5", "--overwrite") == 0
    assert (out / "config.json").is_file() and not (out / "keep.txt").exists()


def test_a_symlinked_output_is_refused(ws, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert _prune(ws, link, "--ffn", "0.5", "--overwrite") == 2
    assert "is a symbolic link" in _error_line(capsys)
    assert link.is_symlink() and not any(real.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--heads", "1.0"], "heads: 1.0 is not a fraction to remove in [0, 1)"),
    ([], "heads, ffn: both are 0; nothing to prune"),
    (["--ffn", "0.5", "--batches", "0"], "batches: 0 batches of 8; both must be >= 1"),
])
def test_bad_input_is_one_line_and_writes_nothing(ws, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert _prune(ws, out, *args) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_a_model_directory_needs_data(ws, tmp_path, capsys):
    assert main(["prune", str(ws.model), str(tmp_path / "out"), "--ffn", "0.5"]) == 2
    assert "--data: " in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_the_record_is_plain_json(ws, tmp_path):
    assert _prune(ws, tmp_path / "p", "--heads", "0.25") == 0
    config = json.loads((tmp_path / "p" / "config.json").read_text(encoding="utf-8"))
    assert config[RECORD_KEY]["intermediate_size"] == {"before": 64, "after": 64}
    assert config[RECORD_KEY]["fractions"] == {"heads": 0.25, "ffn": 0.0}
