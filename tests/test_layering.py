"""The package imports in layer order: face -> recipe/build -> engine -> losses.

Every import inside ``textdistill`` (module-level or deferred inside a function) goes to
the same layer or one below it, and module-level imports form no cycle. The engine
(everything from ``distiller`` down) never imports CLI, recipe or build code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "textdistill"

# Lowest first. A module may import its own layer and the layers below.
LAYERS = [
    {"errors", "version", "permissions"},
    {"schema", "schedules"},
    {"config", "losses", "metrics", "run_dir", "run_lock", "history"},
    {"data", "models", "inference", "speed", "onnx_model", "pruning"},
    {"teacher_cache", "objective", "plan", "accelerator", "state", "checkpoints", "teachers",
     "nonfinite"},
    {"distiller", "integrations"},
    {"refs", "migrate", "sections", "recipe", "model_card", "export", "resume"},
    {"build", "prepare"},
    {"runner", "evaluation", "quantize", "prune"},
    {"cli", "cli_output", "__init__", "__main__"},
    {"bench"},
]
ENGINE_TOP = 5  # distiller's layer
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name inside the package (``models.adaptors`` ->
    ``models``)."""
    return module.split(".")[0] or "__init__"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(unit, at_module_level)`` for every textdistill import in ``path``."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    package_parts = list(relative.parts[:-1])
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    # Imports under `if TYPE_CHECKING:` are for annotations only and never run.
    typing_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING"
                   for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                target = target or "__init__"  # "from .. import Distiller"
            elif node.module and node.module.startswith("textdistill"):
                target = node.module.removeprefix("textdistill").lstrip(".") or "__init__"
            else:
                continue
            found.append((_unit(target), id(node) in top_level))
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, _unit(".".join(path.relative_to(PACKAGE).with_suffix("").parts))


def test_every_module_has_a_layer():
    missing = {unit for _, unit in _modules()} - set(LAYER_OF)
    assert not missing, f"add {sorted(missing)} to LAYERS"


def test_no_upward_import():
    upward = []
    for path, unit in _modules():
        for target, _ in _imports(path):
            if target != unit and LAYER_OF[target] > LAYER_OF[unit]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not upward, "\n".join(upward)


def test_engine_imports_no_face_code():
    face = {name for layer in LAYERS[ENGINE_TOP + 1:] for name in layer}
    offenders = [f"{path.relative_to(PACKAGE)} imports {target}"
                 for path, unit in _modules() if LAYER_OF[unit] <= ENGINE_TOP
                 for target, _ in _imports(path) if target in face]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for path, _ in _modules():
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        graph[name] = set()
    for path, _ in _modules():
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = name.split(".")[:-1]
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parts[: len(parts) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                candidates = [target, f"{target}.__init__"]
                graph[name] |= {c for c in candidates if c in graph and c != name}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_importing_the_package_or_the_cli_does_not_import_evaluate():
    """`evaluate` pulls in transformers.pipelines (~2 s a process): only evaluation pays it."""
    import subprocess
    import sys

    code = ("import sys, textdistill, textdistill.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'evaluate'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
