"""Cost measurements on a tiny random BERT classifier."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from textdistill.speed import count_parameters, measure_latency, peak_rss_mb


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37)
    return BertForSequenceClassification(config)


def test_measure_latency_positive_and_mode_restored(model):
    model.train()
    model.bert.pooler.eval()  # a mixed state must come back exactly as it was
    before = {name: m.training for name, m in model.named_modules()}
    for batch_size in (1, 4):
        result = measure_latency(model, batch_size=batch_size, seq_len=16, warmup=1, repeats=3)
        assert set(result) == {"batch_size", "seq_len", "latency_ms", "latency_ms_p90",
                               "samples_per_second"}
        assert result["batch_size"] == batch_size and result["seq_len"] == 16
        assert result["latency_ms"] > 0 and result["samples_per_second"] > 0
        assert result["latency_ms_p90"] >= result["latency_ms"]
    assert {name: m.training for name, m in model.named_modules()} == before
    model.eval()
    measure_latency(model, batch_size=2, seq_len=8, warmup=0, repeats=1)
    assert not model.training


def test_measure_latency_works_through_a_module_wrapper(model):
    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kwargs):  # what DDP looks like: no named arguments
            return self.module(**kwargs)

    result = measure_latency(Wrapper(model), batch_size=2, seq_len=8, warmup=0, repeats=2)
    assert result["latency_ms"] > 0


def test_measure_latency_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, batch_size=1, repeats=0)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        measure_latency(model, batch_size=1, seq_len=10_000)


def test_count_parameters(model):
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total > 0
    model.bert.embeddings.requires_grad_(False)
    try:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert count_parameters(model, trainable_only=True) == trainable < total
    finally:
        model.bert.embeddings.requires_grad_(True)


def test_peak_rss():
    assert peak_rss_mb() > 0
