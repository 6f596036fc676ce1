"""Zeroed heads cut out for deployment: the sliced copy, the ONNX graph, the prune record."""

from __future__ import annotations

from importlib.util import find_spec

import pytest
import torch
from test_prune import HEADS, _other_family
from tiny import tiny_bert, write_tiny_classifier
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textdistill.prune import RECORD_KEY
from textdistill.pruning import (
    PruningPlan,
    apply_pruning,
    find_blocks,
    slice_zeroed_heads,
    zeroed_heads,
)

needs_deploy = pytest.mark.skipif(
    find_spec("onnx") is None or find_spec("onnxruntime") is None,
    reason="needs the deploy extra (onnx, onnxruntime)")
# tiny_bert(num_heads=4): hidden width 32, head size 8; block 0 loses every head.
DEAD = ((0, 1, 2, 3), (1, 2))
HIDDEN, HEAD_SIZE = 32, 8
# Per head: query, key and value rows (weights and biases), output-projection columns.
PARAMS_PER_HEAD = 4 * HEAD_SIZE * HIDDEN + 3 * HEAD_SIZE


def _pruned(model: torch.nn.Module, heads=DEAD) -> torch.nn.Module:
    apply_pruning(model, PruningPlan(heads=heads, neurons=((),) * len(heads)))
    return model.eval()


