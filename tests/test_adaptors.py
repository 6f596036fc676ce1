"""The Hugging Face adaptor on tiny random encoders, and eager/sdpa attention handling."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402

from textdistill.models import (  # noqa: E402
    AttentionUnavailableError,
    HiddenStatesUnavailableError,
    ModelDims,
    ModelView,
    ensure_eager_attention,
    hf_adaptor,
    model_dims,
    unwrap_model,
)
from textdistill.models.adaptors import _accepted_inputs  # noqa: E402

LAYERS, HIDDEN, HEADS, LABELS = 2, 32, 2, 3
B, T = 2, 7
COMMON = dict(vocab_size=100, num_labels=LABELS, max_position_embeddings=64)
BERT_LIKE = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                 intermediate_size=37, **COMMON)

CONFIGS = {
    "bert": lambda: transformers.BertConfig(**BERT_LIKE),
    "roberta": lambda: transformers.RobertaConfig(**BERT_LIKE),
    "distilbert": lambda: transformers.DistilBertConfig(
        dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=37, **COMMON),
    "mpnet": lambda: transformers.MPNetConfig(**BERT_LIKE),
    # Factorised embeddings (16 wide) are projected to the hidden width before block 1.
    "albert": lambda: transformers.AlbertConfig(embedding_size=16, **BERT_LIKE),
    "electra": lambda: transformers.ElectraConfig(embedding_size=16, **BERT_LIKE),
    "deberta-v2": lambda: transformers.DebertaV2Config(**BERT_LIKE),
}
# transformers 5.23: these run sdpa by default; MPNet and DeBERTa-v2 only have eager.
SDPA_BY_DEFAULT = {"bert", "roberta", "distilbert", "albert", "electra"}


def build(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(CONFIGS[arch](),
                                                                          **kwargs)
    return model.eval()


@pytest.fixture(scope="module")
def eager_models():
    return {arch: build(arch, attn_implementation="eager") for arch in CONFIGS}


def make_batch(**extra) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 5:] = 0
    batch = {
        "input_ids": torch.randint(5, 100, (B, T), generator=generator),
        "attention_mask": mask,
        "token_type_ids": torch.zeros(B, T, dtype=torch.long),
    }
    batch.update(extra)
    return batch


class CallRecorder:
    """Records the keyword arguments of each forward call and the raw output."""

    def __init__(self, model: torch.nn.Module):
        self.kwargs: list[dict] = []
        self.outputs: list = []
        model.register_forward_pre_hook(self._pre, with_kwargs=True)
        model.register_forward_hook(self._post)

    def _pre(self, module, args, kwargs):
        assert not args
        self.kwargs.append(dict(kwargs))

    def _post(self, module, args, output):
        self.outputs.append(output)


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_features_on_every_architecture(eager_models, arch):
    model = eager_models[arch]
    batch = make_batch(labels=torch.tensor([0, 2]), idx=torch.tensor([10, 11]))
    view = hf_adaptor(model, batch, hidden_states=True, attentions=True)
    assert isinstance(view, ModelView)
    assert view.logits.shape == (B, LABELS)
    assert len(view.hidden_states) == LAYERS + 1
    assert all(h.shape == (B, T, HIDDEN) for h in view.hidden_states)
    assert len(view.attentions) == LAYERS
    for attention in view.attentions:
        assert attention.shape == (B, HEADS, T, T)
        torch.testing.assert_close(attention.sum(-1), torch.ones(B, HEADS, T))
    assert torch.equal(view.attention_mask, batch["attention_mask"])
    assert torch.equal(view.labels, batch["labels"])
    assert model_dims(model) == ModelDims(num_layers=LAYERS, hidden_size=HIDDEN,
                                          num_heads=HEADS, num_labels=LABELS)


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_passes_only_accepted_inputs_and_requests_nothing_unasked(arch):
    model = build(arch)
    # Even a config asking for everything must not make unrequested features appear.
    model.config.output_hidden_states = True
    recorder = CallRecorder(model)
    batch = make_batch(labels=torch.tensor([0, 2]), idx=torch.tensor([10, 11]))
    view = hf_adaptor(model, batch)
    (kwargs,) = recorder.kwargs
    expected = {"input_ids", "attention_mask"}
    if arch not in ("distilbert", "mpnet"):  # no token type embeddings
        expected.add("token_type_ids")
    assert set(kwargs) - {"output_hidden_states", "output_attentions", "return_dict"} == expected
    assert kwargs["output_hidden_states"] is False and kwargs["output_attentions"] is False
    (output,) = recorder.outputs
    assert output.loss is None  # labels never reached the model
    assert output.hidden_states is None and output.attentions is None
    assert view.hidden_states is None and view.attentions is None
    assert view.logits.shape == (B, LABELS)
    assert torch.equal(view.labels, batch["labels"])


def test_hidden_states_only_does_not_request_attentions():
    model = build("bert", attn_implementation="eager")
    recorder = CallRecorder(model)
    view = hf_adaptor(model, make_batch(), hidden_states=True)
    assert recorder.kwargs[0]["output_hidden_states"] is True
    assert recorder.kwargs[0]["output_attentions"] is False
    assert recorder.outputs[0].attentions is None
    assert view.attentions is None and len(view.hidden_states) == LAYERS + 1


def test_missing_mask_is_all_ones_and_batch_without_labels():
    view = hf_adaptor(build("distilbert"), {"input_ids": torch.randint(5, 100, (B, T))})
    assert torch.equal(view.attention_mask, torch.ones(B, T, dtype=torch.long))
    assert view.labels is None


def test_wrapped_models_are_called_but_inspected_unwrapped():
    model = build("distilbert")
    reference = hf_adaptor(model, make_batch()).logits

    class Compiled(torch.nn.Module):
        """Stands in for torch.compile's OptimizedModule: the model in ``_orig_mod``."""

        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner
            self.calls = 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            return self._orig_mod(*args, **kwargs)

    compiled = Compiled(model)
    data_parallel = torch.nn.DataParallel(compiled, device_ids=[])  # CPU: plain call
    assert unwrap_model(data_parallel) is model
    view = hf_adaptor(data_parallel, make_batch(labels=torch.tensor([1, 1])))
    assert compiled.calls == 1
    torch.testing.assert_close(view.logits, reference)

    # accelerate swaps the instance's forward for a (*args, **kwargs) wrapper; the
    # accepted keys still come from the class, so token_type_ids stays out.
    original = model.forward
    model.forward = lambda *args, **kwargs: original(*args, **kwargs)
    recorder = CallRecorder(model)
    hf_adaptor(model, make_batch())
    assert "token_type_ids" not in recorder.kwargs[0]
    assert model_dims(data_parallel).num_layers == LAYERS


