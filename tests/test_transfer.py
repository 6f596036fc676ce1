"""Unlabeled transfer data (data.transfer) and the pseudo-label loss (pseudo_ce)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import types

import datasets
import numpy as np
import pytest
import torch
import yaml
from tiny import write_sentiment_tsv, write_tiny_classifier

import textdistill.losses as losses
from textdistill.build import build
from textdistill.cli import main
from textdistill.data import DataConfig, TransferConfig, load_transfer, train_sources
from textdistill.data.transfer import (
    TRANSFER_COLUMN,
    append_transfer,
    drop_leaks,
)
from textdistill.errors import ConfigError
from textdistill.prepare import IGNORE_INDEX
from textdistill.recipe import apply_overrides, recipe_from_dict

TEXTS = ["the movie was good", "a boring plot", "i loved the acting", "worst film",
         "quite fun", "the cat sat on the mat"]


pytestmark = pytest.mark.usefixtures("quiet_datasets")


def _write(path, fmt: str, texts=TEXTS, column: str = "text"):
    """``texts`` as a transfer file of format ``fmt``, with a label column to be dropped."""
    rows = [{column: t, "label": i % 2} for i, t in enumerate(texts)]
    if fmt == "txt":
        # A blank line and a trailing newline: skipped, not empty texts.
        path.write_text("\n".join(texts[:2]) + "\n\n" + "\n".join(texts[2:]) + "\n",
                        encoding="utf-8")
    elif fmt in ("csv", "tsv"):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[column, "label"],
                                    delimiter="," if fmt == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def _data(tmp_path, **transfer) -> DataConfig:
    return DataConfig(train=str(tmp_path / "train.tsv"), eval=str(tmp_path / "dev.tsv"),
                      cache_dir=str(tmp_path / "hf-cache"), transfer=transfer)


# -------------------------------------------------------------------------- the config


def test_every_field_has_help():
    for item in dataclasses.fields(TransferConfig):
        assert item.metadata.get("help", "").strip(), item.name


def _raw_recipe(**transfer) -> dict:
    return {"teacher": {"model": "someone/bert-sst2"},
            "student": {"from_teacher": [0]},
            "data": {"dataset": "stanfordnlp/sst2", "transfer": transfer},
            "output": {"dir": "runs/x"}}


@pytest.mark.parametrize("transfer, message", [
    ({"files": ["a.docx"]}, "data.transfer.files[0]: cannot tell the format of"),
    ({"files": "a.txt"}, "data.transfer.files: expected a list"),
    ({"files": ["a.txt"], "dataset": "x/y"}, "data.transfer: set either files or dataset"),
    ({"dataset_config": "sst2"}, "data.transfer.dataset_config: only used with"),
    ({"dataset": "x/y", "split": "u.csv"}, "data.transfer.split: 'u.csv' looks like a file"),
    ({"files": ["a.txt"], "max_samples": 0}, "data.transfer.max_samples: must be > 0"),
    ({"files": ["a.txt"], "max_samples": 2.5}, "data.transfer.max_samples: expected an "
                                               "integer"),
    ({"files": ["a.txt"], "seed": -1}, "data.transfer.seed: must be >= 0"),
    ({"files": ["a.txt"], "leak_guard": "yes"}, "data.transfer.leak_guard: expected "
                                                "true/false"),
    ({"files": ["a.csv"], "text_columns": ["a", "b"]}, "data.transfer.text_columns: give as "
                                                       "many columns as data.text_columns"),
    ({"max_sample": 3}, "unknown key data.transfer.max_sample; valid keys: ["),
])
def test_config_errors_name_the_key(transfer, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        recipe_from_dict(_raw_recipe(**transfer))
    assert str(info.value).startswith(message), str(info.value)


def test_txt_refused_for_sentence_pairs_and_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = _raw_recipe(files=["u.csv", "u.txt"])
    raw["data"]["text_columns"] = ["premise", "hypothesis"]
    with pytest.raises(ConfigError, match=r"^data.transfer.files\[1\]: a .txt file holds one "
                                          r"text per line, but data.text_columns names a "
                                          r"sentence pair"):
        recipe_from_dict(raw)
    recipe = recipe_from_dict(_raw_recipe(files=["u.txt"], max_samples=5))
    assert recipe.data.transfer == TransferConfig(files=[str(tmp_path / "u.txt")],
                                                  max_samples=5)
    assert recipe.data.transfer.enabled and not recipe_from_dict(_raw_recipe()).data \
        .transfer.enabled
    # Dumped and read back (the run directory's recipe.yaml), and --set reaches the keys.
    assert recipe_from_dict(recipe.to_dict()).data.transfer == recipe.data.transfer
    changed = apply_overrides(_raw_recipe(files=["u.txt"]), ["data.transfer.leak_guard=false",
                                                             "data.transfer.seed=4"])
    transfer = recipe_from_dict(changed).data.transfer
    assert transfer.leak_guard is False and transfer.seed == 4


# ------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "json", "jsonl", "parquet"])
def test_each_file_format_loads_the_texts_in_order(fmt, tmp_path):
    path = _write(tmp_path / f"unlabeled.{fmt}", fmt)
    options = {} if fmt == "txt" else {"text_columns": ["text"]}
    texts = load_transfer(_data(tmp_path, files=[str(path)], **options))
    # Renamed to data.text_columns, labels and other columns dropped.
    assert texts.column_names == ["sentence"]
    assert texts["sentence"] == TEXTS


def test_files_concatenate_default_columns_and_empty_texts(tmp_path):
    first = _write(tmp_path / "a.jsonl", "jsonl", TEXTS[:2], column="sentence")
    second = _write(tmp_path / "b.csv", "csv", [TEXTS[2], "", "  ", TEXTS[3]],
                    column="sentence")
    # text_columns unset: data.text_columns ("sentence"); blank texts are left out.
    texts = load_transfer(_data(tmp_path, files=[str(first), str(second)]))
    assert texts["sentence"] == TEXTS[:4]


def test_loading_errors_name_the_key(tmp_path):
    path = _write(tmp_path / "u.csv", "csv")
    with pytest.raises(ConfigError, match=r"^data.transfer.text_columns: column\(s\) "
                                          r"\['sentence'\] not in .*u.csv; its columns are "
                                          r"\['text', 'label'\]"):
        load_transfer(_data(tmp_path, files=[str(path)]))
    with pytest.raises(FileNotFoundError, match=r"^data.transfer.files\[1\]: no such file"):
        load_transfer(_data(tmp_path, files=[str(path), str(tmp_path / "missing.txt")],
                            text_columns=["text"]))


def test_a_dataset_split_with_its_labels_dropped(tmp_path):
    # A local dataset directory: datasets.load_dataset reads it like a Hub dataset, with a
    # split per file name (what a Hub dataset repository holds).
    directory = tmp_path / "unlabelled-ds"
    directory.mkdir()
    _write(directory / "train.parquet", "parquet", TEXTS, column="content")
    _write(directory / "test.parquet", "parquet", TEXTS[:2], column="content")
    cfg = _data(tmp_path, dataset=str(directory), split="train", text_columns=["content"])
    texts = load_transfer(cfg)
    assert texts.column_names == ["sentence"] and texts["sentence"] == TEXTS
    other = _data(tmp_path, dataset=str(directory), split="test", text_columns=["content"])
    assert load_transfer(other)["sentence"] == TEXTS[:2]
    wrong = _data(tmp_path, dataset=str(directory), split="unlabeled",
                  text_columns=["content"])
    with pytest.raises(ConfigError, match=r"^data.transfer.split: .*unlabeled"):
        load_transfer(wrong)


def test_an_unreachable_hub_dataset_is_one_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    cfg = _data(tmp_path, dataset="someone/no-such-transfer-set")
    with pytest.raises(ConfigError, match=r"^data.transfer.dataset: cannot load Hub dataset "
                                          r"'someone/no-such-transfer-set'.*data.transfer.files"):
        load_transfer(cfg)


# ----------------------------------------------------------- leak guard and subsample


@pytest.fixture
def splits(tmp_path):
    train = datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0],
                                        "idx": [7, 8]})
    train = train.cast_column("label", datasets.ClassLabel(names=["negative", "positive"]))
    evaluation = datasets.Dataset.from_dict({"sentence": ["The movie  was GOOD ", "worst film"],
                                             "label": [1, 0]})
    many = [f"the film number {i}" for i in range(40)]
    path = tmp_path / "u.txt"
    path.write_text("\n".join([*TEXTS, *many]) + "\n", encoding="utf-8")
    return datasets.DatasetDict({"train": train, "eval": evaluation}), path


def test_leak_guard_drops_eval_texts_and_says_how_many(splits, tmp_path):
    raw, path = splits
    out, note = append_transfer(raw, _data(tmp_path, files=[str(path)]))
    train = out["train"]
    # Case and runs of whitespace are ignored: "the movie was good" and "worst film" go.
    kept = [t for t in TEXTS if t not in ("the movie was good", "worst film")]
    assert train["sentence"][:2] == ["good", "bad"]
    assert train["sentence"][2:2 + len(kept)] == kept and len(train) == 2 + len(kept) + 40
    assert train[TRANSFER_COLUMN] == [False] * 2 + [True] * (len(train) - 2)
    assert train.column_names == ["sentence", "label", TRANSFER_COLUMN]
    assert note == (f"transfer data: {len(kept) + 40} unlabelled texts from u.txt; leak guard "
                    f"dropped 2 of {len(TEXTS) + 40} that appear in the eval split")
    assert out["eval"] is raw["eval"]

    off, note = append_transfer(raw, _data(tmp_path, files=[str(path)], leak_guard=False))
    assert off["train"]["sentence"][2:2 + len(TEXTS)] == TEXTS
    assert note.endswith("leak guard off (data.transfer.leak_guard: false)")
    assert drop_leaks(raw["eval"], raw["eval"], ["sentence"])[1] == 2


def test_max_samples_is_a_seeded_subsample(splits, tmp_path):
    raw, path = splits

    def drawn(**options):
        out, note = append_transfer(raw, _data(tmp_path, files=[str(path)], max_samples=10,
                                               **options))
        return out["train"]["sentence"][2:], note

    first, note = drawn(seed=1)
    again, _ = drawn(seed=1)
    other, _ = drawn(seed=2)
    assert len(first) == 10 and first == again and set(first) != set(other)
    # Drawn after the leak guard: never a text of the eval split.
    assert not {"the movie was good", "worst film"} & set(first)
    assert note.startswith("transfer data: 10 unlabelled texts from u.txt (drawn from 44 "
                           "with seed 1); leak guard dropped 2")
    everything, _ = append_transfer(raw, _data(tmp_path, files=[str(path)], max_samples=100))
    assert len(everything["train"]) == 2 + 44


# -------------------------------------------------------------------- pseudo-label loss


def _logits(seed: int, batch: int = 6, classes: int = 4) -> torch.Tensor:
    return torch.randn(batch, classes, generator=torch.Generator().manual_seed(seed)) * 3


def _reference(student: torch.Tensor, teacher: torch.Tensor, mask=None) -> float:
    """float64 numpy: mean over unmasked rows of -log softmax(s)[argmax t]."""
    s, t = student.detach().double().numpy(), teacher.double().numpy()
    rows = range(len(s)) if mask is None else [b for b in range(len(s)) if mask[b]]
    values = []
    for b in rows:
        log_probs = s[b] - (np.log(np.exp(s[b] - s[b].max()).sum()) + s[b].max())
        values.append(-log_probs[int(np.argmax(t[b]))])
    return float(np.mean(values)) if values else 0.0


def test_pseudo_ce_is_registered_and_exported():
    assert losses.get_loss("pseudo_ce") is losses.pseudo_ce
    assert "pseudo_ce" in losses.available_losses()


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_pseudo_ce_is_cross_entropy_on_the_teachers_argmax(temperature):
    student, teacher = _logits(0), _logits(1)
    value = losses.pseudo_ce(student, teacher, temperature=temperature,
                             labels=torch.tensor([0, 1, 2, 3, -100, 0]))
    # The temperature and the gold labels do not change it.
    assert value.dtype == torch.float32 and value.dim() == 0
    assert float(value) == pytest.approx(_reference(student, teacher), rel=1e-5)
    expected = torch.nn.functional.cross_entropy(student, teacher.argmax(-1))
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        losses.pseudo_ce(student, teacher, temperature=0.0)


def test_pseudo_ce_gradients_mask_and_low_precision():
    student = _logits(2).requires_grad_(True)
    teacher = _logits(3).requires_grad_(True)
    losses.pseudo_ce(student, teacher).backward()
    # d/ds of the mean CE: (softmax(s) - onehot(argmax t)) / B; none reaches the teacher.
    onehot = torch.nn.functional.one_hot(teacher.argmax(-1), 4).float()
    expected = (torch.softmax(student.detach(), -1) - onehot) / len(student)
    torch.testing.assert_close(student.grad, expected)
    assert teacher.grad is None

    mask = torch.tensor([1, 0, 1, 1, 0, 1])
    garbage = student.detach().clone()
    garbage[1], garbage[4] = float("nan"), 1e6
    garbage.requires_grad_(True)
    value = losses.pseudo_ce(garbage, teacher.detach(), mask)
    assert value.item() == pytest.approx(_reference(student, teacher.detach(), mask), rel=1e-5)
    value.backward()
    assert torch.isfinite(garbage.grad).all() and (garbage.grad[[1, 4]] == 0).all()
    assert losses.pseudo_ce(student, teacher, torch.zeros(6)).item() == 0.0

    half = losses.pseudo_ce(student.detach().bfloat16(), teacher.detach().bfloat16())
    assert half.dtype == torch.float32


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    train, dev = write_sentiment_tsv(root / "sst", n_train=24, n_eval=16)
    # Unlabeled text: 20 other sentences of the same kind, plus two eval sentences.
    eval_texts = [line.split("\t")[0] for line in
                  dev.read_text(encoding="utf-8").splitlines()[1:]]
    write_sentiment_tsv(root / "more", n_train=30, n_eval=1, seed=5)
    more = [line.split("\t")[0] for line in
            (root / "more" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    unlabeled = [t for t in more if t not in eval_texts][:20] + eval_texts[:2]
    (root / "unlabeled.txt").write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
    return types.SimpleNamespace(root=root, train=train, dev=dev, cache=root / "hf-cache",
                                 unlabeled=root / "unlabeled.txt",
                                 teacher=write_tiny_classifier(root / "teacher", seed=1))


def _recipe(ws, **data):
    return recipe_from_dict({
        "teacher": {"model": str(ws.teacher)},
        "student": {"from_teacher": [0]},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": ["negative", "positive"], "max_length": 32,
                 "cache_dir": str(ws.cache), "transfer": {"files": [str(ws.unlabeled)]},
                 **data},
        "train": {"report_to": [], "progress_bar": False},
        "output": {"dir": str(ws.root / "run")}})


def test_build_appends_unlabelled_transfer_rows_and_augments_them(ws):
    built = build(_recipe(ws), "distill")
    train = built.data["train"]
    assert len(train) == 24 + 20
    assert train[TRANSFER_COLUMN] == [False] * 24 + [True] * 20
    assert train["labels"][24:] == [IGNORE_INDEX] * 20
    assert IGNORE_INDEX not in train["labels"][:24]
    assert ("transfer data: 20 unlabelled texts from unlabeled.txt; leak guard dropped 2 of "
            "22 that appear in the eval split") in built.notes
    assert train_sources(train) == {"labelled": 24, "transfer": 20, "augmented": 0}
    assert built.data["eval"].features["labels"].names == ["negative", "positive"]

    augmented = build(_recipe(ws, augment={"copies": 1, "seed": 3}), "distill")
    train = augmented.data["train"]
    # The variants follow the 44 originals, the transfer texts' variants too.
    assert len(train) == 2 * 44 and train["augmented"] == [False] * 44 + [True] * 44
    assert train[TRANSFER_COLUMN] == ([False] * 24 + [True] * 20) * 2
    assert train["labels"][24:] == [IGNORE_INDEX] * (88 - 24)
    assert train_sources(train) == {"labelled": 24, "transfer": 20, "augmented": 44}
    assert "transfer set: 44 examples + 44 augmented (copies=1)" in augmented.notes

    plain = build(_recipe(ws, transfer={}), "distill").data["train"]
    assert TRANSFER_COLUMN not in plain.column_names
    assert train_sources(plain) == {"labelled": 24, "transfer": 0, "augmented": 0}


def test_finetune_refuses_transfer_data(ws):
    with pytest.raises(ConfigError, match=r"^data.transfer: transfer texts have no gold "
                                          r"labels.*`textdistill distill`"):
        build(_recipe(ws), "finetune")


def test_tiny_distill_run_with_transfer_data_and_pseudo_labels(ws, tmp_path, capsys):
    run = tmp_path / "run"
    recipe = tmp_path / "transfer.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": {"model": str(ws.teacher)},
        "student": {"from_teacher": [1]},
        "data": {"train": str(ws.train), "eval": str(ws.dev),
                 "label_names": ["negative", "positive"], "max_length": 32,
                 "cache_dir": str(ws.cache),
                 "transfer": {"files": [str(ws.unlabeled)], "max_samples": 12, "seed": 1}},
        "distill": {"logit_loss": "pseudo_ce", "probability_shift": True},
        "train": {"max_steps": 3, "batch_size": 16, "report_to": [], "progress_bar": False,
                  "logging_steps": 1, "cache_teacher": True, "save_total_limit": 1},
        "output": {"dir": str(run)},
    }), encoding="utf-8")
    assert main(["distill", str(recipe), "--set", "data.augment.copies=1"]) == 0
    out = capsys.readouterr().out
    assert ("note: transfer data: 12 unlabelled texts from unlabeled.txt (drawn from 20 with "
            "seed 1); leak guard dropped 2 of 22 that appear in the eval split") in out
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["train_examples"] == 2 * (24 + 12)
    assert results["train_examples_by_source"] == {"labelled": 24, "transfer": 12,
                                                   "augmented": 36}
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    assert len(history["train"]) == 3
    for record in history["train"]:
        assert all(math.isfinite(record[k]) for k in ("loss", "loss/kd", "loss/hard"))
    saved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["transfer"]["max_samples"] == 12
    assert saved["distill"]["logit_loss"] == "pseudo_ce"
