"""Teachers that read the text through their own tokenizer (``teacher.tokenizer: own``).

The student uses tests/tiny.py's word tokenizer; the "other" teacher a word-piece
vocabulary in another order, with pad id 1 and "good"/"great" split in two, so its
token ids, sequence lengths and padding all differ from the student's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from tiny import (
    FILLER_WORDS,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    SENTIMENT_LABELS,
    one_line_error,
    write_sentiment_tsv,
    write_tiny_classifier,
)
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig
from textdistill.build import build
from textdistill.cli import main
from textdistill.data import add_teacher_columns
from textdistill.data.batching import pad_batch, teacher_batch
from textdistill.errors import ConfigError
from textdistill.losses import get_loss, is_sentence_level, register_loss
from textdistill.plan import plan
from textdistill.recipe import load_recipe
from textdistill.runner import make_distiller
from textdistill.teacher_cache import data_fingerprint

OTHER_PAD = 1
# Another order than tiny.TEXT_VOCAB, [PAD] at 1, and two words only as two pieces.
SPLIT_WORDS = ("good", "great")
OTHER_VOCAB = ("[UNK]", "[PAD]", "[SEP]", "[CLS]", "[MASK]", "go", "##od", "gr", "##eat",
               *sorted({*FILLER_WORDS, *POSITIVE_WORDS, *NEGATIVE_WORDS} - set(SPLIT_WORDS),
                       reverse=True), ".", ",")
TRAIN = {"batch_size": 8, "lr": 3e-3, "warmup": 0.0, "logging_steps": 1, "save_steps": 1000,
         "report_to": [], "progress_bar": False, "save_total_limit": 1}


def write_other_classifier(directory: Path, *, hidden_size: int = 24, seed: int = 7,
                           mask_token: str = "[MASK]") -> Path:
    """A tiny BERT classifier with the other tokenizer, saved as a model directory."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    words = [mask_token if word == "[MASK]" else word for word in OTHER_VOCAB]
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    # transformers 5: ``vocab=`` (``vocab_file=`` is silently ignored).
    BertTokenizer(vocab=str(vocab), pad_token="[PAD]",
                  mask_token=mask_token).save_pretrained(directory)
    torch.manual_seed(seed)
    names = list(SENTIMENT_LABELS)
    config = BertConfig(vocab_size=len(OTHER_VOCAB), hidden_size=hidden_size,
                        num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=hidden_size * 2, max_position_embeddings=128,
                        num_labels=2, pad_token_id=OTHER_PAD, id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    train, dev = write_sentiment_tsv(root / "sst", n_train=48, n_eval=16)
    return types.SimpleNamespace(
        root=root, train=train, dev=dev,
        student=write_tiny_classifier(root / "student", labels=None, seed=0),
        same=write_tiny_classifier(root / "same", seed=3),
        other=write_other_classifier(root / "other"))


def _recipe(ws, path: Path, *, teacher, tokenizer="own", distill=None, **train) -> str:
    sections = {
        "teacher": {"model": teacher, **({"tokenizer": tokenizer} if tokenizer else {})},
        "student": {"pretrained": str(ws.student)},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": list(SENTIMENT_LABELS), "max_length": 12,
                 "cache_dir": str(ws.root / "hf-cache")},
        "distill": distill or {"temperature": 2.0},
        "train": {**TRAIN, "max_steps": 2, **train},
        "output": {"dir": str(path.with_suffix(""))},
    }
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return str(path)




def _train_cfg(tmp_path, name: str, **changes) -> TrainingConfig:
    values = {"output_dir": str(tmp_path / name), "max_steps": 3, "group_by_length": False,
              **{k: v for k, v in TRAIN.items() if k != "save_steps"}, **changes}
    return TrainingConfig(**values)


# ---------------------------------------------------------------------- columns, padding


