"""The documentation site (mkdocs.yml, docs/): generated pages are current, every page is
in the nav, the site builds with ``--strict`` without the network, and the pages' code
examples run (Python), parse (every ``textdistill`` command line) or validate (recipes
and recipe fragments). The checks and the markers a block may carry are in
tests/doc_examples.py, which README.md's test (tests/test_readme.py) shares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from doc_examples import check_shell_block, check_yaml_block, code_blocks
from tiny import load_script, write_sentiment_tsv, write_tiny_classifier

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
gen_docs = load_script("gen_docs")

# Python blocks, by page, and the test that runs each; a new block needs a test here.
PYTHON_EXAMPLES = {"getting-started.md": 1, "deploy.md": 1}


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


# ------------------------------------------------------------------ generated pages


def test_generated_pages_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path in gen_docs.stale_pages()]
    assert not stale, f"stale: {stale}; run `python scripts/gen_docs.py` and commit them"


def test_every_built_in_loss_has_its_formula_and_use_in_the_generator():
    assert set(gen_docs.GUIDE) == set(gen_docs.built_in_losses())


def test_a_loss_registered_by_the_caller_is_not_documented_as_built_in():
    from textdistill.losses import register_loss

    @register_loss("docs_test_only_loss", overwrite=True)
    def docs_test_only_loss(student, teacher, mask=None):
        return (student - teacher).pow(2).mean()

    assert "docs_test_only_loss" not in gen_docs.built_in_losses()


def test_the_recipe_page_lists_every_recipe_key():
    from textdistill.recipe import check_key_path

    page = gen_docs.recipes_page()
    for section, key in _documented_keys(page):
        check_key_path(f"{section}.{key}")
    assert "| `lr` | float | `5.0e-05` |" in page
    assert "`output_dir`" not in page  # a TrainingConfig field that recipes set as output.dir
    assert "| `model` | str or list of str | required |" in page


def _documented_keys(page: str) -> list[tuple[str, str]]:
    """``(section, key)`` of every row of the recipe page's tables (nested tables give
    their dotted section, e.g. ``data.augment``)."""
    keys, section = [], None
    for line in page.splitlines():
        heading = re.match(r"^#{2,3} (\S+)$", line)
        if heading:
            section = heading[1]
        row = re.match(r"^\| `(\w+)` \|", line)
        if row and section not in ("Schedules",) and "[]" not in section:
            keys.append((section, row[1]))
    return keys


def test_stale_check_names_the_page_and_exits_1(tmp_path, monkeypatch, capsys):
    page = tmp_path / "recipes.md"
    page.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(gen_docs, "RECIPES_PAGE", page)
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    monkeypatch.setattr(gen_docs, "pages", lambda: {page: "# new\n"})
    assert gen_docs.main(["--check"]) == 1
    assert "stale: recipes.md (run python scripts/gen_docs.py)" in capsys.readouterr().out
    assert page.read_text(encoding="utf-8") == "# old\n"  # --check writes nothing


def test_evidence_without_benchmark_results_says_so():
    assert gen_docs.evidence(None, None).startswith("Not yet measured")


# ----------------------------------------------------------------------------- site


class _ConfigLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, whose !!python/name tags name Python objects."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return [p for item in nav for p in _nav_pages(item)]


def test_every_page_in_docs_is_in_the_nav():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_ConfigLoader)
    nav = _nav_pages(config["nav"])
    pages = [str(p.relative_to(DOCS)) for p in _pages()]
    assert sorted(nav) == sorted(pages), (
        f"not in the nav: {sorted(set(pages) - set(nav))}; "
        f"in the nav but missing: {sorted(set(nav) - set(pages))}")


# CI installs the docs extra (make test does), so there a missing mkdocs fails the test.
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None and not os.environ.get("CI"),
                    reason="mkdocs is not installed (pip install -e '.[docs]'; make test does)")
def test_site_builds_strict_without_the_network(tmp_path):
    # Every HTTP(S) request goes to a closed local port, so a fetch (fonts, a plugin's
    # download) fails the build instead of passing where there is a network.
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed,
           "https_proxy": closed, "NO_PROXY": "", "no_proxy": "", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="textdistill.distiller.Distiller.train"' in api  # mkdocstrings rendered
    html = "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("*.html"))
    assert "fonts.googleapis.com" not in html


# ------------------------------------------------------------------------- examples


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_shell_example_parses(page):
    for block in code_blocks(page, "bash"):
        check_shell_block(block, page.name)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_recipe_example_validates(page):
    for block in code_blocks(page, "yaml"):
        check_yaml_block(block)


def test_every_python_example_is_run_by_a_test():
    found = {p.name: len(code_blocks(p, "python")) for p in _pages()}
    assert {k: v for k, v in found.items() if v} == PYTHON_EXAMPLES


def test_getting_started_reads_a_real_run(tmp_path, monkeypatch, quiet_datasets):
    """The 'Reading the results' example, on the directory a tiny `finetune` writes."""
    from textdistill.cli import main

    (block,) = code_blocks(DOCS / "getting-started.md", "python")
    base = write_tiny_classifier(tmp_path / "base", labels=None)
    train, dev = write_sentiment_tsv(tmp_path / "sst", n_train=32, n_eval=16)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "student": {"pretrained": str(base)},
        "data": {"train": str(train), "eval": str(dev), "label_names": ["negative", "positive"],
                 "max_length": 16, "cache_dir": str(tmp_path / "cache")},
        "train": {"max_steps": 2, "batch_size": 16, "report_to": [], "progress_bar": False},
        "output": {"dir": "runs/quickstart/student"}}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["finetune", str(recipe)]) == 0

    exec(compile(block.code, "getting-started.md", "exec"), {"__name__": "docs"})

    assert (tmp_path / "runs" / "quickstart" / "student" / "history.png").is_file()


def test_deploy_loads_an_export_with_plain_transformers(tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textdistill import export_model

    (block,) = code_blocks(DOCS / "deploy.md", "python")
    model_dir = write_tiny_classifier(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    export_model(AutoModelForSequenceClassification.from_pretrained(model_dir),
                 AutoTokenizer.from_pretrained(model_dir), "runs/quickstart/hub")

    exec(compile(block.code, "deploy.md", "exec"), {"__name__": "docs"})

    assert re.search(r"\[\{'label': '(negative|positive)', 'score': [\d.e-]+\}\]",
                     capsys.readouterr().out)


def test_evidence_adds_the_transfer_section_once_measured():
    results = json.loads((DOCS / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    row = {"accuracy_mean": 0.85, "seeds": [42, 43]}
    results["transfer"] = {"setup": {"labelled": 2000}, "unlabelled": 22000,
                           "teacher": {"params": 109_500_000},
                           "rows": {"A": {"minilm3": row},
                                    "B": {"minilm3": {**row, "accuracy_mean": 0.87}}}}
    text = gen_docs.evidence(results, None)
    assert ("| few labels (2,000) and 22,000 unlabelled sentences, a 110M teacher | "
            "MiniLM, 3 blocks | "
            "85.00 (2 seeds) | 87.00 (2 seeds) | +2.00 pt |") in text
    assert "not yet measured" not in text
