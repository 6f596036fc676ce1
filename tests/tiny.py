"""Tiny random models and data for fast tests (no downloads)."""

from __future__ import annotations

import random

import datasets
import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB_SIZE = 60
CLS, SEP, PAD = 2, 3, 0


def tiny_bert(num_layers: int = 2, hidden_size: int = 32, num_heads: int = 2,
              num_labels: int = 2, seed: int = 0, **overrides) -> BertForSequenceClassification:
    """A random BERT classifier small enough to train in a second on CPU."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=num_heads,
                        intermediate_size=hidden_size * 2, max_position_embeddings=64,
                        num_labels=num_labels, pad_token_id=PAD, **overrides)
    return BertForSequenceClassification(config)


def tiny_dataset(n: int = 64, seed: int = 0, min_len: int = 3, max_len: int = 14,
                 num_labels: int = 2, rule: str = "count") -> datasets.Dataset:
    """Token sequences [CLS] w... [SEP] of varied length.

    The label is learnable from the tokens. ``rule="count"``: whether the sequence holds
    more tokens from the lower half of the word ids than from the upper half.
    ``rule="first"``: whether its first word is in the lower half.
    """
    rng = random.Random(seed)
    rows = []
    words = list(range(5, VOCAB_SIZE))
    half = words[len(words) // 2]
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        body = [rng.choice(words) for _ in range(length)]
        low = sum(w < half for w in body)
        if rule == "first":
            label = int(body[0] < half)
        else:
            label = int(low * 2 > length) if num_labels == 2 else low % num_labels
        ids = [CLS, *body, SEP]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": label})
    return datasets.Dataset.from_list(rows)


# ------------------------------------------------------------------ text fixtures (CLI)

POSITIVE_WORDS = ("good", "great", "loved", "fun", "best")
NEGATIVE_WORDS = ("bad", "awful", "hated", "boring", "worst")
FILLER_WORDS = ("the", "a", "movie", "film", "was", "is", "it", "plot", "acting", "i",
                "very", "quite", "cat", "dog", "sat", "on", "mat")
TEXT_VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",",
              *FILLER_WORDS, *POSITIVE_WORDS, *NEGATIVE_WORDS)
SENTIMENT_LABELS = ("negative", "positive")


def text_tokenizer(directory):
    """A word-level BERT tokenizer over :data:`TEXT_VOCAB`, saved in ``directory``."""
    from pathlib import Path

    from transformers import BertTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(TEXT_VOCAB) + "\n", encoding="utf-8")
    # transformers 5: ``vocab=`` (``vocab_file=`` is silently ignored).
    tokenizer = BertTokenizer(vocab=str(vocab))
    tokenizer.save_pretrained(directory)
    return tokenizer


def write_tiny_classifier(directory, *, labels=SENTIMENT_LABELS, num_layers: int = 2,
                          hidden_size: int = 32, num_heads: int = 2, seed: int = 0):
    """A random tiny BERT classifier + word tokenizer saved as a model directory.

    ``labels`` names the classes by id (``None``: default ``LABEL_i`` names, 2 classes).
    """
    from pathlib import Path

    directory = Path(directory)
    torch.manual_seed(seed)
    names = list(labels) if labels is not None else ["LABEL_0", "LABEL_1"]
    config = BertConfig(vocab_size=len(TEXT_VOCAB), hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=num_heads,
                        intermediate_size=hidden_size * 2, max_position_embeddings=128,
                        num_labels=len(names), pad_token_id=PAD,
                        id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    BertForSequenceClassification(config).save_pretrained(directory)
    text_tokenizer(directory)
    return directory


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (sentence, label) rows; label 1 when the sentence's sentiment word is positive."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        word = rng.choice(POSITIVE_WORDS if label else NEGATIVE_WORDS)
        filler = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(1, 6))]
        filler.insert(rng.randint(0, len(filler)), word)
        rows.append((" ".join(filler), label))
    return rows


def write_sentiment_tsv(directory, n_train: int = 96, n_eval: int = 32, seed: int = 0):
    """GLUE-style ``sentence<TAB>label`` train/validation files; returns their paths."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n, offset in (("train.tsv", n_train, 0), ("validation.tsv", n_eval, 1)):
        lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in
                                       sentiment_rows(n, seed * 10 + offset)]
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(directory / name)
    return tuple(paths)


PAIR_LABELS = ("contradiction", "entailment", "neutral")


def write_pair_csv(directory, n_train: int = 64, n_eval: int = 24, seed: int = 0):
    """Sentence-pair csv files ``premise,hypothesis,label`` (label names); returns paths.

    The label follows the hypothesis' sentiment word against the premise's: same
    polarity entailment, opposite contradiction, none neutral.
    """
    import csv
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n, offset in (("train.csv", n_train, 0), ("validation.csv", n_eval, 1)):
        rng = random.Random(seed * 10 + offset)
        with open(directory / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["premise", "hypothesis", "label"])
            for premise, polarity in sentiment_rows(n, seed * 10 + offset + 5):
                label = rng.choice(PAIR_LABELS)
                if label == "neutral":
                    hypothesis = " ".join(rng.choice(FILLER_WORDS) for _ in range(3))
                else:
                    same = label == "entailment"
                    words = POSITIVE_WORDS if (polarity == 1) == same else NEGATIVE_WORDS
                    hypothesis = f"it was {rng.choice(words)}"
                writer.writerow([premise, hypothesis, label])
        paths.append(directory / name)
    return tuple(paths)


def load_script(name: str):
    """``scripts/<name>.py`` as a module (the scripts are not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



def one_line_error(capsys, *fragments: str) -> str:
    """The CLI's one ``textdistill: error:`` line on stderr (no traceback), holding each of
    ``fragments``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("textdistill: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
