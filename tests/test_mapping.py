"""Layer mappings: presets, explicit lists, match expansion and the check table."""

from __future__ import annotations

import pytest

from textdistill.config import ConfigError, Match
from textdistill.models import layer_pairs, mapping_table, matches_from_mapping


@pytest.mark.parametrize(
    ("student", "teacher", "expected"),
    [
        (4, 12, [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]),
        (3, 6, [(0, 0), (1, 2), (2, 4), (3, 6)]),
        (2, 6, [(0, 0), (1, 3), (2, 6)]),
        (4, 4, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]),
    ],
)
def test_uniform_presets(student, teacher, expected):
    assert layer_pairs("uniform", student, teacher) == expected


def test_uniform_rounds_down_when_not_divisible_and_ends_on_last_layer():
    assert layer_pairs("uniform", 5, 12) == [(0, 0), (1, 2), (2, 4), (3, 7), (4, 9), (5, 12)]


def test_uniform_rejects_deeper_student():
    with pytest.raises(ConfigError, match=r"teacher \(2 layers\).*student \(4\)"):
        layer_pairs("uniform", 4, 2)


def test_last_preset_is_only_the_final_pair():
    assert layer_pairs("last", 4, 12) == [(4, 12)]
    assert layer_pairs("last", 6, 6) == [(6, 6)]


def test_skip_preset():
    assert layer_pairs("skip", 3, 12, every=2) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    # Default stride N // M.
    assert layer_pairs("skip", 4, 12) == [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]
    assert layer_pairs("skip", 3, 7) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    with pytest.raises(ConfigError, match="exceeds the teacher's 12 layers"):
        layer_pairs("skip", 4, 12, every=4)
    with pytest.raises(ConfigError, match="every must be an int >= 1"):
        layer_pairs("skip", 4, 12, every=0)
    with pytest.raises(ConfigError, match="exceeds"):
        layer_pairs("skip", 4, 2)


def test_explicit_list_of_student_layer_targets_prepends_embeddings():
    assert layer_pairs([4, 8, 12], 3, 12) == [(0, 0), (1, 4), (2, 8), (3, 12)]


def test_explicit_list_including_embeddings():
    assert layer_pairs([1, 4, 8, 12], 3, 12) == [(0, 1), (1, 4), (2, 8), (3, 12)]


def test_explicit_pairs_used_as_given():
    assert layer_pairs([[1, 6], [3, 12]], 3, 12) == [(1, 6), (3, 12)]
    assert layer_pairs(((0, 0), (2, 5)), 3, 12) == [(0, 0), (2, 5)]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ([4, 8, 13], r"mapping\[2\]: teacher layer 13 .*valid teacher layers are 0\.\.12"),
        ([4, -1, 12], r"mapping\[1\]: teacher layer -1 .*0\.\.12"),
        ([0, 4, 8, 99], r"mapping\[3\]: teacher layer 99"),
        ([[1, 6], [4, 12]], r"mapping\[1\]: student layer 4 .*valid student layers are 0\.\.3"),
        ([[1, 6], [2]], r"mapping\[1\]: expected a \[student_layer, teacher_layer\] pair"),
        ([4, 8], r"needs 3 entries .* or 4 .*got 2"),
        ([4, [2, 8], 12], r"mapping\[1\]: .*mixes forms"),
        ([[1, 6], [1, 6]], r"mapping\[1\]: pair \[1, 6\] repeats entry 0"),
        ([4, "8", 12], r"mapping\[1\]: teacher layer '8'"),
        ([4, True, 12], r"mapping\[1\]: teacher layer True"),
        ([], "must not be empty"),
        ("uniformm", r"'uniformm' is not valid; choose one of \['uniform', 'last', 'skip'\]"),
        ({"1": 2}, "expected a preset name or a list"),
    ],
)
def test_bad_mappings_name_the_entry(mapping, message):
    with pytest.raises(ConfigError, match=message):
        layer_pairs(mapping, 3, 12)