def test_accepted_inputs_are_cached_per_class():
    _accepted_inputs.cache_clear()
    hf_adaptor(build("bert"), make_batch())
    hf_adaptor(build("bert", attn_implementation="eager"), make_batch())
    info = _accepted_inputs.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize("arch", sorted(SDPA_BY_DEFAULT))
def test_sdpa_attentions_raise_until_switched_to_eager(arch):
    model = build(arch)  # transformers 5 default
    assert model.config._attn_implementation == "sdpa"
    batch = make_batch()
    before = hf_adaptor(model, batch).logits
    with pytest.raises(AttentionUnavailableError,
                       match=rf"{type(model).__name__} \(attn_implementation='sdpa'\).*"
                             r"attn_implementation=\"eager\""):
        hf_adaptor(model, batch, attentions=True)

    assert ensure_eager_attention(model) is True
    assert model.config._attn_implementation == "eager"
    view = hf_adaptor(model, batch, attentions=True)
    assert len(view.attentions) == LAYERS
    for attention in view.attentions:
        assert attention.shape == (B, HEADS, T, T)
        torch.testing.assert_close(attention.sum(-1), torch.ones(B, HEADS, T))
    # Same function, other kernel.
    torch.testing.assert_close(view.logits, before, atol=1e-5, rtol=1e-5)
    assert ensure_eager_attention(model) is False


@pytest.mark.parametrize("arch", ["mpnet", "deberta-v2"])
def test_eager_only_architectures(arch):
    with pytest.raises(ValueError, match="does not support an attention implementation"):
        build(arch, attn_implementation="sdpa")
    model = build(arch)
    assert model.config._attn_implementation == "eager"
    assert ensure_eager_attention(model) is False
    assert len(hf_adaptor(model, make_batch(), attentions=True).attentions) == LAYERS


def test_ensure_eager_on_wrapped_model():
    model = build("bert")
    assert ensure_eager_attention(torch.nn.DataParallel(model, device_ids=[])) is True
    assert model.config._attn_implementation == "eager"


def test_ensure_eager_raises_when_switch_is_impossible(monkeypatch):
    model = build("bert")
    # What transformers does for models it cannot switch at run time: log and keep sdpa.
    monkeypatch.setattr(type(model), "set_attn_implementation", lambda self, impl: None)
    with pytest.raises(AttentionUnavailableError, match="cannot switch.*'sdpa' -> 'eager'"):
        ensure_eager_attention(model)

    def refuse(self, impl):
        raise ValueError("no eager kernel")

    monkeypatch.setattr(type(model), "set_attn_implementation", refuse)
    with pytest.raises(AttentionUnavailableError, match="no eager kernel"):
        ensure_eager_attention(model)


class NoFeatures(torch.nn.Module):
    """A model whose output never carries hidden states or attentions."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Embedding(100, LABELS)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SequenceClassifierOutput(logits=self.head(input_ids).mean(1))


def test_missing_features_raise():
    model = NoFeatures()
    assert hf_adaptor(model, make_batch()).logits.shape == (B, LABELS)
    with pytest.raises(HiddenStatesUnavailableError, match="NoFeatures returned no hidden"):
        hf_adaptor(model, make_batch(), hidden_states=True)
    with pytest.raises(AttentionUnavailableError, match=r"NoFeatures \(attn_implementation=None"):
        hf_adaptor(model, make_batch(), attentions=True)
    with pytest.raises(ValueError, match=r"none of the batch keys \['ids'\]"):
        hf_adaptor(model, {"ids": torch.zeros(1, 2)})
    assert ensure_eager_attention(model) is False  # no HF config: the adaptor's business
    with pytest.raises(ValueError, match="has no config"):
        model_dims(model)
