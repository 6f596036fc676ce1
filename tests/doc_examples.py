"""The checks that README.md's and the docs pages' code examples share: fenced blocks
with their marker and heading, shell lines checked against what they name, and YAML
blocks validated as recipes (tests/test_readme.py and tests/test_docs.py apply them).

A fenced block may be preceded, on the line right above its fence, by a marker comment:

* ``<!-- not run: why -->``: a shell block whose commands need real models, GPUs or
  minutes; its checkable lines are still checked, and other lines are allowed;
* ``<!-- synopsis -->``: a shell block of usage lines, ``[optional]`` parts, ``a|b``
  alternatives and ``--flag METAVAR`` placeholders as ``textdistill VERB --help`` shows
  them; each line is parsed with its optional parts given, the first alternative, and
  its placeholders left out;
* ``<!-- recipe fragment -->``: a YAML block that is part of a recipe (unmarked YAML is
  a whole recipe).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```(\w*)$")
_HEADING = re.compile(r"^#{1,6} (.+)$")
_MARKER = re.compile(r"^<!-- (.*?) -->$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    language: str  # the fence's info string ("" for a plain ```)
    code: str
    marker: str  # the <!-- ... --> comment right above the fence ("" without one)
    heading: str  # the nearest heading above, without its #s


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block of the Markdown ``text``, in order."""
    blocks, heading, opened, body = [], "", None, []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if opened is not None:
            if line == "```":
                blocks.append(Block(opened[0], "".join(f"{row}\n" for row in body),
                                    opened[1], heading))
                opened, body = None, []
            else:
                body.append(line)
            continue
        fence = _FENCE.match(line)
        if fence:
            marker = _MARKER.match(lines[number - 1]) if number else None
            opened = (fence[1], marker[1] if marker else "")
        elif _HEADING.match(line):
            heading = _HEADING.match(line)[1]
    return blocks


def code_blocks(page: Path, language: str) -> list[Block]:
    """The ``language`` blocks of the Markdown file ``page``."""
    return [block for block in fenced_blocks(page.read_text(encoding="utf-8"))
            if block.language == language]


# --------------------------------------------------------------------------- shell


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {t for line in re.findall(r"^([\w .-]+):(?!=)", text, re.MULTILINE)
            for t in line.split()}


def extras() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = \[", section, re.MULTILINE))


def shell_commands(code: str) -> list[list[str]]:
    """Each command of a shell block as argv: comments, line continuations and leading
    ``VAR=value`` assignments removed."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        while argv and re.match(r"^\w+=", argv[0]):
            argv = argv[1:]
        if argv:
            commands.append(argv)
    return commands


def _verb_help(verb: str) -> str:
    """``textdistill VERB --help`` ("" for no such verb)."""
    from textdistill.cli import build_parser

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.suppress(SystemExit):
        build_parser().parse_args([verb, "--help"])
    return shown.getvalue()


def synopsis_argv(argv: list[str]) -> list[str]:
    """A ``textdistill`` usage line as a command line to parse: every ``[optional]``
    part given, the first of ``a|b`` alternatives, and each ``--flag METAVAR`` that the
    verb's ``--help`` shows left out. A flag it does not show stays in and fails to parse,
    as does a number option's placeholder that is not its metavar."""
    argv = [token.strip("[]").split("|")[0] for token in argv]
    shown = _verb_help(argv[1]) if len(argv) > 1 else ""
    kept, i = [], 0
    while i < len(argv):
        pair = argv[i:i + 2]
        if (len(pair) == 2 and pair[0].startswith("--") and re.fullmatch(r"[A-Z][A-Z_]*", pair[1])
                and re.search(rf"(?<![\w-]){re.escape(' '.join(pair))}(?![\w-])", shown)):
            i += 2
            continue
        kept.append(argv[i])
        i += 1
    return kept


def _parse_cli(argv: list[str], shown: list[str]) -> None:
    from textdistill.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"`{shlex.join(shown)}` does not parse (exit {exit_.code})")


def _launched_cli(argv: list[str]) -> list[str] | None:
    """The ``textdistill`` arguments of a ``torchrun`` or ``accelerate launch`` line that
    runs ``-m textdistill.cli``, after the launcher's own parser accepted the line;
    ``None`` for a line that launches something else."""
    if argv[0] == "torchrun":
        from torch.distributed.run import get_args_parser as launcher
        launcher_argv = argv[1:]
    else:
        from accelerate.commands.launch import launch_command_parser as launcher
        launcher_argv = argv[2:]
    try:
        launch = launcher().parse_args(launcher_argv)
    except SystemExit as exit_:
        pytest.fail(f"`{shlex.join(argv)}` does not parse (exit {exit_.code})")
    if launch.module and launch.training_script == "textdistill.cli":
        return launch.training_script_args
    return None


def check_command(argv: list[str], synopsis: bool = False) -> bool:
    """Check ``argv`` against what it names; ``False`` when it is nothing checkable.
    ``synopsis``: a ``textdistill`` line is a usage line (:func:`synopsis_argv`)."""
    if argv[0] == "textdistill":
        _parse_cli((synopsis_argv(argv) if synopsis else argv)[1:], argv)
        return True
    if argv[0] == "torchrun" or argv[:2] == ["accelerate", "launch"]:
        cli_args = _launched_cli(argv)
        if cli_args is not None:
            _parse_cli(cli_args, argv)
        return cli_args is not None
    if argv[0] == "make":
        assert set(argv[1:]) <= makefile_targets(), f"`{shlex.join(argv)}`: no such target"
        return True
    if argv[:2] == ["pip", "install"]:
        for spec in argv[2:]:
            named = re.search(r"\[(.*)\]", spec)
            if named:
                assert set(named[1].split(",")) <= extras(), f"`{spec}`: no such extra"
        return True
    return False


def check_shell_block(block: Block, where: str) -> None:
    """Every command of ``block`` is checked, or the block is marked not run."""
    for argv in shell_commands(block.code):
        checked = check_command(argv, synopsis=block.marker == "synopsis")
        assert checked or block.marker.startswith("not run"), (
            f"{where}: `{shlex.join(argv)}` is neither checked nor marked "
            "<!-- not run: why -->")


# ---------------------------------------------------------------------------- YAML

# The smallest valid recipe that a fragment completes.
BASE_RECIPE = {"teacher": {"model": "teacher-dir"}, "student": {"from_teacher": [0, 1]},
               "data": {"dataset": "some/dataset"}, "output": {"dir": "runs/fragment"}}


def fragment_recipe(fragment: dict) -> dict:
    """:data:`BASE_RECIPE` completed by ``fragment``: its keys go into the matching
    sections (a ``data`` fragment's options sit beside the base's data source), and its
    ``student`` replaces the base's, whose ways of making a student exclude each other."""
    recipe = {section: {**BASE_RECIPE.get(section, {}), **fragment.get(section, {})}
              for section in BASE_RECIPE.keys() | fragment.keys()}
    if "student" in fragment:
        recipe["student"] = fragment["student"]
    return recipe


def check_yaml_block(block: Block) -> None:
    """``block`` validates as a recipe: as it is, or marked a fragment, completed by
    :func:`fragment_recipe`."""
    from textdistill.recipe import recipe_from_dict

    data = yaml.safe_load(block.code)
    recipe_from_dict(fragment_recipe(data) if block.marker == "recipe fragment" else data)
