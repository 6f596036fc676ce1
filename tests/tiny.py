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
