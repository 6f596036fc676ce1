"""Width projections: kinds, inits, automatic building and the save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from textdistill.config import PROJECTION_INITS, PROJECTIONS, ConfigError, Match
from textdistill.models import (
    CROSS_WIDTH_LOSSES,
    Projection,
    build_projections,
    load_projections,
    matches_from_mapping,
    save_projections,
)


@pytest.mark.parametrize("kind", PROJECTIONS)
def test_round_trip_gives_identical_parameters_and_outputs(tmp_path, kind):
    torch.manual_seed(0)
    projections = torch.nn.ModuleDict({
        "hidden_s1_t2": Projection(8, 12, kind=kind, init="xavier"),
        "hidden_s2_t4_t1": Projection(8, 6, kind=kind, init="normal"),
    })
    # Move off the init so the test would notice a reload that only re-initialises.
    with torch.no_grad():
        for param in projections.parameters():
            param.add_(torch.randn_like(param))
    save_projections(projections, tmp_path / "proj")
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == [
        "projections.json", "projections.safetensors"]
    specs = json.loads((tmp_path / "proj" / "projections.json").read_text())
    assert specs["hidden_s1_t2"] == {"in_features": 8, "out_features": 12, "kind": kind,
                                     "init": "xavier"}

    loaded = load_projections(tmp_path / "proj")
    assert list(loaded.keys()) == list(projections.keys())
    before, after = projections.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    x = torch.randn(2, 5, 8)
    for name in projections:
        assert loaded[name].spec() == projections[name].spec()
        assert torch.equal(loaded[name](x), projections[name](x))


def test_round_trip_of_empty_projections(tmp_path):
    save_projections(torch.nn.ModuleDict(), tmp_path)
    assert len(load_projections(tmp_path)) == 0


def test_forward_shapes_and_activations():
    x = torch.randn(2, 3, 4, 8)
    for kind in PROJECTIONS:
        assert Projection(8, 16, kind=kind)(x).shape == (2, 3, 4, 16)
    relu = Projection(8, 16, kind="linear+relu")
    assert (relu(x) >= 0).all()
    tanh = Projection(8, 16, kind="linear+tanh", init="normal")
    assert (tanh(x).abs() < 1).all()
    spec = Projection(8, 16, kind="linear+tanh", init="zeros").spec()
    assert spec == {"in_features": 8, "out_features": 16, "kind": "linear+tanh",
                    "init": "zeros"}
    json.dumps(spec)


def test_identity_init():
    x = torch.randn(2, 5, 8)
    assert torch.equal(Projection(8, 8, init="identity")(x), x)
    # Widening copies the student features into the first columns, zeros after.
    wide = Projection(8, 12, init="identity")(x)
    assert torch.equal(wide[..., :8], x)
    assert torch.equal(wide[..., 8:], torch.zeros(2, 5, 4))
    # Narrowing keeps the first out_features features.
    assert torch.equal(Projection(8, 4, init="identity")(x), x[..., :4])


def test_other_inits():
    torch.manual_seed(0)
    zeros = Projection(16, 32, init="zeros")
    assert not zeros.linear.weight.any() and not zeros.linear.bias.any()
    normal = Projection(256, 512, init="normal")
    assert abs(normal.linear.weight.std().item() - 0.02) < 0.002
    assert not normal.linear.bias.any()
    xavier = Projection(256, 512, init="xavier")
    bound = (6 / (256 + 512)) ** 0.5
    assert xavier.linear.weight.abs().max().item() <= bound
    assert xavier.linear.weight.std().item() > bound / 2  # not collapsed to ~0
    assert not xavier.linear.bias.any()
    assert set(PROJECTION_INITS) == {"xavier", "normal", "identity", "zeros"}


def test_bad_kind_or_init():
    with pytest.raises(ConfigError, match="'conv' is not valid"):
        Projection(4, 4, kind="conv")
    with pytest.raises(ConfigError, match="'orthogonal' is not valid"):
        Projection(4, 4, init="orthogonal")


def test_build_adds_linear_projection_when_widths_differ():
    matches = matches_from_mapping("uniform", 2, 4)
    projections = build_projections(matches, 32, [64])
    hidden_names = [m.name for m in matches if m.feature == "hidden"]
    assert list(projections.keys()) == hidden_names  # attention matches never get one
    for module in projections.values():
        assert module.spec() == {"in_features": 32, "out_features": 64, "kind": "linear",
                                 "init": "xavier"}
    tanh = matches_from_mapping("uniform", 2, 4, projection="linear+tanh")
    assert {m.kind for m in build_projections(tanh, 32, [64]).values()} == {"linear+tanh"}


def test_build_adds_nothing_when_widths_agree_or_loss_crosses_widths():
    assert len(build_projections(matches_from_mapping("uniform", 2, 4), 32, [32])) == 0
    assert "hidden_mmd" in CROSS_WIDTH_LOSSES
    mmd = matches_from_mapping("uniform", 2, 4, losses={"hidden": "hidden_mmd"})
    assert len(build_projections(mmd, 32, [64])) == 0


def test_build_honours_explicit_projection_and_teacher_index():
    matches = [
        # Explicit kind and init even at equal widths.
        Match("hidden", 1, 2, projection="linear+relu", projection_init="identity"),
        # Reads teacher 1 (width 48): auto projection to that width.
        Match("hidden", 2, 4, teacher_index=1, projection_init="zeros"),
        # Teacher 0 has the student's width: nothing.
        Match("hidden", 2, 4),
        Match("attention", 2, 4, teacher_index=1),
    ]
    projections = build_projections(matches, 32, [32, 48])
    assert list(projections.keys()) == ["hidden_s1_t2/hidden_mse", "hidden_s2_t4_t1/hidden_mse"]
    assert projections["hidden_s1_t2/hidden_mse"].spec() == {
        "in_features": 32, "out_features": 32, "kind": "linear+relu", "init": "identity"}
    assert projections["hidden_s2_t4_t1/hidden_mse"].spec() == {
        "in_features": 32, "out_features": 48, "kind": "linear", "init": "zeros"}


def test_build_errors():
    with pytest.raises(ConfigError, match="teacher_index 1 but only 1 teacher"):
        build_projections([Match("hidden", 1, 1, teacher_index=1)], 32, [64])
    clash = [Match("hidden", 1, 1, projection="linear"),
             Match("hidden", 1, 1, projection="linear+tanh")]
    with pytest.raises(ConfigError, match="conflicting projections"):
        build_projections(clash, 32, [64])
    # Two losses on one layer pair are two matches, each with its own projection.
    two = [Match("hidden", 1, 1), Match("hidden", 1, 1, loss="hidden_cos")]
    assert list(build_projections(two, 32, [64]).keys()) == ["hidden_s1_t1/hidden_mse",
                                                             "hidden_s1_t1/hidden_cos"]
