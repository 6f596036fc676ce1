"""Exporting the student as a Hub-format directory, its model card, and offline pushes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
)

from textdistill.export import HubUnavailableError, export_model, push_to_hub
from textdistill.model_card import build_model_card, results_markdown

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", *(
    "the a movie film was is good bad great awful i loved hated it plot acting"
).split()]
LABELS = {0: "negative", 1: "positive"}


@pytest.fixture
def tokenizer(tmp_path: Path) -> BertTokenizerFast:
    # Outside tmp_path itself, whose listing the tests check for leftovers.
    path = tmp_path / "tokenizer_source" / "vocab.txt"
    path.parent.mkdir()
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(path))  # transformers 5: vocab=, not vocab_file=


@pytest.fixture
def model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, num_labels=2,
                        max_position_embeddings=64)
    model = BertForSequenceClassification(config).eval()
    # Only id2label set, as careless code does: the export fixes label2id.
    model.config.id2label = dict(LABELS)
    return model


def _card() -> ModelCard:
    return build_model_card(
        model_name="someone/tiny-sst2-student",
        teacher_name="someone/bert-sst2-teacher",
        dataset_name="stanfordnlp/sst2",
        metrics={"accuracy": 0.875, "f1": 0.87},
        results_table=[
            {"model": "teacher", "accuracy": 0.899, "params": 22_700_000, "latency_ms_b1": 5.1},
            {"model": "student", "accuracy": 0.875, "params": 4_400_000, "latency_ms_b1": 1.2},
        ],
        distill_config={"temperature": 2.0, "logit_loss": "kd_kl",
                        "matches": [{"feature": "hidden", "student_layer": 1,
                                     "teacher_layer": 2}]},
    )


def _siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir()
                  if p.name not in (directory.name, "tokenizer_source"))


def test_export_writes_a_loadable_hub_directory(tmp_path, model, tokenizer):
    out = tmp_path / "exports" / "student"
    assert export_model(model, tokenizer, out, card=_card()) == out
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json",
            "tokenizer_config.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert _siblings(out) == [], "no temporary directories left behind"

    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}

    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert type(reloaded) is BertForSequenceClassification
    assert reloaded.config.id2label == LABELS
    reloaded_tok = AutoTokenizer.from_pretrained(out)
    assert reloaded_tok.get_vocab() == tokenizer.get_vocab()
    batch = reloaded_tok(["the movie was good", "i hated it"], padding=True,
                         return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "someone/bert-sst2-teacher"
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["stanfordnlp/sst2"]
    assert card.data.pipeline_tag == "text-classification"
    assert {"textdistill", "knowledge-distillation", "text-classification"} <= set(card.data.tags)
    assert card.data.metrics == ["accuracy", "f1"]
    assert card.data.eval_results[0].metric_value == 0.875


def test_export_unwraps_and_saves_only_the_student(tmp_path, model, tokenizer):
    class Wrapper(torch.nn.Module):  # what DDP / accelerate hand back
        def __init__(self, module):
            super().__init__()
            self.module = module
            self.projection = torch.nn.Linear(32, 64)  # distillation-only part

    out = export_model(Wrapper(model), tokenizer, tmp_path / "student")
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert keys == set(model.state_dict())
    assert not any("projection" in k for k in keys)
    # Without a card, a minimal one is still written.
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers"
    assert "# student" in card.text


def test_export_refuses_to_overwrite(tmp_path, model, tokenizer):
    out = tmp_path / "student"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(model, tokenizer, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert _siblings(out) == []

    export_model(model, tokenizer, out, card=_card(), overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert "keep.txt" not in names and "model.safetensors" in names
    assert _siblings(out) == []

    # An existing empty directory is simply filled.
    empty = tmp_path / "empty"
    empty.mkdir()
    export_model(model, tokenizer, empty)
    assert (empty / "config.json").is_file()


def test_failed_export_leaves_the_old_directory(tmp_path, model, tokenizer, monkeypatch):
    out = tmp_path / "student"
    export_model(model, tokenizer, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        export_model(model, tokenizer, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _siblings(out) == []


def test_export_target_is_a_file(tmp_path, model, tokenizer):
    target = tmp_path / "student"
    target.write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        export_model(model, tokenizer, target, overwrite=True)


def test_model_card_text():
    text = _card().text
    assert "| model | accuracy | params | latency_ms_b1 |" in text
    assert "| teacher | 0.899 | 22.7M | 5.1 |" in text
    assert "from transformers import AutoModelForSequenceClassification, AutoTokenizer" in text
    assert 'pipeline("text-classification", model="someone/tiny-sst2-student")' in text
    assert "```yaml\ntemperature: 2.0\nlogit_loss: kd_kl\n" in text
    assert "teacher_layer: 2" in text


def test_model_card_of_a_fine_tuned_model_names_its_base_not_a_teacher():
    card = build_model_card(model_name="someone/minilm-sst2", teacher_name="someone/minilm",
                            dataset_name="stanfordnlp/sst2", metrics={"accuracy": 0.9},
                            results_table=[], distill_config={"train": {"epochs": 2}},
                            fine_tuned=True)
    assert "fine-tuned with textdistill from [someone/minilm]" in card.text
    assert "## Training config" in card.text
    assert "distilled" not in card.text and "teacher" not in card.text
    assert card.data.base_model == "someone/minilm"
    assert "distilled with textdistill from the teacher" in _card().text


def test_model_card_with_local_teacher_has_no_base_model(tmp_path):
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    card = build_model_card(model_name="student", teacher_name=str(teacher_dir),
                            dataset_name="sst2 (local tsv)", metrics={"accuracy": 0.9},
                            results_table=[], distill_config={})
    assert card.data.base_model is None and card.data.datasets is None
    assert str(teacher_dir) in card.text
    assert "No results recorded" in card.text


def test_results_markdown_columns_union():
    table = results_markdown([{"model": "a", "accuracy": 0.5}, {"model": "b", "f1": 0.25}])
    assert table.splitlines() == ["| model | accuracy | f1 |", "|---|---|---|",
                                  "| a | 0.5 | - |", "| b | - | 0.25 |"]


def test_push_offline_raises_and_keeps_the_directory(tmp_path, model, tokenizer, monkeypatch):
    out = export_model(model, tokenizer, tmp_path / "student", card=_card())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as info:
        push_to_hub(out, "someone/tiny-sst2-student", token="hf_not_a_token")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    # `hf` is huggingface_hub's CLI since 1.0 (`huggingface-cli` is gone).
    assert str(out) in message and f"`hf upload someone/tiny-sst2-student {out}`" in message
    assert "--push" in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_push_unreachable_hub_raises(tmp_path, model, tokenizer, monkeypatch):
    out = export_model(model, tokenizer, tmp_path / "student")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    with pytest.raises(HubUnavailableError, match="complete at"):
        push_to_hub(out, "someone/x")
    assert (out / "model.safetensors").is_file()


def test_push_needs_an_exported_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_to_hub(tmp_path, "someone/x")


@pytest.mark.parametrize("overwrite", [False, True])
def test_export_refuses_a_symlinked_target_and_leaves_it_alone(tmp_path, model, tokenizer,
                                                               overwrite):
    """Used to fail with a raw [Errno 20], or with --overwrite leave a stray .old link."""
    real = tmp_path / "real"
    export_model(model, tokenizer, real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        export_model(model, tokenizer, link, overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert link.is_symlink() and (real / "model.safetensors").is_file()
