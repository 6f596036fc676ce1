"""`textdistill quantize` and ONNX directories: export parity, int8 parity, evaluate on
them, and the refusals (missing extra, overwrite, symlinked target)."""

from __future__ import annotations

import json
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from tiny import one_line_error, tiny_bert, write_sentiment_tsv, write_tiny_classifier

from textdistill.cli import main

needs_deploy = pytest.mark.skipif(
    find_spec("onnx") is None or find_spec("onnxruntime") is None,
    reason="needs the deploy extra (onnx, onnxruntime)")
# float32 ONNX Runtime vs PyTorch: the same arithmetic in another order.
FLOAT_ATOL = 1e-5
# int8 weights: measured 1.5-4% of the largest logit on tiny random BERTs, whose close
# calls (top-2 margins of a few hundredths) may flip; 15 of 16 rows agree here.
INT8_MAX_DIFF_OF_SCALE = 0.05
INT8_MIN_AGREEMENT = 0.85


def _batch(batch_size: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random ids with the last row padded (when there is more than one row)."""
    generator = torch.Generator().manual_seed(seed + batch_size * 100 + length)
    ids = torch.randint(5, 60, (batch_size, length), generator=generator)
    mask = torch.ones_like(ids)
    if batch_size > 1:
        mask[-1, length // 2:] = 0
        ids[-1, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask,
            "token_type_ids": torch.zeros_like(ids)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny BERT (logits of order 1) and its float32 and int8 ONNX directories."""
    from textdistill.onnx_model import export_onnx, quantize_onnx_int8

    root = tmp_path_factory.mktemp("onnx")
    model = tiny_bert(num_labels=3, initializer_range=0.2).eval()
    directories = {}
    for name in ("float", "int8"):
        directories[name] = root / name
        model.config.save_pretrained(directories[name])
    export_onnx(model, directories["float"] / "model.onnx")
    quantize_onnx_int8(directories["float"] / "model.onnx", directories["int8"] / "model.onnx")
    return model, directories


@needs_deploy
@pytest.mark.parametrize("batch_size,length", [(1, 5), (3, 5), (1, 17), (3, 17)])
def test_onnx_export_gives_the_pytorch_logits_at_other_shapes(exported, batch_size, length):
    """Traced at (2, 8); other batch sizes and lengths, with a padded row."""
    from textdistill.onnx_model import OnnxClassifier

    model, directories = exported
    batch = _batch(batch_size, length)
    with torch.no_grad():
        expected = model(**batch).logits
    got = OnnxClassifier(directories["float"]).eval()(**batch).logits
    torch.testing.assert_close(got, expected, atol=FLOAT_ATOL, rtol=0)


@needs_deploy
def test_int8_graph_keeps_the_predictions_within_a_bound(exported):
    from textdistill.onnx_model import OnnxClassifier, graph_parameter_count

    model, directories = exported
    batch = _batch(16, 17)
    with torch.no_grad():
        expected = model(**batch).logits
    got = OnnxClassifier(directories["int8"])(**batch).logits
    scale = expected.abs().max().item()
    assert scale > 0.5, "logits large enough for the bound to mean something"
    assert (got - expected).abs().max().item() <= INT8_MAX_DIFF_OF_SCALE * scale
    agreement = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agreement >= INT8_MIN_AGREEMENT
    # Quantized, not copied: the matrix products run on int8 (a tiny model's size is
    # mostly the float embeddings, which dynamic quantization leaves alone).
    import onnx

    ops = [node.op_type for node in onnx.load(directories["int8"] / "model.onnx").graph.node]
    linear_per_block = 6  # query, key, value, attention output, intermediate, output
    assert ops.count("MatMulInteger") >= linear_per_block * model.config.num_hidden_layers
    assert graph_parameter_count(directories["int8"] / "model.onnx") >= sum(
        p.numel() for p in model.parameters()) * 0.9


# ------------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    model = write_tiny_classifier(root / "model")
    train, dev = write_sentiment_tsv(root / "sst", n_train=16, n_eval=16)
    # A run directory: best/ and the recipe whose eval split measures the accuracy.
    run = root / "run"
    write_tiny_classifier(run / "best", seed=1)
    recipe = {"student": {"pretrained": str(model)},
              "data": {"train": str(train), "eval": str(dev),
                       "label_names": ["negative", "positive"], "max_length": 32,
                       "cache_dir": str(root / "hf-cache")},
              "output": {"dir": str(run)}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return type("Ws", (), {"root": root, "model": model, "dev": dev, "run": run})




def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.parent.iterdir() if p.name.startswith("."))


@needs_deploy
def test_quantize_a_model_dir_then_evaluate_it(ws, capsys):
    out = ws.root / "int8"
    assert main(["quantize", str(ws.model), str(out), "--data", str(ws.dev),
                 "--latency-repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pytorch (source)" in printed and "onnx-int8 (this model)" in printed
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "config.json", "README.md",
                                               "tokenizer.json", "tokenizer_config.json"}
    assert not list(out.glob("*.safetensors")), "self-contained: the graph, not the weights"
    assert _leftovers(out) == []
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "onnx" and "onnx" in card.data.tags
    assert "textdistill quantize --method onnx-int8" in card.text
    assert "int8 weights (ONNX Runtime dynamic quantization" in card.text
    assert "| onnx-int8 (this model) | onnxruntime |" in card.text
    assert "latency_ms_b32" in card.text and card.data.metrics == ["accuracy", "f1"]

    assert main(["evaluate", str(out), "--data", str(ws.dev), "--latency-repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "(onnxruntime)" in printed
    for row in ("accuracy", "f1", "size on disk MiB", "latency ms (batch 1",
                "latency ms (batch 32"):
        assert row in printed, printed


@needs_deploy
def test_quantize_a_run_dir_measures_on_its_recipe(ws, capsys):
    out = ws.root / "float"
    assert main(["quantize", str(ws.run), str(out), "--method", "onnx",
                 "--latency-repeats", "1"]) == 0
    assert f"accuracy on {ws.run / 'recipe.yaml'}" in capsys.readouterr().out
    card = ModelCard.load(out / "README.md")
    assert "textdistill quantize --method onnx`" in card.text
    assert card.data.metrics == ["accuracy", "f1"]


@needs_deploy
def test_bad_eval_data_fails_before_the_export(ws, capsys, monkeypatch):
    import textdistill.quantize

    def no_export(*args, **kwargs):
        raise AssertionError("exported before checking --data")

    monkeypatch.setattr(textdistill.quantize, "export_onnx", no_export)
    out = ws.root / "never"
    assert main(["quantize", str(ws.model), str(out), "--data",
                 str(ws.root / "missing.tsv")]) == 2
    one_line_error(capsys, "missing.tsv")
    assert not out.exists() and _leftovers(out) == []


@needs_deploy
def test_a_failure_after_the_export_leaves_nothing(ws, capsys, monkeypatch):
    import textdistill.quantize
    from textdistill.errors import ConfigError

    def broken(*args, **kwargs):
        raise ConfigError("--data: the eval data went away")

    monkeypatch.setattr(textdistill.quantize, "evaluate_model", broken)
    out = ws.root / "half"
    assert main(["quantize", str(ws.model), str(out), "--data", str(ws.dev)]) == 2
    one_line_error(capsys, "went away")
    assert not out.exists() and _leftovers(out) == []


@needs_deploy
def test_an_onnx_directory_is_not_a_source(ws, capsys, exported):
    _, directories = exported
    assert main(["quantize", str(directories["float"]), str(ws.root / "again")]) == 2
    one_line_error(capsys, "already an ONNX directory")


@pytest.mark.parametrize("verb", ["quantize", "evaluate"])
def test_without_the_deploy_extra_one_line_says_what_to_install(ws, capsys, monkeypatch, verb):
    out = ws.root / f"no-extra-{verb}"
    # An ONNX directory for evaluate to be handed (the graph need not be valid).
    (out.parent / "onnx-dir").mkdir(exist_ok=True)
    (out.parent / "onnx-dir" / "model.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    argv = (["quantize", str(ws.model), str(out)] if verb == "quantize" else
            ["evaluate", str(out.parent / "onnx-dir"), "--data", str(ws.dev)])
    assert main(argv) == 2
    one_line_error(capsys, "onnxruntime", "pip install 'textdistill[deploy]'")
    assert not out.exists()


@needs_deploy
def test_quantize_refuses_a_non_empty_target_without_overwrite(ws, capsys):
    out = ws.root / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    assert main(["quantize", str(ws.model), str(out)]) == 2
    one_line_error(capsys, "not empty", "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    assert main(["quantize", str(ws.model), str(out), "--method", "onnx", "--overwrite",
                 "--latency-repeats", "1"]) == 0
    assert (out / "model.onnx").is_file() and not (out / "keep.txt").exists()
    assert _leftovers(out) == []


@needs_deploy
@pytest.mark.parametrize("overwrite", [False, True])
def test_quantize_refuses_a_symlinked_target(ws, capsys, overwrite):
    real = ws.root / f"real-{overwrite}"
    real.mkdir()
    (real / "keep.txt").write_text("precious", encoding="utf-8")
    link = ws.root / f"link-{overwrite}"
    link.symlink_to(real, target_is_directory=True)
    assert main(["quantize", str(ws.model), str(link),
                 *(["--overwrite"] if overwrite else [])]) == 2
    one_line_error(capsys, "symbolic link")
    assert link.is_symlink() and [p.name for p in real.iterdir()] == ["keep.txt"]


def test_torch_int8_is_not_a_method(ws, capsys):
    out = ws.root / "torch-int8"
    assert main(["quantize", str(ws.model), str(out), "--method", "torch-int8"]) == 2
    assert "invalid choice: 'torch-int8'" in capsys.readouterr().err
    assert not out.exists()


def test_the_package_imports_without_the_deploy_extra():
    """onnx and onnxruntime are imported only when an ONNX model is made or run."""
    import subprocess

    code = ("import sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None; "
            "import textdistill, textdistill.cli, textdistill.evaluation, textdistill.quantize")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
