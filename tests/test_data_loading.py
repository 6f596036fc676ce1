"""Loading and tokenizing text datasets (tiny local files; the shipped SST-2 if present)."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import datasets
import pytest
from transformers import BertTokenizerFast

from textdistill.config import ConfigError, from_dict
from textdistill.data import (
    AugmentConfig,
    DataConfig,
    default_sst2_dir,
    infer_label_names,
    load_raw_splits,
    sst2_data_config,
    tokenize_splits,
)

WORDS = ("the a movie film was is good bad great awful i loved hated it plot acting "
         "cat dog sat on mat dogs cats play run fast slow very not quite").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", '"', "'", ",", ".", *WORDS]


@pytest.fixture
def tokenizer(tmp_path: Path) -> BertTokenizerFast:
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # transformers 5 ignores ``vocab_file=`` (the tokenizer silently gets only the 5
    # special tokens); ``vocab=`` takes the file path or a dict.
    tok = BertTokenizerFast(vocab=str(vocab_file))
    assert len(tok.get_vocab()) == len(VOCAB)
    return tok


SENTENCES = [
    ("the movie was good", "positive"),
    ("i hated it", "negative"),
    ('"the plot" was very very bad', "negative"),  # an unbalanced-looking quote: QUOTE_NONE
    ("the acting was great , i loved it", "positive"),
    ("not good", "negative"),
    ('a film " quite good', "positive"),
    ("it was awful .", "negative"),
    ("very good", "positive"),
    ("NA", "negative"),  # pandas would read NA as a missing value
    ("the cat sat on the mat and it was not bad", "positive"),
]
PAIRS = [
    ("the cat sat", "the dog sat", "entailment"),
    ("a dog", "a cat ran very fast", "contradiction"),
    ("the film was good", "it was great", "entailment"),
    ("cats play", "dogs run", "neutral"),
    ("the mat", "a cat on the mat", "neutral"),
    ("i loved it", "i hated it", "contradiction"),
]


def _write(path: Path, rows: list[dict], fmt: str) -> str:
    columns = list(rows[0])
    if fmt in ("tsv", "csv"):
        delimiter = "\t" if fmt == "tsv" else ","
        # GLUE-style tsv: no quoting at all, quote characters are plain text.
        quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter=delimiter, quoting=quoting, escapechar=None,
                                quotechar='"' if fmt == "csv" else None)
            writer.writerow(columns)
            writer.writerows([[row[c] for c in columns] for row in rows])
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    return str(path)


def _files(tmp_path: Path, fmt: str, rows: list[dict], n_eval: int = 4) -> dict[str, str]:
    return {
        "train": _write(tmp_path / f"train.{fmt}", rows, fmt),
        "eval": _write(tmp_path / f"dev.{fmt}", rows[:n_eval], fmt),
    }


def _single_rows() -> list[dict]:
    return [{"sentence": s, "label": label} for s, label in SENTENCES]


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "json", "parquet"])
def test_local_formats_single_sentence(tmp_path, tokenizer, fmt):
    cfg = DataConfig(**_files(tmp_path, fmt, _single_rows()), label_names=["negative", "positive"],
                     cache_dir=str(tmp_path / "cache"))
    raw = load_raw_splits(cfg)
    assert set(raw) == {"train", "eval"}
    assert len(raw["train"]) == len(SENTENCES) and len(raw["eval"]) == 4
    # Quotes are text, "NA" is a string (not a missing value).
    assert sorted(raw["train"]["sentence"]) == sorted(s for s, _ in SENTENCES)

    tok = tokenize_splits(raw, tokenizer, cfg)
    train = tok["train"]
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids",
                                       "labels"}
    assert train.features["labels"].names == ["negative", "positive"]
    by_text = dict(SENTENCES)
    for row, (text, _) in zip(train, SENTENCES, strict=True):
        assert row["labels"] == ["negative", "positive"].index(by_text[text])
        assert row["input_ids"][0] == tokenizer.cls_token_id
        assert row["input_ids"] == tokenizer(text)["input_ids"]
        assert set(row["token_type_ids"]) == {0}
    lengths = {len(ids) for ids in train["input_ids"]}
    assert len(lengths) > 1, "sequences must not be padded"
    assert tokenizer.pad_token_id not in {i for ids in train["input_ids"] for i in ids}


def test_tsv_quotes_are_plain_text(tmp_path):
    # The second sentence opens a quote it never closes; with csv quoting, pandas would
    # swallow the following lines into it.
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\n"hello\t1\nsay "hi" now\t0\nend\t1\n', encoding="utf-8")
    cfg = DataConfig(train=str(path), eval=str(path), cache_dir=str(tmp_path / "cache"))
    raw = load_raw_splits(cfg)
    assert raw["train"]["sentence"] == ['"hello', 'say "hi" now', "end"]
    assert raw["train"]["label"] == [1, 0, 1]


def test_sentence_pairs(tmp_path, tokenizer):
    rows = [{"premise": p, "hypothesis": h, "label": y, "idx": 100 + i}
            for i, (p, h, y) in enumerate(PAIRS)]
    names = ["entailment", "neutral", "contradiction"]
    cfg = DataConfig(**_files(tmp_path, "jsonl", rows, n_eval=3),
                     text_columns=["premise", "hypothesis"], label_names=names,
                     cache_dir=str(tmp_path / "cache"), max_length=64)
    tok = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)
    train = tok["train"]
    # Only model inputs and labels: the source's other columns (its own idx) are dropped.
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids",
                                       "labels"}
    assert train["labels"] == [names.index(y) for _, _, y in PAIRS]
    for row, (premise, hypothesis, _) in zip(train, PAIRS, strict=True):
        assert row["input_ids"] == tokenizer(premise, hypothesis)["input_ids"]
        assert 1 in row["token_type_ids"]
        assert row["input_ids"].count(tokenizer.sep_token_id) == 2


def test_truncation(tmp_path, tokenizer):
    rows = [{"sentence": " ".join(WORDS), "label": 0}, {"sentence": "good", "label": 1}]
    cfg = DataConfig(**_files(tmp_path, "csv", rows, n_eval=2), max_length=8,
                     cache_dir=str(tmp_path / "cache"))
    tok = tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)
    assert [len(ids) for ids in tok["train"]["input_ids"]] == [8, 3]
    assert tok["train"]["input_ids"][0][-1] == tokenizer.sep_token_id


def test_subsets_are_seeded_samples(tmp_path, tokenizer):
    rows = [{"sentence": f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]}",
             "label": i % 2} for i in range(40)]
    base = dict(**_files(tmp_path, "csv", rows, n_eval=20), cache_dir=str(tmp_path / "cache"))
    cfg = DataConfig(**base, max_train_samples=10, max_eval_samples=5)
    raw = load_raw_splits(cfg)
    assert len(raw["train"]) == 10 and len(raw["eval"]) == 5
    # A shuffled sample, not the first rows, and the same one every time.
    assert raw["train"]["sentence"] != [r["sentence"] for r in rows[:10]]
    assert load_raw_splits(cfg)["train"]["sentence"] == raw["train"]["sentence"]
    other = load_raw_splits(DataConfig(**base, max_train_samples=10, seed=7))
    assert other["train"]["sentence"] != raw["train"]["sentence"]
    # More than there is: everything, in file order.
    everything = load_raw_splits(DataConfig(**base, max_train_samples=1000))
    assert everything["train"]["sentence"] == [r["sentence"] for r in rows]


def test_label_names_inferred(tmp_path, tokenizer):
    rows = [{"sentence": s, "label": y} for s, y in SENTENCES]
    cfg = DataConfig(**_files(tmp_path, "jsonl", rows), cache_dir=str(tmp_path / "cache"))
    raw = load_raw_splits(cfg)
    assert infer_label_names(raw, cfg) == ["negative", "positive"]  # sorted unique
    tok = tokenize_splits(raw, tokenizer, cfg)
    assert tok["train"].features["labels"].names == ["negative", "positive"]

    # Integer labels: ids as they are.
    int_rows = [{"sentence": s, "label": int(y == "positive")} for s, y in SENTENCES]
    int_cfg = DataConfig(**_files(tmp_path, "csv", int_rows), cache_dir=str(tmp_path / "cache"))
    int_tok = tokenize_splits(load_raw_splits(int_cfg), tokenizer, int_cfg)
    assert int_tok["train"]["labels"] == [r["label"] for r in int_rows]


def test_class_label_feature_is_mapped_through_names(tmp_path, tokenizer):
    # A Hub-style dataset whose ClassLabel orders the classes differently from label_names.
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["pos", "neg"])})
    data = datasets.Dataset.from_dict({"sentence": ["good", "bad", "great"],
                                       "label": [0, 1, 0]}, features=features)
    raw = datasets.DatasetDict({"train": data, "eval": data})
    cfg = DataConfig(dataset="unused", label_names=["neg", "pos"])
    assert tokenize_splits(raw, tokenizer, cfg)["train"]["labels"] == [1, 0, 1]
    inferred = DataConfig(dataset="unused")
    assert infer_label_names(raw, inferred) == ["pos", "neg"]
    assert tokenize_splits(raw, tokenizer, inferred)["train"]["labels"] == [0, 1, 0]


def test_unknown_label_raises(tmp_path, tokenizer):
    rows = [{"sentence": "good", "label": "positive"}, {"sentence": "meh", "label": "neutral"}]
    cfg = DataConfig(**_files(tmp_path, "jsonl", rows, n_eval=1),
                     label_names=["negative", "positive"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"unknown label 'neutral'.*negative.*positive"):
        tokenize_splits(load_raw_splits(cfg), tokenizer, cfg)
    int_rows = [{"sentence": "good", "label": 1}, {"sentence": "meh", "label": 2}]
    int_cfg = DataConfig(**_files(tmp_path, "csv", int_rows, n_eval=1),
                         label_names=["negative", "positive"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="out of range"):
        tokenize_splits(load_raw_splits(int_cfg), tokenizer, int_cfg)


def test_hub_style_dataset_directory(tmp_path, tokenizer):
    # ``dataset`` is any load_dataset() path; a local directory stands in for the Hub.
    root = tmp_path / "my_dataset"
    root.mkdir()
    _write(root / "train.csv", _single_rows(), "csv")
    _write(root / "validation.csv", _single_rows()[:3], "csv")
    cfg = DataConfig(dataset=str(root), label_names=["negative", "positive"],
                     cache_dir=str(tmp_path / "cache"))
    notes = []
    raw = load_raw_splits(cfg, notes)
    # The Hub's csv builder reads the text "NA" as missing: that row's text is empty, and
    # it is dropped with a note.
    assert (len(raw["train"]), len(raw["eval"])) == (len(SENTENCES) - 1, 3)
    assert notes == ["data.train: dropped 1 of 10 rows with an empty text (sentence)"]
    # Split names and slices.
    sliced = load_raw_splits(DataConfig(dataset=str(root), train="train[:4]",
                                        eval="train[4:6]", cache_dir=str(tmp_path / "cache")))
    assert sliced["train"]["sentence"] == [s for s, _ in SENTENCES[:4]]
    assert sliced["eval"]["sentence"] == [s for s, _ in SENTENCES[4:6]]
    with pytest.raises(ConfigError, match=r"^data\.eval: "):
        load_raw_splits(DataConfig(dataset=str(root), eval="test",
                                   cache_dir=str(tmp_path / "cache")))


def test_missing_column_and_file(tmp_path):
    files = _files(tmp_path, "csv", _single_rows())
    with pytest.raises(ConfigError, match=r"data.text_columns.*'text'.*sentence"):
        load_raw_splits(DataConfig(**files, text_columns=["text"],
                                   cache_dir=str(tmp_path / "cache")))
    with pytest.raises(FileNotFoundError, match=r"^data\.train: no such file"):
        load_raw_splits(DataConfig(train=str(tmp_path / "nope.csv"), eval=files["eval"]))


@pytest.mark.parametrize(("values", "key"), [
    ({"dataset": "x", "train": "a.csv", "eval": "b.csv"}, "data.train: 'a.csv' looks like"),
    ({"dataset": "x", "eval": "b.jsonl"}, "data.eval: 'b.jsonl' looks like a local file"),
    ({}, "data.train: without data.dataset, data.train and data.eval are local files"),
    ({"train": "a.csv"}, "data.eval: without data.dataset"),
    ({"train": "a.txt", "eval": "b.csv"}, "data.train: cannot tell the format of 'a.txt'"),
    ({"train": "a.csv", "eval": "b.xlsx"}, "data.eval: cannot tell the format"),
    ({"train": "a.csv", "eval": "b.csv", "dataset_config": "c"}, "data.dataset_config"),
    ({"dataset": "x", "seed": -1}, "data.seed"),
    ({"dataset": "x", "text_columns": ["a", "b", "c"]}, "data.text_columns"),
    ({"dataset": "x", "text_columns": []}, "data.text_columns"),
    ({"dataset": "x", "label_names": ["only"]}, "data.label_names"),
    ({"dataset": "x", "label_names": ["a", "A"]}, "data.label_names"),
    ({"dataset": "x", "max_train_samples": 0}, "data.max_train_samples"),
    ({"dataset": "x", "max_length": -1}, "data.max_length"),
])
def test_bad_configs(values, key):
    pattern = "^" + re.escape(key)
    with pytest.raises(ConfigError, match=pattern):
        DataConfig(**values)
    with pytest.raises(ConfigError, match=pattern):
        from_dict(DataConfig, values, "data")


def test_from_dict_unknown_key_names_valid_keys():
    with pytest.raises(ConfigError, match=r"data\.max_samples.*max_train_samples"):
        from_dict(DataConfig, {"dataset": "x", "max_samples": 3}, "data")
    cfg = from_dict(DataConfig, {"dataset": "nyu-mll/glue", "dataset_config": "mnli",
                                 "text_columns": ["premise", "hypothesis"],
                                 "eval": "validation_matched"}, "data")
    assert cfg.text_columns == ["premise", "hypothesis"]
    assert (cfg.train, cfg.eval) == ("train", "validation_matched")


@pytest.mark.parametrize("config", [DataConfig, AugmentConfig])
def test_every_field_has_help(config):
    # The configuration docs are generated from these texts.
    for item in dataclasses.fields(config):
        assert item.metadata.get("help", "").strip(), f"{config.__name__}.{item.name}"


def _sst2_copy(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "validation.tsv"):
        (directory / name).write_text("sentence\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    return directory


def test_sst2_source_is_the_argument_then_the_env_var_then_the_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTDISTILL_SST2_DIR", raising=False)
    # Nothing given: the Hub, whatever copies lie around the checkout.
    assert default_sst2_dir() is None
    hub = sst2_data_config()
    assert (hub.dataset, hub.train, hub.eval) == ("stanfordnlp/sst2", "train", "validation")

    from_env = _sst2_copy(tmp_path / "env")
    monkeypatch.setenv("TEXTDISTILL_SST2_DIR", str(from_env))
    assert default_sst2_dir() == from_env
    cfg = sst2_data_config(max_train_samples=5)
    assert cfg.dataset is None and cfg.train == str(from_env / "train.tsv")
    assert cfg.eval == str(from_env / "validation.tsv")
    assert cfg.label_names == ["negative", "positive"] and cfg.max_train_samples == 5

    explicit = _sst2_copy(tmp_path / "explicit")
    assert sst2_data_config(explicit).train == str(explicit / "train.tsv")


def test_sst2_dir_without_the_files_is_an_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TEXTDISTILL_SST2_DIR", str(empty))
    with pytest.raises(FileNotFoundError, match=r"^\$TEXTDISTILL_SST2_DIR: .* lacks train.tsv"):
        default_sst2_dir()
    monkeypatch.delenv("TEXTDISTILL_SST2_DIR")
    with pytest.raises(FileNotFoundError, match=r"^SST-2 directory: .* lacks train.tsv, "
                                                r"validation.tsv"):
        sst2_data_config(empty)


def test_shared_sst2_subset(tokenizer):
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
    if not (shared / "train.tsv").is_file():
        pytest.skip(f"no SST-2 copy at {shared}")
    cfg = sst2_data_config(shared, max_train_samples=50, max_eval_samples=20, max_length=32)
    raw = load_raw_splits(cfg)
    assert raw["train"].column_names == ["sentence", "label"]
    assert (len(raw["train"]), len(raw["eval"])) == (50, 20)
    tok = tokenize_splits(raw, tokenizer, cfg)
    assert set(tok["train"].column_names) == {"input_ids", "attention_mask", "token_type_ids",
                                              "labels"}
    assert set(tok["train"]["labels"]) <= {0, 1}
    assert max(len(ids) for ids in tok["train"]["input_ids"]) <= 32


def test_utf8_check_names_the_byte_and_line_across_chunk_boundaries(tmp_path, monkeypatch):
    from textdistill.data import files

    monkeypatch.setattr(files, "_CHUNK_BYTES", 4)
    good = tmp_path / "good.tsv"
    good.write_text("sentence\tlabel\ncafé crème\t1\n", encoding="utf-8")  # é cut by chunks
    files.check_utf8(good, "train")
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"sentence\tlabel\nok\t1\nna\xefve\t0\n")
    with pytest.raises(ConfigError, match=r"^data\.train: .*bad\.tsv is not UTF-8 text: byte "
                                          r"0xef at offset 22 \(line 3\)"):
        files.check_utf8(bad, "train")
    blank = tmp_path / "blank.tsv"
    blank.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"blank\.tsv is empty"):
        files.check_utf8(blank, "train")


@pytest.mark.parametrize(("changes", "message"), [
    ({"column_names": ["sentence", "sentence"]}, r"data\.column_names: names repeat"),
    ({"column_names": ["text", "label"]}, r"data\.column_names: \['text', 'label'\] lacks "
                                          r"\['sentence'\]"),
    ({"column_names": ["sentence", "label"], "train": "t.json", "eval": "e.json"},
     r"data\.column_names: only csv/tsv files have a header row"),
    ({"column_names": ["sentence", "label"], "dataset": "x", "train": "train",
      "eval": "validation"},
     r"data\.column_names: only for local csv/tsv files"),
])
def test_column_names_are_validated(changes, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig(**{"train": "t.tsv", "eval": "e.tsv", **changes})


def test_empty_label_cells_and_empty_texts(tmp_path):
    rows = [{"sentence": "good", "label": "positive"}, {"sentence": "", "label": "negative"},
            {"sentence": "bad", "label": None}]
    cfg = DataConfig(**_files(tmp_path, "jsonl", rows, n_eval=1),
                     label_names=["negative", "positive"], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"data\.label_column: the 'label' cell is empty at "
                                          r"line 3 of .*train\.jsonl"):
        load_raw_splits(cfg)
    (tmp_path / "texts").mkdir()
    cfg = DataConfig(**_files(tmp_path / "texts", "jsonl", rows[:2] + [rows[0]], n_eval=1),
                     label_names=["negative", "positive"], cache_dir=str(tmp_path / "cache"))
    notes = []
    raw = load_raw_splits(cfg, notes)
    assert raw["train"]["sentence"] == ["good", "good"]
    assert notes == ["data.train: dropped 1 of 3 rows with an empty text (sentence)"]