def test_pad_batch_pads_each_teacher_with_its_pad_id_and_teacher_batch_routes_them():
    features = {"input_ids": [[2, 5, 3], [2, 3]], "labels": [0, 1],
                "t1_input_ids": [[3, 9, 9, 9, 2], [3, 2]],
                "t1_token_type_ids": [[0] * 5, [0, 0]]}
    batch = pad_batch(features, pad_token_id=0, teacher_pad_ids={1: OTHER_PAD})
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["t1_input_ids"].tolist() == [[3, 9, 9, 9, 2], [3, 2, 1, 1, 1]]
    assert batch["t1_attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    view = teacher_batch(batch, 1)
    assert set(view) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert view["input_ids"] is batch["t1_input_ids"]
    assert view["labels"] is batch["labels"]
    # The same columns without a pad id for their teacher would pad with a wrong id.
    with pytest.raises(ValueError, match=r"token columns for teacher\(s\) \[1\]"):
        pad_batch(features, pad_token_id=0)
    with pytest.raises(ValueError, match="teacher 0 reads .* no t0_input_ids column"):
        teacher_batch(batch, 0)


def test_add_teacher_columns_tokenizes_the_same_texts_row_for_row(ws):
    tokenizer = BertTokenizer.from_pretrained(ws.other)
    raw = datasets.Dataset.from_dict({"sentence": ["good movie", "the plot was great fun",
                                                   None]})
    student = raw.map(lambda b: {"input_ids": [[2, 3]] * len(b["sentence"])}, batched=True)
    out = add_teacher_columns(student, tokenizer, 1, text_columns=["sentence"], max_length=5)
    assert out.column_names == ["sentence", "input_ids", "t1_input_ids",
                                "t1_attention_mask", "t1_token_type_ids"]
    assert out["t1_input_ids"][0] == tokenizer("good movie")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(out["t1_input_ids"][0])[1:3] == ["go", "##od"]
    assert len(out["t1_input_ids"][1]) == 5  # truncated like the student's columns
    assert out["t1_input_ids"][2] == tokenizer("")["input_ids"]
    # A tokenized split without its text reads it from texts=.
    splits = datasets.DatasetDict({"train": student.remove_columns("sentence")})
    again = add_teacher_columns(splits, tokenizer, 1, text_columns=["sentence"],
                                max_length=5, texts=datasets.DatasetDict({"train": raw}))
    assert again["train"]["t1_input_ids"] == out["t1_input_ids"]
    with pytest.raises(ValueError, match="no text column 'sentence'"):
        add_teacher_columns(splits["train"], tokenizer, 1, text_columns=["sentence"],
                            max_length=5)


# ------------------------------------------------------------------------ the recipe


def test_build_writes_own_columns_and_the_teacher_reads_them_live_and_cached(ws, tmp_path):
    built = build(load_recipe(_recipe(ws, tmp_path / "r.yaml", teacher=str(ws.other))),
                  "distill")
    train = built.data["train"]
    assert set(built.teacher_tokenizers) == {0}
    assert {"input_ids", "t0_input_ids", "t0_attention_mask"} <= set(train.column_names)
    other = built.teacher_tokenizers[0]
    assert train["t0_input_ids"] != train["input_ids"]
    assert any(len(t) != len(s) for t, s in zip(train["t0_input_ids"], train["input_ids"]))
    assert all(len(ids) <= 12 for ids in train["t0_input_ids"])

    teacher = built.teachers[0]
    distiller = make_distiller(built, _train_cfg(tmp_path, "predict"))
    # The teacher's logits are those of its own token ids, one example at a time.
    predicted = distiller.predict(train, teacher)["logits"]
    with torch.no_grad():
        direct = torch.cat([teacher(input_ids=torch.tensor([ids])).logits
                            for ids in train["t0_input_ids"]])
    torch.testing.assert_close(predicted, direct, atol=1e-5, rtol=1e-5)
    assert other.pad_token_id == OTHER_PAD == distiller.teacher_pad_ids[0]

    # The cache is keyed by the teacher's own ids: other student ids, same key.
    shuffled_student = train.map(lambda row: {"input_ids": row["input_ids"][::-1]})
    assert data_fingerprint(shuffled_student, ["t0_"]) == data_fingerprint(train, ["t0_"])
    assert data_fingerprint(shuffled_student) != data_fingerprint(train)

    initial = copy.deepcopy(built.student)

    def run(name, cache):
        # A fixed padding length: the cache's inference batches pad otherwise than the
        # training batches, which moves the logits by float rounding.
        fresh = dataclasses.replace(built, student=copy.deepcopy(initial))
        distiller = make_distiller(fresh, _train_cfg(tmp_path, name, teacher_cache=cache,
                                                     pad_to=16))
        return distiller.train(train)

    live, cached = run("live", False), run("cached", True)
    assert list((tmp_path / "cached" / "teacher_cache").glob("logits-*.safetensors"))
    for key in ("loss/kd", "loss/hard"):
        torch.testing.assert_close(torch.tensor(cached.series(key)[1]),
                                   torch.tensor(live.series(key)[1]), atol=1e-5, rtol=1e-5)


def test_augmented_masks_are_each_tokenizers_own_mask_token(ws, tmp_path):
    # The teacher's mask token is MPNet-like "<mask>"; the student's is "[MASK]". Each
    # model must read a masked word as its own mask token, not as characters or [UNK].
    teacher = write_other_classifier(tmp_path / "mpnet-like", mask_token="<mask>")
    recipe = load_recipe(_recipe(ws, tmp_path / "r.yaml", teacher=str(teacher)))
    augment = {"copies": 1, "mask_prob": 1.0, "replace_prob": 0.0, "ngram_prob": 0.0}
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(
        recipe.data, augment=dataclasses.replace(recipe.data.augment, **augment)))
    built = build(recipe, "distill")
    train, student_tok = built.data["train"], built.tokenizer
    teacher_tok = built.teacher_tokenizers[0]
    originals = len(train) // 2
    for row in range(originals, len(train)):  # every word of a variant is masked
        student_ids = set(train["input_ids"][row]) - set(student_tok.all_special_ids)
        teacher_ids = set(train["t0_input_ids"][row]) - set(teacher_tok.all_special_ids)
        assert student_ids == set() and teacher_ids == set(), row
        assert student_tok.mask_token_id in train["input_ids"][row]
        assert teacher_tok.mask_token_id in train["t0_input_ids"][row]
    assert student_tok.unk_token_id not in {i for ids in train["input_ids"] for i in ids}


