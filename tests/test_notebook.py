"""docs/notebooks/distill_sst2.ipynb runs top to bottom, headless, on tiny stand-ins for
MiniLM and SST-2, and is committed without outputs.

The notebook runs in a real Jupyter kernel (nbclient), as a reader's would, with the
parameters overridden the way papermill does it: a cell inserted after the one tagged
``parameters``. The kernel is this interpreter's, through a kernel spec written into the
test's tmp dir: a ``python3`` spec installed in the user's Jupyter folders may name another
Python, and nothing here may depend on what is installed outside the venv.
"""

from __future__ import annotations

import copy
import re
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tiny import write_sentiment_tsv, write_tiny_classifier

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "distill_sst2.ipynb"
PARAMETERS_TAG = "parameters"
# papermill's tag for the cell it inserts, so a papermill run and this test read alike.
INJECTED_TAG = "injected-parameters"
KERNEL_NAME = "textdistill-test"


def _read() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_index(notebook: nbformat.NotebookNode) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells)
              if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{NOTEBOOK.name}: {len(tagged)} cells tagged '{PARAMETERS_TAG}'"
    return tagged[0]


def _defaults(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    """The parameter cell's names and values."""
    namespace: dict[str, Any] = {}
    exec(notebook.cells[_parameters_index(notebook)].source, namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def with_parameters(notebook: nbformat.NotebookNode, **values: Any) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with ``values`` assigned in a cell after its parameter cell.

    Raises:
        AssertionError: a name the parameter cell does not define (a misspelt override
            would change nothing and the test would run the default configuration).
    """
    unknown = sorted(set(values) - set(_defaults(notebook)))
    assert not unknown, f"not parameters of {NOTEBOOK.name}: {unknown}"
    notebook = copy.deepcopy(notebook)
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(_parameters_index(notebook) + 1, nbformat.v4.new_code_cell(
        source, metadata={"tags": [INJECTED_TAG]}))
    return notebook


def _kernel_manager(kernels: Path):
    """A kernel manager that starts this interpreter's ipykernel, whatever kernel specs
    the machine has installed."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    write_kernel_spec(kernels / KERNEL_NAME)  # its argv starts with sys.executable
    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


def _outputs(cell: nbformat.NotebookNode, output_type: str | None = None) -> list:
    return [o for o in cell.get("outputs", []) if output_type in (None, o.output_type)]


def _text(cell: nbformat.NotebookNode, name: str = "stdout") -> str:
    return "".join(o.text for o in _outputs(cell, "stream") if o.name == name)


def _progress(cell: nbformat.NotebookNode) -> str:
    """The cell's progress bars: tqdm's text on stderr, or with ipywidgets installed its
    widgets, whose plain-text form is the same bar."""
    widgets = [o.data.get("text/plain", "") for o in _outputs(cell, "display_data")]
    return _text(cell, "stderr") + "".join(widgets)


def _cell(notebook: nbformat.NotebookNode, marker: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]
    return cell


def test_committed_notebook_has_no_outputs():
    notebook = _read()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, \
            f"{NOTEBOOK.name}: strip the outputs of cell {cell.get('id')}"
    assert notebook.metadata.kernelspec.name == "python3"


def test_defaults_are_the_real_run_and_never_push():
    defaults = _defaults(_read())
    # None: MiniLM from its package, fine-tuned here; SST-2 from the local copy.
    assert defaults["BASE"] is None and defaults["TEACHER"] is None
    assert defaults["DATA_DIR"] is None
    assert defaults["PUSH"] is False


def test_with_parameters_refuses_an_unknown_name():
    with pytest.raises(AssertionError, match=r"not parameters of .*\['EPOCS'\]"):
        with_parameters(_read(), EPOCS=1)


def test_notebook_runs_headless_on_tiny_models(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    base = write_tiny_classifier(tmp_path / "minilm", num_layers=6)  # MiniLM-L6's depth
    write_sentiment_tsv(tmp_path / "sst2", n_train=64, n_eval=24)
    for name, value in {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                        "JUPYTER_PLATFORM_DIRS": "1",
                        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits the environment
    monkeypatch.delenv("TEXTDISTILL_SST2_DIR", raising=False)
    runs = tmp_path / "runs"
    notebook = with_parameters(
        _read(), BASE=str(base), DATA_DIR=str(tmp_path / "sst2"), TEACHER_TRAIN_SAMPLES=32,
        TRAIN_SAMPLES=64, MAX_LENGTH=32, BATCH_SIZE=16, EVAL_STEPS=2, OUTPUT_DIR=str(runs),
        LOGGING_STEPS=1, LATENCY_REPEATS=1, PUSH=True, HUB_REPO="textdistill-tests/never-pushed")

    # cleanup_kc: nbclient shuts down only the kernels of managers it made itself.
    NotebookClient(notebook, km=_kernel_manager(tmp_path / "kernels"), timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute(cleanup_kc=True)

    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None and not _outputs(cell, "error")
    data = _text(_cell(notebook, "tokenize_splits("))
    assert f"SST-2 from {tmp_path / 'sst2'}: 64 training and 24 evaluation" in data
    training = _cell(notebook, "distiller.train(")
    assert "distilling" in _progress(training)
    assert re.search(r"^eval step 2: accuracy [\d.]+", _text(training), re.MULTILINE)
    assert any("text/html" in o.data for o in _outputs(training, "execute_result"))
    (figure,) = _outputs(_cell(notebook, "history.plot("), "execute_result")
    assert "image/png" in figure.data
    table = _text(_cell(notebook, "distiller.evaluate("))
    for row in ("teacher", "student, last step", "student, best"):
        assert re.search(rf"^{row} +[\d.]+ +[\d.]+ +-?[\d.]+$", table, re.MULTILINE)
    assert (runs / "teacher" / "best" / "config.json").is_file()
    assert (runs / "hub" / "model.safetensors").is_file()
    quantized = _text(_cell(notebook, "quantize_model("))
    if find_spec("onnx") and find_spec("onnxruntime"):
        assert (runs / "onnx-int8" / "model.onnx").is_file()
        assert re.search(r"^onnx-int8 \(this model\) +[\d.]+ ", quantized, re.MULTILINE)
    else:
        assert "not quantized: " in quantized
    # Offline, PUSH=True is refused before any request; the notebook says so and goes on.
    assert "cannot push to the Hub: offline mode" in _text(_cell(notebook, "push_to_hub("))
