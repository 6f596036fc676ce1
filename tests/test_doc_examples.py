"""The shared checks of the README's and the docs pages' examples (tests/doc_examples.py)
fail on what they exist to catch."""

from __future__ import annotations

import shlex

import pytest
from doc_examples import (
    Block,
    check_command,
    check_shell_block,
    check_yaml_block,
    fenced_blocks,
    makefile_targets,
)

from textdistill.errors import ConfigError


@pytest.mark.parametrize("command", ["textdistill export only-one-dir",
                                     "textdistill quantize a b --method int4",
                                     "torchrun -m textdistill.cli distill r.yaml --no-such-flag",
                                     "torchrun --no-such-launcher-flag -m textdistill.cli check r",
                                     "accelerate launch -m textdistill.cli distil r.yaml"])
def test_a_shell_example_that_does_not_parse_fails(command):
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_command(shlex.split(command))


def test_a_launcher_line_is_checked_only_when_it_runs_the_cli():
    assert check_command(shlex.split("accelerate launch --multi_gpu --num_processes 2 "
                                     "-m textdistill.cli distill my_recipe.yaml"))
    assert not check_command(shlex.split("torchrun --nproc_per_node 2 my_distill.py"))


def test_a_make_target_or_extra_that_does_not_exist_fails():
    with pytest.raises(AssertionError, match="no such target"):
        check_command(["make", "no-such-target"])
    with pytest.raises(AssertionError, match="no such extra"):
        check_command(["pip", "install", "textdistill[no-such-extra]"])
    assert {"test", "docs", "quickstart"} <= makefile_targets()


@pytest.mark.parametrize("line", [
    "textdistill export RUN_DIR HUB_DIR [--push REPO_ID] [--overwrite]",
    "textdistill quantize MODEL_OR_RUN_DIR OUT_DIR [--method onnx|onnx-int8] [--data DATA]",
    "textdistill prune MODEL_OR_RUN_DIR OUT_DIR --heads F --ffn F [--batches N]"])
def test_a_synopsis_line_parses_with_its_placeholders(line):
    assert check_command(shlex.split(line), synopsis=True)


@pytest.mark.parametrize("line", [
    "textdistill export RUN_DIR HUB_DIR [--no-such-flag]",
    "textdistill quantize MODEL_OR_RUN_DIR OUT_DIR [--method int4|onnx]",
    "textdistill prune MODEL_OR_RUN_DIR OUT_DIR --heads FRACTION",  # its metavar is F
    "textdistill distil RECIPE"])
def test_a_synopsis_line_that_does_not_match_the_parser_fails(line):
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        check_command(shlex.split(line), synopsis=True)


def test_an_unchecked_command_needs_a_not_run_marker():
    with pytest.raises(AssertionError, match="neither checked nor marked"):
        check_shell_block(Block("bash", "python my_distill.py\n", "", "h"), "page.md")
    check_shell_block(Block("bash", "python my_distill.py\n", "not run: a user script", "h"),
                      "page.md")


def test_fenced_blocks_read_the_marker_and_the_heading():
    text = ("# Title\n## Section\ntext\n<!-- recipe fragment -->\n```yaml\na: 1\n```\n"
            "### Sub\n```bash\n# a comment, not a heading\nmake test\n```\n```\nplain\n```\n")
    assert fenced_blocks(text) == [
        Block("yaml", "a: 1\n", "recipe fragment", "Section"),
        Block("bash", "# a comment, not a heading\nmake test\n", "", "Sub"),
        Block("", "plain\n", "", "Sub")]


def test_a_fragment_completes_the_base_recipe_and_a_bad_key_fails():
    check_yaml_block(Block("yaml", "data:\n  augment: {copies: 2}\n", "recipe fragment", ""))
    check_yaml_block(Block("yaml", "student:\n  pretrained: some-dir\n", "recipe fragment", ""))
    with pytest.raises(ConfigError, match="missing required key"):
        check_yaml_block(Block("yaml", "distill:\n  temperature: 2.0\n", "", ""))
    with pytest.raises(ConfigError, match="no_such_key"):
        check_yaml_block(Block("yaml", "distill:\n  no_such_key: 1\n", "recipe fragment", ""))