@pytest.mark.parametrize(("match", "fragment"), [
    ({"feature": "hidden", "student_layer": 2, "teacher_layer": 2},
     "compares hidden states token by token (hidden_mse)"),
    ({"feature": "attention", "student_layer": 1, "teacher_layer": 1, "loss": "attention_kl"},
     "compares attention maps"),
])
def test_check_refuses_token_level_matches_across_tokenizers(ws, tmp_path, capsys, match,
                                                             fragment):
    recipe = _recipe(ws, tmp_path / "r.yaml", teacher=str(ws.other),
                     distill={"intermediate_weight": 1.0, "matches": [match]})
    capsys.readouterr()
    assert main(["check", recipe]) == 2
    one_line_error(capsys, "distill.matches[0]: teacher 0 reads the text through its own "
                    "tokenizer", fragment, "use logit losses or a sentence-level hidden "
                    "match (loss: pkd")


def test_shared_tokenizers_that_differ_are_still_the_vocabulary_error_with_a_hint(
        ws, tmp_path, capsys):
    recipe = _recipe(ws, tmp_path / "r.yaml", teacher=str(ws.other), tokenizer=None)
    capsys.readouterr()
    assert main(["check", recipe]) == 2
    one_line_error(capsys, "student.pretrained: teacher and student tokenizers differ",
                    "set teacher.tokenizer: own")
    teachers = _recipe(ws, tmp_path / "t.yaml", teacher=[str(ws.same), str(ws.other)],
                       tokenizer="shared")
    assert main(["check", teachers]) == 2
    one_line_error(capsys, "teacher.model[1]: shares no tokenizer with teacher.model[0]",
                    "set teacher.tokenizer: own")


