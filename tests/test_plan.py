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


@pytest.mark.parametrize(("options", "message"), [
    ({"alpha": 1.0}, r"distill\.logit_loss_options\.alpha: kd_kl has no option 'alpha'; it "
                     r"takes no options"),
    ({"temperature": 3.0}, r"distill\.logit_loss_options\.temperature: set by textdistill "
                           r"from distill\.temperature"),
])
def test_logit_loss_options_are_checked_against_the_loss_signature(options, message):
    config = DistillationConfig(logit_loss_options=options)
    with pytest.raises(ConfigError, match=message):
        plan(config, tiny_bert(seed=0), [tiny_bert(seed=1)])


def test_logit_loss_option_values_are_tried_before_training():
    dkd = DistillationConfig(logit_loss="dkd", logit_loss_options={"unlabeled": "bogus"})
    with pytest.raises(ConfigError, match=r"distill\.logit_loss_options: dkd refuses "
                                          r"\{'unlabeled': 'bogus'\}: .*teacher.*exclude"):
        plan(dkd, tiny_bert(seed=0), [tiny_bert(seed=1)])
    with pytest.raises(ConfigError, match=r"distill\.logit_loss_options\.gamma: dkd has no "
                                          r"option 'gamma'; its options are \['alpha', 'beta'"):
        plan(DistillationConfig(logit_loss="dkd", logit_loss_options={"gamma": 1}),
             tiny_bert(seed=0), [tiny_bert(seed=1)])
    good = DistillationConfig(logit_loss="dkd", logit_loss_options={"alpha": 0.5,
                                                                      "unlabeled": "exclude"})
    assert plan(good, tiny_bert(seed=0), [tiny_bert(seed=1)]).matches == []


@pytest.mark.parametrize(("config", "message"), [
    (DistillationConfig(matches=[Match("hidden", 1, 1, loss="attention_kl")]),
     r"distill\.matches\[0\]\.loss: 'attention_kl' compares attention maps, but this hidden "
     r"match compares hidden states; the losses for hidden states are \['hidden_cos', "
     r"'hidden_mmd', 'hidden_mse', 'pkd'\]"),
    (DistillationConfig(matches=[Match("attention", 1, 1, loss="hidden_mse")]),
     r"distill\.matches\[0\]\.loss: 'hidden_mse' compares hidden states, but this attention "
     r"match compares attention maps; the losses for attention maps are \['attention_kl', "
     r"'attention_mse'\]"),
    (DistillationConfig(logit_loss="hard_ce"),
     r"distill\.logit_loss: 'hard_ce' compares logits against gold labels, but the logit "
     r"loss compares logits; the losses for logits are \['dkd', 'kd_ce', 'kd_kl', "),
])
def test_a_loss_for_another_input_is_refused_naming_the_ones_that_fit(config, message):
    with pytest.raises(ConfigError, match=message):
        plan(config, tiny_bert(seed=0), [tiny_bert(seed=1)])


def test_a_custom_loss_without_a_kind_or_with_any_options_is_trusted():
    from textdistill.losses import register_loss
    from textdistill.losses.registry import _KIND, _REGISTRY

    def anything(student, teacher, mask=None, **options):
        return (student - teacher).pow(2).mean()

    register_loss("test_plan_anything", anything)
    try:
        config = DistillationConfig(logit_loss="test_plan_anything",
                                    logit_loss_options={"whatever": 1},
                                    matches=[Match("attention", 1, 1, loss="test_plan_anything")])
        assert len(plan(config, tiny_bert(seed=0), [tiny_bert(seed=1)]).matches) == 1
    finally:
        _REGISTRY.pop("test_plan_anything")
        _KIND.pop("test_plan_anything", None)


def _distiller(teacher, student, distill, tmp_path):
    from textdistill import Distiller, TrainingConfig

    return Distiller(teacher, student, distill, TrainingConfig(
        output_dir=str(tmp_path / "run"), report_to=[], progress_bar=False))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: DistillationConfig(matches=[Match("hidden", 5, 1)]),
     r"distill\.matches\[0\]\.student_layer: 5 but the student has 2 layers"),
    (lambda: DistillationConfig(teacher_weights=[1.0, 2.0]),
     r"distill\.teacher_weights: 2 weight\(s\) for 1 teacher"),
    (lambda: DistillationConfig(teacher_weights="12"),
     r"distill\.teacher_weights: expected a list of numbers, got '12'"),
    (lambda: DistillationConfig(teacher_weights=["1"]),
     r"distill\.teacher_weights: expected a number, got '1'"),
    (lambda: DistillationConfig(matches=[Match("hidden", 1, 1, weight="0.5")]),
     r"match\.weight: expected a number, got '0\.5'"),
    (lambda: DistillationConfig(logit_loss_options="alpha"),
     r"distill\.logit_loss_options: expected a mapping"),
    (lambda: DistillationConfig(logit_loss_options={"beta": 2.0}),
     r"distill\.logit_loss_options\.beta: kd_kl has no option 'beta'"),
])
def test_python_api_validation_failures_are_config_errors_at_construction(make, message,
                                                                          tmp_path):
    """The messages the CLI prints, raised when the config or the Distiller is made."""
    with pytest.raises(ConfigError, match=message):
        _distiller(tiny_bert(seed=1), tiny_bert(seed=0), make(), tmp_path)


def test_a_teacher_with_other_classes_fails_at_construction_not_at_step_1(tmp_path):
    with pytest.raises(ConfigError, match="teacher 0 has 3 labels, the student 2"):
        _distiller(tiny_bert(seed=1, num_labels=3), tiny_bert(seed=0), DistillationConfig(),
                   tmp_path)
