"""Schedules carry the temperature and every loss weight over training."""

from __future__ import annotations

import math

import pytest
from tiny import tiny_bert, tiny_dataset

from textdistill import DistillationConfig, Distiller, Schedule, TrainingConfig
from textdistill.errors import ConfigError
from textdistill.objective import Objective
from textdistill.schema import from_dict, plain_data


@pytest.mark.parametrize(("kind", "middle"), [("constant", 4.0), ("linear", 2.5),
                                              ("cosine", 2.5)])
def test_each_kind_at_its_ends_and_midpoint(kind, middle):
    schedule = Schedule(4.0, end=1.0, kind=kind)
    assert schedule.value(0.0) == 4.0
    assert schedule.value(0.5) == pytest.approx(middle)
    assert schedule.value(1.0) == (4.0 if kind == "constant" else 1.0)
    # Progress outside [0, 1] (a last partial step) is clamped, never extrapolated.
    assert schedule.value(1.5) == schedule.value(1.0)


def test_cosine_is_flat_at_the_ends_and_steepest_midway():
    schedule = Schedule(1.0, end=0.0, kind="cosine")
    assert schedule.value(0.25) == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))
    early = schedule.value(0.0) - schedule.value(0.05)
    middle = schedule.value(0.475) - schedule.value(0.525)
    assert middle > 5 * early


def test_a_number_is_a_constant_and_a_mapping_a_schedule():
    config = from_dict(DistillationConfig, {"temperature": 3, "soft_weight":
                                            {"start": 1.0, "end": 0.0}}, "distill")
    assert config.temperature == Schedule(3.0)
    assert config.soft_weight.value(1.0) == 0.0
    assert plain_data(config)["temperature"] == 3.0
    assert plain_data(config)["soft_weight"] == {"start": 1.0, "end": 0.0, "kind": "linear"}
    assert DistillationConfig(temperature=4).temperature.value(0.7) == 4.0


@pytest.mark.parametrize(("raw", "message"), [
    ({"temperature": {"start": 2, "end": 0}}, r"distill\.temperature: must be > 0, got 0"),
    ({"hard_weight": {"start": 1, "kind": "step"}}, r"distill\.hard_weight\.kind: 'step'"),
    ({"soft_weight": float("nan")}, r"distill\.soft_weight\.start: must be a finite number"),
])
def test_bad_schedules_name_their_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DistillationConfig, raw, "distill")


def test_objective_weights_follow_every_schedule():
    config = DistillationConfig(temperature=Schedule(4.0, end=1.0),
                                soft_weight=Schedule(1.0, end=0.0, kind="cosine"),
                                hard_weight=Schedule(0.0, end=1.0),
                                intermediate_weight=0.3)
    objective = Objective(config, [], {}, num_teachers=1)
    start, middle, end = (objective.weights(p) for p in (0.0, 0.5, 1.0))
    assert (start.temperature, start.soft, start.hard, start.intermediate) == (4.0, 1.0, 0.0, 0.3)
    assert (middle.temperature, middle.soft, middle.hard) == pytest.approx((2.5, 0.5, 0.5))
    assert (end.temperature, end.soft, end.hard, end.intermediate) == (1.0, 0.0, 1.0, 0.3)
    finetune = Objective(None, [], {}, num_teachers=0).weights(0.5)
    assert (finetune.soft, finetune.hard) == (0.0, 1.0)


def test_teacher_annealing_end_to_end_uses_the_scheduled_weights(tmp_path, monkeypatch):
    """The weights the loss actually used: all soft at the first step, all hard at the last."""
    used = []
    original = Objective.weights

    def recording(self, progress):
        weights = original(self, progress)
        used.append(weights)
        return weights

    monkeypatch.setattr(Objective, "weights", recording)
    config = DistillationConfig(soft_weight=Schedule(1.0, end=0.0),
                                hard_weight=Schedule(0.0, end=1.0), temperature=2.0)
    training = TrainingConfig(output_dir=str(tmp_path), batch_size=8, max_steps=5, warmup=0.0,
                              logging_steps=1, report_to=[], progress_bar=False)
    distiller = Distiller(tiny_bert(seed=1), tiny_bert(seed=2), config, training)
    history = distiller.train(tiny_dataset(40))
    assert len(used) == 5
    assert (used[0].soft, used[0].hard) == (1.0, 0.0)
    assert (used[-1].soft, used[-1].hard) == pytest.approx((0.2, 0.8))  # progress 4/5
    logged = history.train
    assert "loss/kd" in logged[0] and "loss/hard" not in logged[0]  # weight 0: not computed
    assert "loss/hard" in logged[-1]