def test_pkd_on_the_first_token_trains_across_tokenizers_with_a_projection(ws, tmp_path):
    assert is_sentence_level("pkd") and not is_sentence_level("hidden_mse")
    match = {"feature": "hidden", "student_layer": 2, "teacher_layer": 2, "loss": "pkd"}
    recipe = _recipe(ws, tmp_path / "pkd.yaml", teacher=str(ws.other), max_steps=6,
                     distill={"intermediate_weight": 1.0, "matches": [match]})
    assert main(["distill", recipe]) == 0
    run = tmp_path / "pkd"
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    key = "loss/hidden_s2_t2/pkd"
    values = [record[key] for record in history["train"] if key in record]
    assert len(values) == 6 and all(0 < v < 4 for v in values)
    assert values[-1] < values[0]
    # The student (32 wide) is projected to the teacher's width (24).
    built = build(load_recipe(recipe, ["output.overwrite=true"]), "distill", load_data=False)
    resolved = plan(built.recipe.distill, built.student, built.teachers,
                    own_tokenizer=built.teacher_tokenizers)
    assert list(resolved.projections) == ["hidden_s2_t2/pkd"]


def test_multi_teacher_with_mixed_tokenizers(ws, tmp_path):
    """Teacher 0 encodes like the student (its columns, and token-level matches with it
    are fine); teacher 1 reads its own columns and is refused a token-level match."""
    seen = []

    def recording_kd(student, teacher, mask=None, *, temperature=1.0, **_):
        seen.append(teacher.detach().clone())
        return get_loss("kd_kl")(student, teacher, mask, temperature=temperature)

    register_loss("recording_kd_cross", recording_kd, overwrite=True)
    hidden_0 = {"feature": "hidden", "student_layer": 1, "teacher_layer": 1}
    recipe = load_recipe(_recipe(
        ws, tmp_path / "multi.yaml", teacher=[str(ws.same), str(ws.other)],
        distill={"logit_loss": "recording_kd_cross", "teacher_weights": [3.0, 1.0],
                 "intermediate_weight": 0.1, "matches": [hidden_0]}))
    built = build(recipe, "distill")
    assert set(built.teacher_tokenizers) == {1}
    assert any("teacher.model[0] encodes text like the student" in n for n in built.notes)
    train = built.data["train"]
    assert "t1_input_ids" in train.column_names and "t0_input_ids" not in train.column_names

    distiller = make_distiller(built, _train_cfg(tmp_path, "multi", max_steps=1))
    history = distiller.train(train)
    assert "loss/hidden_s1_t1/hidden_mse" in history.train[0]
    live = [distiller.predict(train, t)["logits"] for t in built.teachers]
    from textdistill.data.batching import BatchPlan
    order = BatchPlan(tuple(len(x) for x in train["input_ids"]), 8, seed=42,
                      group_by_length=False).global_batches(0)[0]
    expected = 0.75 * live[0] + 0.25 * live[1]
    torch.testing.assert_close(seen[0].cpu(), expected[order], atol=1e-5, rtol=1e-5)

    token_level_1 = DistillationConfig(matches=[Match("hidden", 1, 1, teacher_index=1)])
    with pytest.raises(ConfigError, match=r"distill\.matches\[0\]: teacher 1 reads"):
        plan(token_level_1, built.student, built.teachers, own_tokenizer={1})
    with pytest.raises(ConfigError, match="teacher 1 reads"):
        Distiller(built.teachers, built.student, token_level_1,
                  _train_cfg(tmp_path, "refused"), tokenizer=built.tokenizer,
                  teacher_tokenizers=built.teacher_tokenizers)