def test_bad_layer_counts():
    with pytest.raises(ConfigError, match="num_student_layers must be an int >= 1"):
        layer_pairs("uniform", 0, 12)
    with pytest.raises(ConfigError, match="num_teacher_layers"):
        layer_pairs("uniform", 2, 1.5)


def test_matches_from_mapping_hidden_and_attention_rules():
    matches = matches_from_mapping("uniform", 2, 4)
    assert [(m.feature, m.student_layer, m.teacher_layer) for m in matches] == [
        ("hidden", 0, 0),
        ("hidden", 1, 2), ("attention", 1, 2),
        ("hidden", 2, 4), ("attention", 2, 4),
    ]
    assert all(isinstance(m, Match) for m in matches)
    assert {m.loss for m in matches if m.feature == "hidden"} == {"hidden_mse"}
    assert {m.loss for m in matches if m.feature == "attention"} == {"attention_mse"}


def test_matches_from_mapping_options():
    matches = matches_from_mapping(
        [[0, 0], [1, 0], [2, 4]], 2, 4, losses={"hidden": "hidden_cos", "attention": "attention_kl"},
        projection="linear+tanh", projection_init="identity", teacher_index=1, weight=0.5,
    )
    hidden = [m for m in matches if m.feature == "hidden"]
    attention = [m for m in matches if m.feature == "attention"]
    assert [(m.student_layer, m.teacher_layer) for m in hidden] == [(0, 0), (1, 0), (2, 4)]
    # (1, 0) has no attention match: the teacher side is the embeddings.
    assert [(m.student_layer, m.teacher_layer) for m in attention] == [(2, 4)]
    assert all(m.loss == "hidden_cos" and m.projection == "linear+tanh"
               and m.projection_init == "identity" for m in hidden)
    assert all(m.loss == "attention_kl" and m.projection is None for m in attention)
    assert all(m.teacher_index == 1 and m.weight == 0.5 for m in matches)
    assert matches[-1].name == "attention_s2_t4_t1/attention_kl"


def test_matches_from_mapping_feature_selection():
    only_hidden = matches_from_mapping("uniform", 2, 4, losses={"hidden": "hidden_mse"})
    assert [m.feature for m in only_hidden] == ["hidden"] * 3
    only_attention = matches_from_mapping("last", 2, 4, losses={"attention": "attention_mse"})
    assert [(m.feature, m.student_layer, m.teacher_layer) for m in only_attention] == [
        ("attention", 2, 4)]
    with pytest.raises(ConfigError, match="'logits' is not valid"):
        matches_from_mapping("uniform", 2, 4, losses={"hidden": "hidden_mse", "logits": "kd_kl"})
    with pytest.raises(ConfigError, match="projection: 'conv'"):
        matches_from_mapping("uniform", 2, 4, projection="conv")


def test_mapping_table_lists_every_match():
    matches = matches_from_mapping("uniform", 2, 6, projection="linear")
    matches.append(Match("hidden", 2, 3, loss="hidden_mmd", weight=0.25, teacher_index=1))
    table = mapping_table(matches)
    lines = table.splitlines()
    assert lines[0].split() == ["feature", "student", "teacher", "t_index", "loss", "weight",
                                "projection"]
    assert len(lines) == 2 + len(matches)
    for line, match in zip(lines[2:], matches, strict=True):
        cells = line.split()
        assert cells[:5] == [match.feature, str(match.student_layer), str(match.teacher_layer),
                             str(match.teacher_index), match.loss]
        assert float(cells[5]) == match.weight
        assert cells[6] == (match.projection or "-")
    # Fixed width: every column starts at the same offset on every row.
    loss_col = lines[0].index("loss")
    assert all(line[loss_col:].startswith(m.loss) for line, m in zip(lines[2:], matches, strict=True))


def test_mapping_table_shows_built_projections():
    from textdistill.models import build_projections

    matches = matches_from_mapping("last", 2, 4)
    projections = build_projections(matches, 32, [64])
    table = mapping_table(matches, projections)
    assert "linear 32->64 (auto)" in table
    assert "t_index" not in table
    assert mapping_table([]) == "(no intermediate matches)"
