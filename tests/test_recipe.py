"""Recipes: validation messages, --set overrides, paths and the resolved dump (no models)."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import pytest
import yaml

from textdistill import Schedule
from textdistill.config import MatchPreset
from textdistill.errors import ConfigError
from textdistill.recipe import (
    TRAIN_KEYS,
    apply_overrides,
    load_recipe,
    recipe_from_dict,
)
from textdistill.refs import model_location

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _raw(**sections) -> dict:
    raw = {
        "teacher": {"model": "someone/bert-sst2"},
        "student": {"from_teacher": [0, 2]},
        "data": {"dataset": "stanfordnlp/sst2", "label_names": ["negative", "positive"],
                 "max_length": 64},
        "distill": {"temperature": 2.0, "matches": "uniform"},
        "train": {"lr": 5e-5, "epochs": 1, "batch_size": 16},
        "output": {"dir": "runs/x"},
    }
    for name, value in sections.items():
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = value
    return raw


def _error(raw, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        recipe_from_dict(raw, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- good ones


def test_good_recipe_builds_typed_sections(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = recipe_from_dict(_raw())
    assert recipe.student.kind == "from_teacher"
    assert recipe.student.from_teacher == [0, 2]
    assert recipe.teacher_models == ["someone/bert-sst2"]  # a Hub id stays as written
    assert recipe.distill.temperature == Schedule(2.0)
    assert recipe.distill.matches == MatchPreset("uniform")
    assert recipe.train.output_dir == str(tmp_path / "runs" / "x") and recipe.notes == ()
    assert recipe.train.output_dir == str(tmp_path / "runs" / "x") == recipe.output.dir
    assert recipe.train.lr == 5e-5 and recipe.train.batch_size == 16


@pytest.mark.parametrize("path", sorted(RECIPES.glob("**/*.yaml")),
                         ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.output.dir
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "each recipe starts with a comment block"
    name = path.relative_to(RECIPES).as_posix()
    assert f"recipes/{name}" in text, "the comment shows how to run it"


def test_required_key_names_exist():
    # Other tools set these by name.
    recipe = recipe_from_dict(_raw())
    for section, key in (("train", "lr"), ("train", "epochs"), ("train", "max_steps"),
                         ("train", "batch_size"), ("train", "seed"), ("train", "precision"),
                         ("distill", "temperature"), ("data", "max_train_samples"),
                         ("data", "max_eval_samples"), ("output", "dir")):
        assert hasattr(getattr(recipe, section), key), f"{section}.{key}"
        apply_overrides(_raw(), [f"{section}.{key}=null"])  # a valid override path


def test_other_student_kinds_and_multi_teacher():
    config = recipe_from_dict(_raw(student={"config": {
        "num_layers": 4, "hidden_size": 312, "num_heads": 12, "intermediate_size": 1200}}))
    assert config.student.kind == "config" and config.student.config.hidden_size == 312
    pretrained = recipe_from_dict(_raw(student={"pretrained": "python:some_module"},
                                       teacher=None))
    assert pretrained.student.pretrained == "python:some_module"
    assert pretrained.teacher is None
    multi = recipe_from_dict(_raw(teacher={"model": ["a/one", "b/two"]},
                                  distill={"teacher_weights": [1, 3]}))
    assert multi.teacher_models == ["a/one", "b/two"]


def test_default_output_dir_is_runs_recipe_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "my-recipe.yaml"
    path.write_text(yaml.safe_dump(_raw(output=None)), encoding="utf-8")
    assert load_recipe(path).output.dir == str(tmp_path / "runs" / "my-recipe")


# ---------------------------------------------------------------------------- bad ones


def test_unknown_keys_name_the_path_and_valid_keys():
    message = _error(_raw(student={"form_teacher": [0]}))
    assert message.startswith("unknown key student.form_teacher; valid keys:")
    assert "'config'" in message and "'from_teacher'" in message and "'pretrained'" in message
    message = _error({**_raw(), "trian": {}})
    assert "unknown key trian" in message and "'train'" in message
    message = _error(_raw(train={"lrr": 1e-4}))
    assert "unknown key train.lrr" in message and "'lr'" in message
    assert "'output_dir'" not in message  # not a recipe key
    message = _error(_raw(data={"dataset": "x", "text_column": ["a"]}))
    assert "unknown key data.text_column" in message and "'text_columns'" in message


def test_wrong_types_and_bad_choices_name_the_key():
    assert _error(_raw(train={"lr": "fast"})).startswith("train.lr: expected a number")
    assert _error(_raw(train={"batch_size": 2.5})).startswith("train.batch_size: expected an int")
    message = _error(_raw(train={"precision": "fp8"}))
    assert message.startswith("train.precision:") and "'bf16'" in message
    message = _error(_raw(distill={"matches": "everything"}))
    assert message.startswith("distill.matches") and "'uniform'" in message
    message = _error(_raw(distill={"matches": [{"feature": "hiden", "student_layer": 1,
                                                 "teacher_layer": 2}]}))
    assert message.startswith("distill.matches[0].feature:") and "'hidden'" in message
    assert _error(_raw(teacher={"model": 3})).startswith("teacher.model:")
    assert _error(_raw(output={"overwrite": "yes"})).startswith("output.overwrite: expected")
    assert _error(_raw(student="small")).startswith("student: expected a mapping")


def test_student_needs_exactly_one_kind():
    message = _error(_raw(student={"from_teacher": [0], "pretrained": "x/y"}))
    assert "student: give exactly one of ['from_teacher', 'config', 'pretrained']" in message
    assert "got from_teacher and pretrained" in message
    assert "got none" in _error(_raw(student={}))
    message = _error(_raw(student={"config": {"num_layers": 4, "hidden_size": 30,
                                              "num_heads": 4, "intermediate_size": 64}}))
    assert message.startswith("student.config.hidden_size: 30 is not divisible")
    assert _error(_raw(student={"from_teacher": []})).startswith("student.from_teacher:")


def test_train_output_dir_and_max_length_are_rejected():
    message = _error(_raw(train={"output_dir": "runs/x"}))
    assert message.startswith("train.output_dir:") and "output.dir" in message
    message = _error(_raw(train={"max_length": 64}))
    assert message.startswith("train.max_length:") and "data.max_length" in message
    assert "output_dir" not in TRAIN_KEYS and "lr" in TRAIN_KEYS


def test_missing_required_keys():
    assert _error(_raw(student=None)) == "missing required key(s): student"
    assert "missing required key(s): data" in _error(_raw(data=None))
    message = _error(_raw(student={"config": {"num_layers": 4, "hidden_size": 32}}))
    assert message.startswith("missing required key(s): student.config.num_heads")
    assert "output.dir" in _error(_raw(output=None))  # no file name to default from
    assert _error(_raw(teacher={"remap_labels": True})).startswith(
        "missing required key(s): teacher.model")
    message = _error(_raw(data={"max_length": 64}))
    assert message.startswith("data.train: without data.dataset, data.train and data.eval "
                              "are local files")


def test_cross_section_checks():
    message = _error(_raw(teacher=None))
    assert message.startswith("student.from_teacher:") and "teacher.model" in message
    # Checks that need the models (losses, layers, teacher counts) are plan()'s: test_plan.py.


# -------------------------------------------------------------------------- overrides


def test_overrides_reach_the_config():
    raw = _raw()
    before = copy.deepcopy(raw)
    changed = apply_overrides(raw, [
        "train.lr=3e-5", "data.max_train_samples=2000", "distill.temperature=4",
        "student.from_teacher=[0, 1, 3]", "train.report_to=[]",
        "train.group_by_length=false", "distill.logit_loss_options.alpha=2",
        "teacher.model=[a/one, b/two]", "distill.teacher_weights=[1, 2]",
    ])
    assert raw == before, "the caller's dict is never changed"
    recipe = recipe_from_dict(changed)
    assert recipe.train.lr == 3e-5  # YAML reads 3e-5 as a string; the schema makes it a float
    assert recipe.data.max_train_samples == 2000
    assert recipe.distill.temperature == Schedule(4.0)
    assert recipe.student.from_teacher == [0, 1, 3]
    assert recipe.train.report_to == [] and recipe.train.group_by_length is False
    assert recipe.distill.logit_loss_options == {"alpha": 2}
    assert recipe.teacher_models == ["a/one", "b/two"]


def test_overrides_create_sections_and_clear_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = _raw(output=None, train=None)
    recipe = recipe_from_dict(apply_overrides(raw, ["output.dir=elsewhere", "train.seed=7",
                                                    "data.max_eval_samples=null"]))
    assert recipe.output.dir == str(tmp_path / "elsewhere") and recipe.train.seed == 7
    # Switching the student's kind: clear the old one.
    switched = apply_overrides(_raw(), ["student.from_teacher=null", "student.pretrained=x/y"])
    assert recipe_from_dict(switched).student.kind == "pretrained"
    message = _error(apply_overrides(_raw(), ["student.pretrained=x/y"]))
    assert "--set student.from_teacher=null" in message


@pytest.mark.parametrize("item, expected", [
    ("train.lrr=1", "--set train.lrr: unknown key train.lrr; valid keys: ["),
    ("trian.lr=1", "--set trian.lr: unknown key trian; valid keys: ['teacher'"),
    ("student.config.layers=1", "unknown key student.config.layers; valid keys: "
                                "['hidden_size', 'intermediate_size', 'num_heads', 'num_layers']"),
    ("student.from_teacher.x=1", "student.from_teacher is a value, not a section"),
    ("train.output_dir=x", "train.output_dir is not a recipe key; the run directory is "
                           "output.dir"),
    ("train.lr.x=1", "--set train.lr.x: train.lr is a value, not a section"),
    ("train.lr", "--set 'train.lr': expected KEY=VALUE"),
    ("train..lr=1", "empty part in the key path"),
    ("train.lr=[1, 2", "cannot parse value"),
])
def test_bad_override_paths(item, expected):
    with pytest.raises(ConfigError) as info:
        apply_overrides(_raw(), [item])
    assert expected in str(info.value)


def test_override_values_still_get_validated():
    with pytest.raises(ConfigError, match=r"^train.epochs: must be > 0"):
        recipe_from_dict(apply_overrides(_raw(), ["train.epochs=0"]))


# ------------------------------------------------------------------------------ paths


def test_paths_expand_env_vars_home_and_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TD_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TD_UNSET", raising=False)
    raw = _raw(data={"train": "${TD_DATA}/train.tsv", "eval": "${TD_UNSET:-fallback}/dev.tsv"},
               teacher={"model": "~/models/teacher"}, output={"dir": "$TD_DATA/run"})
    recipe = recipe_from_dict(raw)
    assert recipe.data.train == str(tmp_path / "data" / "train.tsv")
    assert recipe.data.eval == str(tmp_path / "fallback" / "dev.tsv")
    assert recipe.teacher_models == [str(tmp_path / "home" / "models" / "teacher")]
    assert recipe.output.dir == str(tmp_path / "data" / "run")
    # A relative directory path is local (absolute against the cwd); owner/name is a Hub id.
    local = recipe_from_dict(_raw(teacher={"model": "runs/t/best"}))
    assert local.teacher_models == [str(tmp_path / "runs" / "t" / "best")]
    (tmp_path / "mymodel").mkdir()
    assert recipe_from_dict(_raw(teacher={"model": "mymodel"})).teacher_models == [
        str(tmp_path / "mymodel")]
    message = _error(_raw(data={"train": "${TD_UNSET}/t.tsv", "eval": "v.tsv"}))
    assert message.startswith("data.train: environment variable TD_UNSET is not set")
    shared = recipe_from_dict(_raw(train={"teacher_cache": "$TD_DATA/logits"}))
    assert shared.train.teacher_cache_dir == str(tmp_path / "data" / "logits")
    # With a Hub dataset, data.train and data.eval are split names, never paths.
    hub = recipe_from_dict(_raw(data={"dataset": "glue", "eval": "validation_matched"}))
    assert hub.data.eval == "validation_matched"


def test_python_model_references(monkeypatch, tmp_path):
    fake = types.ModuleType("td_fake_model_pkg")
    fake.get_model_path = lambda: tmp_path / "model"
    monkeypatch.setitem(sys.modules, "td_fake_model_pkg", fake)
    recipe = recipe_from_dict(_raw(teacher={"model": "python:td_fake_model_pkg"}))
    assert recipe.teacher_models == ["python:td_fake_model_pkg"]  # kept portable
    assert model_location("python:td_fake_model_pkg", "teacher.model") == str(tmp_path / "model")
    assert model_location("someone/model", "teacher.model") == "someone/model"
    with pytest.raises(ConfigError, match=r"^teacher.model: cannot import 'td_no_such_pkg'"):
        model_location("python:td_no_such_pkg", "teacher.model")
    monkeypatch.setitem(sys.modules, "td_no_getter", types.ModuleType("td_no_getter"))
    with pytest.raises(ConfigError, match="has no get_model_path"):
        model_location("python:td_no_getter", "teacher.model")


# ------------------------------------------------------------------------------- dump


def test_resolved_dump_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = _raw(distill={"matches": [{"feature": "hidden", "student_layer": 2,
                                     "teacher_layer": 4, "projection": "linear"}],
                        "soft_weight": {"start": 1.0, "end": 0.0}},
               teacher={"model": "t/one", "remap_labels": True})
    recipe = recipe_from_dict(raw)
    dumped = recipe.to_dict()
    assert set(dumped) == {"teacher", "student", "data", "distill", "train", "output"}
    assert "output_dir" not in dumped["train"]
    assert dumped["student"] == {"from_teacher": [0, 2]}
    assert dumped["distill"]["temperature"] == 2.0
    assert dumped["distill"]["soft_weight"] == {"start": 1.0, "end": 0.0, "kind": "linear"}
    again = recipe_from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again.to_dict() == dumped
    assert again.distill.soft_weight == Schedule(1.0, end=0.0)
    preset = recipe_from_dict(_raw(distill={"matches": {"preset": "skip", "every": 2}}))
    assert preset.to_dict()["distill"]["matches"]["every"] == 2
    assert recipe_from_dict(_raw()).to_dict()["distill"]["matches"] == "uniform"


def test_yaml_errors_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_recipe(listy)


def test_every_recipe_setting_has_help_next_to_its_field():
    """The recipe reference is generated from this text (peft-style field metadata)."""
    from textdistill.recipe import _SCHEMA
    from textdistill.schema import settings

    missing = [key for name, cls in _SCHEMA.items()
               for key, _, _, help_text in settings(cls, f"{name}.") if not help_text.strip()]
    assert not missing, missing


def test_a_key_written_twice_is_an_error_naming_both_lines(tmp_path):
    """YAML itself keeps the last value silently."""
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  lr: 1.0e-4\n  epochs: 2\n  lr: 3.0e-5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*key 'lr' appears twice in one "
                                          r"mapping \(lines 2 and 4\)"):
        load_recipe(path)
    with pytest.raises(ConfigError, match="appears twice"):
        apply_overrides(_raw(), ["distill.logit_loss_options={alpha: 1, alpha: 2}"])


@pytest.mark.parametrize("item", ["train.lr=.inf", "train.epochs=.nan", "distill.temperature=.nan",
                                  "distill.hard_weight=-.inf", "train.warmup=.nan"])
def test_non_finite_numbers_are_refused_on_load(item):
    key = item.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}(\.start)?: must be a finite number"):
        recipe_from_dict(apply_overrides(_raw(), [item]))