def _batch(batch_size: int, length: int) -> dict[str, torch.Tensor]:
    """Random ids with the last row half padding (when there is more than one row)."""
    generator = torch.Generator().manual_seed(batch_size * 100 + length)
    ids = torch.randint(5, 60, (batch_size, length), generator=generator)
    mask = torch.ones_like(ids)
    if batch_size > 1:
        mask[-1, length // 2:] = 0
        ids[-1, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _heads_per_block(model: torch.nn.Module) -> list[int]:
    # By module name: the sliced MPNet's query sits one level deeper than find_blocks looks.
    return [module.out_features // HEAD_SIZE for name, module in model.named_modules()
            if name.rpartition(".")[2] in ("query", "q", "q_lin")]


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_the_sliced_copy_gives_the_zeroed_models_logits(family):
    """MPNet's shared position bias is cut to each block's kept heads; a block that loses
    every head keeps one, whose output (like its zeroed self) is nothing."""
    model = _pruned(tiny_bert(num_heads=HEADS, initializer_range=0.2) if family == "bert"
                    else _other_family(family))
    model.set_attn_implementation("eager")
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    sliced = slice_zeroed_heads(model)

    assert zeroed_heads(model) == DEAD
    assert _heads_per_block(sliced) == [1, 2] and _heads_per_block(model) == [4, 4]
    assert zeroed_heads(sliced) == () and slice_zeroed_heads(sliced) is sliced
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    for shape in ((1, 5), (3, 17)):
        batch = _batch(*shape)
        torch.testing.assert_close(_logits(sliced, batch), _logits(model, batch),
                                   atol=1e-5, rtol=0)


def test_a_head_is_dead_by_its_weights_not_by_the_record():
    """Zero output columns (or zero value rows) silence a head whatever its query and key;
    a head zeroed everywhere but in one value bias still adds that bias, so it stays."""
    model = tiny_bert(num_heads=HEADS, initializer_range=0.2).eval()
    setattr(model.config, RECORD_KEY, {"heads_zeroed": {"0": [0, 1, 2, 3], "1": [0]}})
    block = find_blocks(model).blocks
    with torch.no_grad():
        block[0].attention_out.weight[:, 0:8] = 0                       # head 0
        block[1].value.weight[16:24] = 0                                # head 2
        block[1].value.bias[16:24] = 0
        for projection in (block[1].query, block[1].key, block[1].value):  # head 3 ...
            projection.weight[24:32] = 0
            projection.bias[24:32] = 0
        block[1].value.bias[31] = 0.5                                   # ... but a bias
    assert zeroed_heads(model) == ((0,), (2,))
    batch = _batch(3, 9)
    torch.testing.assert_close(_logits(slice_zeroed_heads(model), batch),
                               _logits(model, batch), atol=1e-5, rtol=0)


def test_a_model_without_zeroed_heads_is_returned_as_it_is():
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    model = tiny_bert(num_heads=HEADS)
    assert zeroed_heads(model) == ((), ()) and slice_zeroed_heads(model) is model
    unknown = DebertaV2ForSequenceClassification(DebertaV2Config(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32))
    assert zeroed_heads(unknown) == () and slice_zeroed_heads(unknown) is unknown


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """One random tiny BERT exported as it is, and pruned (DEAD) then exported."""
    from textdistill.onnx_model import export_onnx

    root = tmp_path_factory.mktemp("sliced")
    model = tiny_bert(num_heads=HEADS, num_labels=3)
    # No two weights alike: the exporter stores equal initializers once, and a fresh
    # model's biases are all zero (LayerNorm weights all one).
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    paths = {name: root / name for name in ("unpruned", "pruned")}
    for path in paths.values():
        model.config.save_pretrained(path)
    export_onnx(model, paths["unpruned"] / "model.onnx")
    pruned = _pruned(model)
    export_onnx(pruned, paths["pruned"] / "model.onnx")
    return pruned, paths


@needs_deploy
def test_the_onnx_graph_of_a_pruned_model_leaves_its_zeroed_heads_out(graphs):
    from textdistill.onnx_model import OnnxClassifier, graph_parameter_count

    pruned, paths = graphs
    # Block 0 keeps one dead head (whose zero query, key and value the exporter may store
    # once).
    removed = graph_parameter_count(paths["unpruned"] / "model.onnx") - graph_parameter_count(
        paths["pruned"] / "model.onnx")
    assert (sum(map(len, DEAD)) - 1) * PARAMS_PER_HEAD <= removed
    assert removed <= sum(map(len, DEAD)) * PARAMS_PER_HEAD
    assert _heads_per_block(pruned) == [4, 4], "the exported model keeps its heads"
    graph = OnnxClassifier(paths["pruned"])
    for shape in ((1, 5), (3, 17)):
        batch = _batch(*shape)
        torch.testing.assert_close(graph(**batch).logits, _logits(pruned, batch),
                                   atol=1e-5, rtol=0)


@needs_deploy
def test_an_unpruned_model_exports_every_weight(graphs):
    from textdistill.onnx_model import graph_parameter_count

    pruned, paths = graphs
    assert graph_parameter_count(paths["unpruned"] / "model.onnx") == sum(
        p.numel() for p in pruned.parameters())


@needs_deploy
def test_quantize_says_what_it_leaves_out_and_where_the_record_disagrees(tmp_path):
    from textdistill.onnx_model import graph_parameter_count
    from textdistill.quantize import quantize_model

    source = write_tiny_classifier(tmp_path / "model", num_heads=HEADS)
    model = _pruned(AutoModelForSequenceClassification.from_pretrained(source),
                    heads=((1,), (0, 3)))
    # An earlier prune recorded block 1 head 2, which is live here, as zeroed too.
    setattr(model.config, RECORD_KEY, {"heads_zeroed": {"0": [1], "1": [0, 3]},
                                       "previous": {"heads_zeroed": {"1": [2]}}})
    model.save_pretrained(tmp_path / "pruned")
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / "pruned")
    lines: list[str] = []

    quantize_model(tmp_path / "pruned", tmp_path / "onnx", method="onnx",
                   latency_repeats=1, log=lines.append)

    assert "leaving 3 zeroed attention heads out of the graph" in lines
    assert (f"note: config.json's {RECORD_KEY} names 1 zeroed heads whose weights are not "
            "zero (block 1 head 2); the graph keeps them") in lines
    assert graph_parameter_count(tmp_path / "onnx" / "model.onnx") < sum(
        p.numel() for p in model.parameters()) - 2 * PARAMS_PER_HEAD
