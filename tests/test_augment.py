"""Transfer-set augmentation: the variants, the config, build() and a tiny distill run."""

from __future__ import annotations

import json
import math
import types

import datasets
import pytest
import torch
from tiny import (
    FILLER_WORDS,
    TEXT_VOCAB,
    sentiment_rows,
    text_tokenizer,
    write_sentiment_tsv,
    write_tiny_classifier,
)

from textdistill.build import build
from textdistill.cli import main
from textdistill.config import ConfigError
from textdistill.data import AugmentConfig, augment_dataset, neighbour_table
from textdistill.data.batching import model_inputs
from textdistill.prepare import IGNORE_INDEX
from textdistill.recipe import apply_overrides, recipe_from_dict

MASK = "[MASK]"
# What the code before concatenation existed made of test_concatenation_off_...'s row.
PINNED_SEED7 = ["the [MASK] [MASK] [MASK]", "good film was", "[MASK] very good"]


pytestmark = pytest.mark.usefixtures("quiet_datasets")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return text_tokenizer(tmp_path_factory.mktemp("tok"))


def _rows(n: int = 12, seed: int = 0) -> datasets.Dataset:
    rows = sentiment_rows(n, seed)
    return datasets.Dataset.from_dict({"sentence": [s for s, _ in rows],
                                       "label": [y for _, y in rows],
                                       "source_id": [100 + i for i in range(n)]})


