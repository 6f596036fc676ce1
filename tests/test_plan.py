"""plan(): a distillation config checked against real models, before any training."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_bert

from textdistill import DistillationConfig, Match
from textdistill.config import MatchPreset
from textdistill.errors import ConfigError
from textdistill.losses import get_loss
from textdistill.models.adaptors import hf_adaptor
from textdistill.objective import Objective
from textdistill.plan import plan


def test_two_losses_on_one_layer_pair_stay_two_terms():
    """Both terms used to collapse into the second loss (one dict entry per layer pair)."""
    student, teacher = tiny_bert(num_layers=2, seed=0), tiny_bert(num_layers=2, seed=1)
    config = DistillationConfig(matches=[Match("hidden", 1, 1, loss="hidden_mse"),
                                         Match("hidden", 1, 1, loss="hidden_cos")])
    resolved = plan(config, student, [teacher])
    assert len({m.name for m in resolved.matches}) == 2
    objective = Objective(config, resolved.matches, resolved.projections, 1)
    batch = {"input_ids": torch.randint(5, 60, (3, 7)),
             "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    s_view = hf_adaptor(student, batch, hidden_states=True)
    t_view = hf_adaptor(teacher, batch, hidden_states=True)
    out = objective(s_view, None, 0.0, [t_view.logits], [t_view])
    s_h, t_h = s_view.hidden_states[1], t_view.hidden_states[1]
    mask = batch["attention_mask"]
    expected = {"hidden_mse": get_loss("hidden_mse")(s_h, t_h, mask),
                "hidden_cos": get_loss("hidden_cos")(s_h, t_h, mask)}
    assert expected["hidden_mse"].item() != pytest.approx(expected["hidden_cos"].item())
    for match in resolved.matches:
        assert out.components[match.name].item() == pytest.approx(expected[match.loss].item())


def test_a_repeated_match_is_refused_with_both_keys():
    student, teacher = tiny_bert(seed=0), tiny_bert(seed=1)
    config = DistillationConfig(matches=[Match("hidden", 1, 1), Match("hidden", 1, 1)])
    with pytest.raises(ConfigError, match=r"distill\.matches\[1\]: repeats distill\.matches\[0\]"):
        plan(config, student, [teacher])


@pytest.mark.parametrize(("match", "message"), [
    (Match("hidden", 3, 1), r"distill\.matches\[0\]\.student_layer: 3 but the student has 2 "),
    (Match("attention", 1, 5), r"distill\.matches\[0\]\.teacher_layer: 5 but the teacher has 2 "
                               r"layers \(valid: 1\.\.2\)"),
    (Match("hidden", 1, 1, teacher_index=1), r"distill\.matches\[0\]\.teacher_index: 1 but "
                                             r"there are 1 teacher"),
    (Match("hidden", 1, 1, loss="nope"), r"distill\.matches\[0\]\.loss: 'nope' is not a "
                                         r"registered loss"),
])
def test_matches_the_models_cannot_serve_are_config_errors(match, message):
    with pytest.raises(ConfigError, match=message):
        plan(DistillationConfig(matches=[match]), tiny_bert(seed=0), [tiny_bert(seed=1)])


def test_teacher_weights_and_label_counts_are_checked_once_here():
    student = tiny_bert(seed=0)
    with pytest.raises(ConfigError, match=r"distill\.teacher_weights: 1 weight\(s\) for 2"):
        plan(DistillationConfig(teacher_weights=[1.0]), student,
             [tiny_bert(seed=1), tiny_bert(seed=2)])
    with pytest.raises(ConfigError, match="teacher 0 has 3 labels, the student 2"):
        plan(DistillationConfig(), student, [tiny_bert(seed=1, num_labels=3)])


def test_preset_expands_with_its_losses_and_projection_and_notes_head_averaging():
    student = tiny_bert(num_layers=2, hidden_size=16, num_heads=2, seed=0)
    teacher = tiny_bert(num_layers=4, hidden_size=32, num_heads=4, seed=1)
    preset = MatchPreset("uniform", losses={"hidden": "hidden_cos", "attention": "attention_kl"})
    resolved = plan(DistillationConfig(matches=preset), student, [teacher])
    pairs = [(m.feature, m.student_layer, m.teacher_layer, m.loss) for m in resolved.matches]
    assert pairs == [("hidden", 0, 0, "hidden_cos"), ("hidden", 1, 2, "hidden_cos"),
                     ("attention", 1, 2, "attention_kl"), ("hidden", 2, 4, "hidden_cos"),
                     ("attention", 2, 4, "attention_kl")]
    hidden = [m.name for m in resolved.matches if m.feature == "hidden"]
    assert sorted(resolved.projections) == sorted(hidden)  # 16 -> 32: projected
    assert resolved.notes and "head-averaged" in resolved.notes[0]


def test_fine_tuning_plans_nothing():
    resolved = plan(DistillationConfig(matches="uniform"), tiny_bert(seed=0), [])
    assert resolved.matches == [] and len(resolved.projections) == 0


def test_a_temperature_near_zero_is_noted():
    student, teacher = tiny_bert(seed=0), tiny_bert(seed=1)
    cold = plan(DistillationConfig(temperature=1e-6), student, [teacher])
    assert any("distill.temperature: 1e-06 is below 0.05" in n for n in cold.notes)
    assert not plan(DistillationConfig(temperature=0.5), student, [teacher]).notes
