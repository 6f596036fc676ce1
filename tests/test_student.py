"""Building students (DistilBERT-style and TinyBERT-style) and the teacher/student checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import tiny_bert
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from textdistill.models.student import (
    check_label_mapping,
    check_tokenizers_match,
    load_pretrained_student,
    student_from_config,
    student_from_teacher,
)
from textdistill.speed import count_parameters

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "!", "'", *(
    "the a movie film was is good bad great awful i loved hated it plot acting cat dog sat "
    "on mat hello world quick brown fox can t jump over lazy dogs"
).split()]


def _bert(num_labels: int = 2, **overrides) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=2, intermediate_size=37, num_labels=num_labels,
                        max_position_embeddings=64, **overrides)
    return BertForSequenceClassification(config).eval()


def _distilbert(num_labels: int = 2) -> DistilBertForSequenceClassification:
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=4, n_heads=2,
                              hidden_dim=37, num_labels=num_labels, max_position_embeddings=64)
    return DistilBertForSequenceClassification(config).eval()


def _tokenizer(tmp_path: Path, vocab: list[str], name: str = "vocab.txt", **kwargs):
    path = tmp_path / name
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5: ``vocab=`` (``vocab_file=`` is silently ignored).
    return BertTokenizerFast(vocab=str(path), **kwargs)


def _inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, len(VOCAB), (3, 9))
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _block(state: dict, prefix: str, index: int) -> dict[str, torch.Tensor]:
    start = f"{prefix}.{index}."
    return {k[len(start):]: v for k, v in state.items() if k.startswith(start)}


@pytest.mark.parametrize(("build", "base", "blocks"), [
    (_bert, "bert", "bert.encoder.layer"),
    (_distilbert, "distilbert", "distilbert.transformer.layer"),
])
def test_student_from_teacher_copies_blocks(build, base, blocks):
    teacher = build(num_labels=3)
    teacher.config.id2label = {0: "neg", 1: "neu", 2: "pos"}
    teacher.config.label2id = {"neg": 0, "neu": 1, "pos": 2}
    layers = [0, 3]
    student = student_from_teacher(teacher, layers)
    assert type(student) is type(teacher)
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert student.config.id2label == teacher.config.id2label
    assert student.config.label2id == teacher.config.label2id
    assert student.config._attn_implementation == teacher.config._attn_implementation

    t_state, s_state = teacher.state_dict(), student.state_dict()
    for i, source in enumerate(layers):
        s_block, t_block = _block(s_state, blocks, i), _block(t_state, blocks, source)
        assert s_block and s_block.keys() == t_block.keys()
        for name in s_block:
            torch.testing.assert_close(s_block[name], t_block[name], rtol=0, atol=0)
    assert not _block(s_state, blocks, 2)
    shared = [k for k in t_state if ".layer." not in k]
    assert any(k.startswith(f"{base}.embeddings.") for k in shared)
    assert any("classifier" in k for k in shared)
    for key in shared:
        torch.testing.assert_close(s_state[key], t_state[key], rtol=0, atol=0)
        # A copy, not shared storage: training the student leaves the teacher alone.
        assert s_state[key].data_ptr() != t_state[key].data_ptr()

    logits = student(**_inputs()).logits
    assert logits.shape == (3, 3)


def test_student_with_all_blocks_equals_teacher():
    teacher = _bert()
    student = student_from_teacher(teacher, [0, 1, 2, 3]).eval()
    torch.testing.assert_close(student(**_inputs()).logits, teacher(**_inputs()).logits)


def test_student_from_teacher_uses_teacher_attention():
    teacher = _bert(attn_implementation="eager")
    assert teacher.config._attn_implementation == "eager"
    student = student_from_teacher(teacher, [1, 2])
    assert student.config._attn_implementation == "eager"


@pytest.mark.parametrize("layers", [[0, 4], [-1], [], [1.0], [True]])
def test_student_from_teacher_bad_indices(layers):
    with pytest.raises(ValueError, match=r"layers"):
        student_from_teacher(_bert(), layers)
    if layers and layers != [True] and layers != [1.0]:
        with pytest.raises(ValueError, match=r"0\.\.3"):
            student_from_teacher(_bert(), layers)


def test_student_from_teacher_albert_not_supported():
    config = AlbertConfig(vocab_size=len(VOCAB), embedding_size=16, hidden_size=32,
                          num_hidden_layers=4, num_attention_heads=2, intermediate_size=37)
    with pytest.raises(NotImplementedError, match="ALBERT"):
        student_from_teacher(AlbertForSequenceClassification(config), [0, 1])


@pytest.mark.parametrize("build", [_bert, _distilbert])
def test_student_from_config_shape(build):
    teacher = build(num_labels=3)
    teacher.config.id2label = {0: "a", 1: "b", 2: "c"}
    teacher.config.label2id = {"a": 0, "b": 1, "c": 2}
    student = student_from_config(teacher.config, num_layers=2, hidden_size=16, num_heads=4,
                                  intermediate_size=24)
    assert type(student) is type(teacher)
    config = student.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 16, 4)
    assert getattr(config, "intermediate_size", getattr(config, "hidden_dim", None)) == 24
    assert config.vocab_size == teacher.config.vocab_size
    assert config.id2label == {0: "a", 1: "b", 2: "c"}
    assert student(**_inputs()).logits.shape == (3, 3)
    assert count_parameters(student) < count_parameters(teacher)
    # The teacher's config is not modified.
    assert teacher.config.num_hidden_layers == 4 and teacher.config.hidden_size == 32

    other = student_from_config(teacher.config, num_layers=1, hidden_size=16, num_heads=2,
                                intermediate_size=24, num_labels=5)
    assert other.config.num_labels == 5 and other(**_inputs()).logits.shape == (3, 5)


def test_student_from_config_validates():
    with pytest.raises(ValueError, match="divisible"):
        student_from_config(_bert().config, num_layers=2, hidden_size=30, num_heads=4,
                            intermediate_size=24)
    with pytest.raises(ValueError, match="num_layers"):
        student_from_config(_bert().config, num_layers=0, hidden_size=16, num_heads=4,
                            intermediate_size=24)


def test_load_pretrained_student(tmp_path):
    source = student_from_config(_bert().config, num_layers=1, hidden_size=16, num_heads=2,
                                 intermediate_size=24)
    source.save_pretrained(tmp_path / "small")
    student = load_pretrained_student(str(tmp_path / "small"), 3, ["neg", "neu", "pos"])
    assert student.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert student.config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert student(**_inputs()).logits.shape == (3, 3)
    # A checkpoint fine-tuned on the same classes in another order is refused.
    student.save_pretrained(tmp_path / "tuned")
    with pytest.raises(ValueError, match="order"):
        load_pretrained_student(str(tmp_path / "tuned"), 3, {0: "pos", 1: "neu", 2: "neg"})

def test_check_tokenizers_match(tmp_path):
    teacher = _tokenizer(tmp_path, VOCAB, "a.txt")
    check_tokenizers_match(teacher, _tokenizer(tmp_path, VOCAB, "b.txt"))

    swapped = list(VOCAB)
    swapped[10], swapped[11] = swapped[11], swapped[10]
    other = _tokenizer(tmp_path, [*swapped, "extra"], "c.txt")
    with pytest.raises(ValueError, match=r"differ on 3 token\(s\)") as info:
        check_tokenizers_match(teacher, other)
    message = str(info.value)
    assert "'extra': teacher missing / student" in message
    assert repr(VOCAB[10]) in message

    # Same vocabulary, different normalisation: the ids of real text differ.
    cased = _tokenizer(tmp_path, VOCAB, "d.txt", do_lower_case=False)
    with pytest.raises(ValueError, match="encode text differently"):
        check_tokenizers_match(teacher, cased)


def test_check_label_mapping():
    config = _bert(num_labels=2).config
    # Default LABEL_i names: only the count can be checked.
    assert check_label_mapping(config, ["negative", "positive"]) is None
    with pytest.raises(ValueError, match="3 classes"):
        check_label_mapping(config, ["a", "b", "c"])

    config.id2label = {0: "NEGATIVE", 1: "POSITIVE"}
    config.label2id = {"NEGATIVE": 0, "POSITIVE": 1}
    assert check_label_mapping(config, ["negative", "positive"]) is None
    with pytest.raises(ValueError, match="remap_labels") as info:
        check_label_mapping(config, ["positive", "negative"])
    assert "['NEGATIVE', 'POSITIVE']" in str(info.value)
    assert "['positive', 'negative']" in str(info.value)
    assert check_label_mapping(config, ["positive", "negative"], remap=True) == {0: 1, 1: 0}
    with pytest.raises(ValueError, match="differ"):
        check_label_mapping(config, ["bad", "good"], remap=True)
    with pytest.raises(ValueError, match="data.label_names"):
        check_label_mapping(config, ["0", "1"])


def test_check_label_mapping_three_way_permutation():
    config = _bert(num_labels=3).config
    config.id2label = {0: "contradiction", 1: "entailment", 2: "neutral"}
    data = ["entailment", "neutral", "contradiction"]
    permutation = check_label_mapping(config, data, remap=True)
    assert permutation == {0: 1, 1: 2, 2: 0}
    for data_id, model_id in permutation.items():
        assert config.id2label[model_id] == data[data_id]


def test_built_students_start_from_the_recipe_seed(tmp_path):
    """Random weights of a built student (a config student; a pretrained student's new
    head) follow ``train.seed``, not whatever the global RNG held before."""
    from tiny import write_tiny_classifier
    from transformers import AutoTokenizer, BertModel

    from textdistill.build import build
    from textdistill.recipe import recipe_from_dict

    teacher = write_tiny_classifier(tmp_path / "teacher")
    # A pretrained encoder without a classification head: the student gets a new one.
    bare = tmp_path / "bare"
    BertModel.from_pretrained(teacher).save_pretrained(bare)
    AutoTokenizer.from_pretrained(teacher).save_pretrained(bare)
    data = {"train": str(tmp_path / "t.csv"), "eval": str(tmp_path / "v.csv"),
            "label_names": ["negative", "positive"]}
    students = {"config": {"config": {"num_layers": 1, "hidden_size": 16, "num_heads": 2,
                                      "intermediate_size": 32}},
                "pretrained": {"pretrained": str(bare)}}

    def weights(kind: str, seed: int) -> dict[str, torch.Tensor]:
        torch.rand(7)  # other work in between moves the global RNG
        recipe = recipe_from_dict({"teacher": {"model": str(teacher)}, "student": students[kind],
                                   "data": data, "train": {"seed": seed},
                                   "output": {"dir": str(tmp_path / "run")}}, source="test")
        model = build(recipe, "distill" if kind == "config" else "finetune",
                      load_data=False).student
        return {k: v.clone() for k, v in model.state_dict().items()}

    for kind in students:
        first, again, other = weights(kind, 3), weights(kind, 3), weights(kind, 4)
        assert all(torch.equal(first[k], again[k]) for k in first), kind
        assert not all(torch.equal(first[k], other[k]) for k in first), kind


def test_a_pretrained_student_can_keep_some_of_its_blocks(tmp_path, monkeypatch):
    """student: {pretrained, layers}: a smaller student from a pretrained model of another
    family than the teacher (issue 15's MiniLM students of an MPNet teacher)."""
    from tiny import write_sentiment_tsv, write_tiny_classifier

    from textdistill.build import build
    from textdistill.errors import ConfigError
    from textdistill.recipe import recipe_from_dict

    monkeypatch.chdir(tmp_path)
    base = write_tiny_classifier(tmp_path / "base", num_layers=4)
    train, dev = write_sentiment_tsv(tmp_path / "data")
    raw = {"student": {"pretrained": str(base), "layers": [0, 3]},
           "data": {"train": str(train), "eval": str(dev), "label_names": ["negative",
                                                                           "positive"]},
           "output": {"dir": "run"}}
    recipe = recipe_from_dict(raw)
    assert recipe.to_dict()["student"] == {"pretrained": str(base), "layers": [0, 3]}
    student = build(recipe, "finetune", load_data=False).student
    full = build(recipe_from_dict({**raw, "student": {"pretrained": str(base)}}), "finetune",
                 load_data=False).student
    assert student.config.num_hidden_layers == 2 and full.config.num_hidden_layers == 4
    kept = student.bert.encoder.layer[1].attention.self.query.weight
    assert torch.equal(kept, full.bert.encoder.layer[3].attention.self.query.weight)
    with pytest.raises(ConfigError, match=r"^student\.layers: only used with student\.pretrained"):
        recipe_from_dict({**raw, "teacher": {"model": str(base)},
                          "student": {"from_teacher": [0], "layers": [0]}})
    with pytest.raises(ConfigError, match=r"^student\.layers"):
        build(recipe_from_dict({**raw, "student": {"pretrained": str(base), "layers": [7]}}),
              "finetune", load_data=False)


def test_student_from_teacher_rebuilds_a_missing_label2id():
    teacher = tiny_bert(num_layers=4)
    teacher.config.id2label = {0: "negative", 1: "positive"}
    teacher.config.label2id = None  # what transformers 5 reloads after id2label= alone
    student = student_from_teacher(teacher, [0, 2])
    assert student.config.label2id == {"negative": 0, "positive": 1}