def _embeddings(tokenizer, seed: int = 0, close: dict[str, str] | None = None) -> torch.Tensor:
    """Random (V, 16) embeddings; each ``close`` key gets a near copy of its value's row."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(tokenizer), 16, generator=g)
    for word, twin in (close or {}).items():
        weights[tokenizer.convert_tokens_to_ids(word)] = \
            weights[tokenizer.convert_tokens_to_ids(twin)] + 0.01
    return weights


# ------------------------------------------------------------------------- the variants


def test_originals_first_then_copies_per_row(tokenizer):
    data = _rows(12)
    config = AugmentConfig(copies=3, seed=1)
    out = augment_dataset(data, ["sentence"], config, tokenizer, _embeddings(tokenizer))
    assert len(out) == 12 * (1 + 3)
    assert out.column_names == ["sentence", "label", "source_id", "augmented"]
    originals = out.select(range(12))
    assert originals["sentence"] == data["sentence"] and originals["label"] == data["label"]
    assert originals["augmented"] == [False] * 12
    variants = out.select(range(12, len(out)))
    assert variants["augmented"] == [True] * 36
    # Row i's copies sit together, carrying its other columns (its label too).
    assert variants["source_id"] == [100 + i for i in range(12) for _ in range(3)]
    assert variants["label"] == [y for y in data["label"] for _ in range(3)]
    changed = sum(v != data["sentence"][i // 3] for i, v in enumerate(variants["sentence"]))
    assert changed >= 30, "variants are regenerated until they differ (bounded)"


def test_off_keeps_the_rows_and_adds_the_flag(tokenizer):
    data = _rows(5)
    out = augment_dataset(data, ["sentence"], AugmentConfig(), tokenizer)
    assert out["sentence"] == data["sentence"] and out["augmented"] == [False] * 5


def test_same_seed_same_output_and_fingerprint_other_seed_differs(tokenizer):
    data, weights = _rows(20), _embeddings(tokenizer)
    config = AugmentConfig(copies=2, replace_prob=0.3, seed=7)
    first = augment_dataset(data, ["sentence"], config, tokenizer, weights)
    again = augment_dataset(data, ["sentence"], config, tokenizer, weights)
    assert first["sentence"] == again["sentence"]
    # A stable fingerprint keeps datasets' map cache and the teacher-logit cache valid.
    assert first._fingerprint == again._fingerprint
    # Generated row by row, not from a stream over the batch: the batch size does not
    # change a row's variants.
    small = augment_dataset(data.select(range(5)), ["sentence"], config, tokenizer, weights)
    assert small["sentence"][5:] == first["sentence"][20:30]
    other = augment_dataset(data, ["sentence"], AugmentConfig(copies=2, replace_prob=0.3,
                                                              seed=8), tokenizer, weights)
    assert other["sentence"][:20] == first["sentence"][:20]
    assert other["sentence"][20:] != first["sentence"][20:]
    assert other._fingerprint != first._fingerprint


def test_mask_rate_on_a_long_sentence(tokenizer):
    words = [FILLER_WORDS[i % len(FILLER_WORDS)] for i in range(4000)]
    data = datasets.Dataset.from_dict({"sentence": [" ".join(words)], "label": [0]})
    config = AugmentConfig(copies=1, mask_prob=0.3, replace_prob=0.0, ngram_prob=0.0)
    variant = augment_dataset(data, ["sentence"], config, tokenizer)["sentence"][1].split()
    assert len(variant) == len(words)
    assert variant.count(MASK) / len(words) == pytest.approx(0.3, abs=0.03)
    kept = [w for w, v in zip(words, variant) if v != MASK]
    assert kept == [v for v in variant if v != MASK], "unmasked words are untouched"


def test_replacement_uses_the_embedding_neighbours(tokenizer):
    weights = _embeddings(tokenizer, close={"great": "good", "awful": "bad"})
    table = neighbour_table(["good", "bad", "good", ",", "[MASK]", "zebra", "movie"],
                            tokenizer, weights, k=1)
    assert table["good"] == ("great",) and table["bad"] == ("awful",)
    # Punctuation, special tokens and words outside the vocabulary get no entry.
    assert set(table) == {"good", "bad", "movie"}
    wide = neighbour_table(["movie"], tokenizer, weights, k=len(TEXT_VOCAB))
    specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", MASK}
    assert "movie" not in wide["movie"] and not specials & set(wide["movie"])
    assert not {".", ","} & set(wide["movie"])

    data = datasets.Dataset.from_dict({"sentence": ["good bad good", "the good film"],
                                       "label": [1, 1]})
    config = AugmentConfig(copies=3, mask_prob=0.0, replace_prob=1.0, neighbours=1,
                           ngram_prob=0.0)
    variants = augment_dataset(data, ["sentence"], config, tokenizer, weights)["sentence"][2:]
    assert variants[:3] == ["great awful great"] * 3
    for variant in variants[3:]:
        assert variant.split()[1] == "great"
    # Without the embedding matrix nothing can be replaced: the copies stay the source.
    same = augment_dataset(data, ["sentence"], config, tokenizer)["sentence"][2:]
    assert same == ["good bad good"] * 3 + ["the good film"] * 3


def test_ngram_spans_stay_within_bounds(tokenizer):
    long = "the a movie film was is it plot acting i very quite"
    data = datasets.Dataset.from_dict({"sentence": [long, "the cat sat"], "label": [0, 1]})
    config = AugmentConfig(copies=30, mask_prob=0.0, replace_prob=0.0, ngram_prob=1.0,
                           ngram=[2, 4])
    out = augment_dataset(data, ["sentence"], config, tokenizer)["sentence"]
    lengths = set()
    for variant in out[2:32]:
        assert f" {variant} " in f" {long} ", "a contiguous span of the source"
        lengths.add(len(variant.split()))
    assert lengths == {2, 3, 4}
    for variant in out[32:]:  # 3 words: spans of 2 or 3 (the whole) words
        assert f" {variant} " in " the cat sat " and len(variant.split()) in (2, 3)


def test_concatenation_appends_another_row_of_the_split(tokenizer):
    sources = ["good film", "bad plot", "the acting", "very quite"]
    data = datasets.Dataset.from_dict({"sentence": sources, "label": [1, 0, 1, 0]})
    config = AugmentConfig(copies=20, mask_prob=0.0, replace_prob=0.0, ngram_prob=0.0,
                           concat_prob=1.0)
    out = augment_dataset(data, ["sentence"], config, tokenizer)
    partners = set()
    for row, source in enumerate(sources):
        for variant in out["sentence"][4 + 20 * row: 4 + 20 * (row + 1)]:
            head, tail = variant[:len(source)], variant[len(source) + 1:]
            assert head == source and tail in sources, variant
            partners.add(tail)
    assert partners == set(sources), "partners are drawn from the whole split"
    assert out["label"][4:24] == [1] * 20, "a variant keeps its source's (unused) label"
    # At 0.5 about half the variants are longer than their source, the rest unchanged
    # in length; the same config gives the same variants.
    half = AugmentConfig(copies=200, mask_prob=0.5, replace_prob=0.0, ngram_prob=0.0,
                         concat_prob=0.5)
    variants = augment_dataset(data, ["sentence"], half, tokenizer)["sentence"][4:204]
    joined = sum(len(v.split()) == 4 for v in variants)
    assert 70 <= joined <= 130
    assert variants == augment_dataset(data, ["sentence"], half, tokenizer)["sentence"][4:204]


def test_concatenation_off_keeps_the_variants_it_had_before(tokenizer):
    # concat_prob 0 draws no extra random numbers: older transfer sets (and their
    # teacher-logit caches) are reproduced exactly. Pinned on a fixed output.
    data = datasets.Dataset.from_dict({"sentence": ["the good film was very good"],
                                       "label": [1]})
    config = AugmentConfig(copies=3, mask_prob=0.3, replace_prob=0.0, ngram_prob=0.5,
                           seed=7)
    out = augment_dataset(data, ["sentence"], config, tokenizer)["sentence"][1:]
    assert out == PINNED_SEED7


def test_sentence_pairs_are_perturbed_column_by_column(tokenizer):
    data = datasets.Dataset.from_dict({"premise": ["the movie was good"] * 4,
                                       "hypothesis": ["it was bad"] * 4,
                                       "label": ["entailment"] * 4})
    config = AugmentConfig(copies=2, mask_prob=0.5, replace_prob=0.0, ngram_prob=0.0)
    out = augment_dataset(data, ["premise", "hypothesis"], config, tokenizer)
    assert len(out) == 12 and out["label"] == ["entailment"] * 12
    for premise, hypothesis in zip(out["premise"][4:], out["hypothesis"][4:]):
        assert len(premise.split()) == 4 and len(hypothesis.split()) == 3
    masks = [(p.count(MASK), h.count(MASK)) for p, h in zip(out["premise"][4:],
                                                              out["hypothesis"][4:])]
    assert len(set(masks)) > 1, "each text draws its own masks"


def test_augment_errors(tokenizer):
    data = _rows(3)
    with pytest.raises(ValueError, match=r"text column\(s\) \['text'\] not in the dataset"):
        augment_dataset(data, ["text"], AugmentConfig(copies=1), tokenizer)
    flagged = augment_dataset(data, ["sentence"], AugmentConfig(), tokenizer)
    with pytest.raises(ValueError, match="already has an 'augmented' column"):
        augment_dataset(flagged, ["sentence"], AugmentConfig(copies=1), tokenizer)
    no_mask = types.SimpleNamespace(mask_token=None)
    with pytest.raises(ConfigError, match=r"^data.augment.mask_prob: the tokenizer has no"):
        augment_dataset(data, ["sentence"], AugmentConfig(copies=1), no_mask)


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize("changes, message", [
    ({"mask_prob": 1.5}, "data.augment.mask_prob: must be in [0, 1], got 1.5"),
    ({"replace_prob": -0.1}, "data.augment.replace_prob: must be in [0, 1], got -0.1"),
    ({"ngram_prob": True}, "data.augment.ngram_prob: must be in [0, 1], got True"),
    ({"copies": -1}, "data.augment.copies: must be >= 0, got -1"),
    ({"copies": 1.5}, "data.augment.copies: expected an integer, got 1.5"),
    ({"neighbours": 0}, "data.augment.neighbours: must be >= 1, got 0"),
    ({"ngram": [0, 5]}, "data.augment.ngram: need 1 <= min <= max, got [0, 5]"),
    ({"ngram": [4, 2]}, "data.augment.ngram: need 1 <= min <= max, got [4, 2]"),
    ({"ngram": [3]}, "data.augment.ngram: expected two integers [min, max], got [3]"),
    ({"ngram": [1, 2.5]}, "data.augment.ngram: expected two integers [min, max], got"),
    ({"ngram": 3}, "data.augment.ngram: expected two integers [min, max], got 3"),
    ({"concat_prob": 2}, "data.augment.concat_prob: must be in [0, 1], got 2"),
    ({"copies": 2, "mask_prob": 0, "replace_prob": 0, "ngram_prob": 0},
     "data.augment.copies: with mask_prob, replace_prob, ngram_prob and concat_prob all 0"),
])
def test_config_validation_names_the_key(changes, message):
    with pytest.raises(ConfigError) as info:
        AugmentConfig(**changes)
    assert str(info.value).startswith(message)


def _raw_recipe(**data) -> dict:
    return {"teacher": {"model": "someone/bert-sst2"},
            "student": {"from_teacher": [0]},
            "data": {"dataset": "stanfordnlp/sst2", **data},
            "output": {"dir": "runs/x"}}


def test_recipe_section_overrides_and_dump(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = recipe_from_dict(_raw_recipe(augment={"copies": 2, "mask_prob": 0.2}))
    assert recipe.data.augment == AugmentConfig(copies=2, mask_prob=0.2)
    assert recipe_from_dict(_raw_recipe()).data.augment == AugmentConfig()

    changed = apply_overrides(_raw_recipe(), ["data.augment.copies=3",
                                              "data.augment.ngram_prob=0.5",
                                              "data.augment.ngram=[2, 3]"])
    augment = recipe_from_dict(changed).data.augment
    assert augment.copies == 3 and augment.ngram_prob == 0.5 and augment.ngram == [2, 3]

    dumped = recipe_from_dict(changed).to_dict()
    assert dumped["data"]["augment"]["copies"] == 3
    assert dumped["data"]["augment"]["ngram"] == [2, 3]
    assert recipe_from_dict(dumped).data.augment == augment

    with pytest.raises(ConfigError) as info:
        recipe_from_dict(_raw_recipe(augment={"copy": 2}))
    assert str(info.value).startswith("unknown key data.augment.copy; valid keys: [")
    assert "'copies'" in str(info.value) and "'mask_prob'" in str(info.value)
    with pytest.raises(ConfigError, match=r"^--set data.augment.copy: unknown key "
                                          r"data.augment.copy; valid keys: \["):
        apply_overrides(_raw_recipe(), ["data.augment.copy=2"])
    with pytest.raises(ConfigError, match=r"^data.augment.mask_prob: must be in \[0, 1\]"):
        recipe_from_dict(apply_overrides(_raw_recipe(), ["data.augment.mask_prob=1.5"]))
    with pytest.raises(ConfigError, match=r"^data.augment: expected a mapping"):
        recipe_from_dict(_raw_recipe(augment=2))


# ---------------------------------------------------------------------------- build


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment")
    train, dev = write_sentiment_tsv(root / "sst", n_train=40, n_eval=16)
    return types.SimpleNamespace(root=root, train=train, dev=dev, cache=root / "hf-cache",
                                 teacher=write_tiny_classifier(root / "teacher", seed=1))


def _recipe(ws, copies: int, **extra):
    return recipe_from_dict({
        "teacher": {"model": str(ws.teacher)},
        "student": {"from_teacher": [0]},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": ["negative", "positive"], "max_length": 32,
                 "cache_dir": str(ws.cache), "augment": {"copies": copies, "seed": 3}},
        "train": {"report_to": [], "progress_bar": False},
        "output": {"dir": str(ws.root / "run")}, **extra})


def test_build_distill_unlabels_augmented_rows(ws):
    plain = build(_recipe(ws, 0), "distill")
    built = build(_recipe(ws, 2), "distill")
    train, plain_train = built.data["train"], plain.data["train"]
    assert len(train) == 40 * 3
    assert train["augmented"] == [False] * 40 + [True] * 80
    assert train["labels"][:40] == plain_train["labels"]
    assert train["labels"][40:] == [IGNORE_INDEX] * 80
    assert train["input_ids"][:40] == plain_train["input_ids"]
    assert "transfer set: 40 examples + 80 augmented (copies=2)" in built.notes
    # Only the train split grows; eval keeps its ClassLabel and its labels.
    assert len(built.data["eval"]) == 16
    assert built.data["eval"]["labels"] == plain.data["eval"]["labels"]
    assert built.data["eval"].features["labels"].names == ["negative", "positive"]
    # The flag never reaches the model, and the teacher-logit cache's key is stable.
    seen = model_inputs(train)
    assert set(seen.column_names) <= {"input_ids", "attention_mask", "token_type_ids",
                                      "labels"}
    again = model_inputs(build(_recipe(ws, 2), "distill").data["train"])
    assert again._fingerprint == seen._fingerprint
    assert again["input_ids"] == seen["input_ids"]


def test_finetune_refuses_augmentation(ws):
    with pytest.raises(ConfigError, match=r"^data.augment.copies: 1, but augmented sentences "
                                          r"have no gold labels.*textdistill distill"):
        build(_recipe(ws, 1), "finetune")


def test_tiny_distill_run_trains_on_the_transfer_set(ws, tmp_path, capsys):
    import yaml

    run = tmp_path / "run"
    recipe = tmp_path / "augment.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": {"model": str(ws.teacher)},
        "student": {"from_teacher": [1]},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": ["negative", "positive"], "max_length": 32,
                 "cache_dir": str(ws.cache)},
        "distill": {"logit_loss": "dkd", "probability_shift": True, "matches": "last"},
        "train": {"max_steps": 4, "batch_size": 16, "report_to": [], "progress_bar": False,
                  "logging_steps": 1, "cache_teacher": True, "save_total_limit": 1},
        "output": {"dir": str(run)},
    }), encoding="utf-8")
    assert main(["distill", str(recipe), "--set", "data.augment.copies=1"]) == 0
    assert "note: transfer set: 40 examples + 40 augmented (copies=1)" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["train_examples"] == 2 * 40 and results["eval_examples"] == 16
    assert len(list((run / "teacher_cache").glob("logits-*.safetensors"))) == 1
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    assert len(history["train"]) == 4
    for record in history["train"]:
        assert all(math.isfinite(record[k]) for k in ("loss", "loss/kd", "loss/hard"))
    saved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["augment"]["copies"] == 1
