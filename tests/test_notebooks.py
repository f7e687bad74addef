"""Every notebook in notebooks/: clean in git, and runs top to bottom on a fresh kernel.

papermill executes each notebook once per test run (tests/notebook_runs.py), in smoke size;
the executed copies are kept in test-artifacts/notebooks/. nbval's job is the stored outputs
of tests/nbval/ (see tests/test_stored_outputs.py).
"""

import re

import nbformat
import pytest

from conftest import NOTEBOOKS
from notebook_runs import executed

pytestmark = pytest.mark.notebook


def output_text(cell):
    return "".join(out.get("text", "") for out in cell.outputs)


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_course_has_a_start_notebook():
    assert "00_start_here.ipynb" in [path.name for path in NOTEBOOKS]


def test_notebook_is_valid_and_committed_clean(notebook_path):
    nb = nbformat.read(notebook_path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(code_cells(nb)) if cell.outputs or cell.execution_count]
    assert not dirty, f"{notebook_path.name}: code cells {dirty} have outputs; clear them before committing"
    assert "widgets" not in nb.metadata, f"{notebook_path.name} stores widget state; strip it"


def test_notebook_has_one_parameters_cell_near_the_top(notebook_path):
    cells = code_cells(nbformat.read(notebook_path, as_version=4))
    tagged = [i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{notebook_path.name}: {len(tagged)} cells tagged 'parameters', want 1"
    assert tagged[0] <= 2, f"{notebook_path.name}: the parameters cell is code cell {tagged[0]}"
    assert "SMOKE_TEST =" in cells[tagged[0]].source


def warnings_shown(cells):
    """The warnings a learner would see in the outputs (Python prints them on stderr)."""
    return [out.text for cell in cells for out in cell.outputs
            if out.output_type == "stream" and out.name == "stderr" and "Warning" in out.text]


def test_warnings_shown_finds_a_deprecation_warning():
    cell = nbformat.v4.new_code_cell("import warnings")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        "<ipython-input-1>:1: DeprecationWarning: old\n  warnings.warn('old')\n"))]
    clean = nbformat.v4.new_code_cell("print(1)")
    clean.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    assert len(warnings_shown([cell, clean])) == 1
    assert warnings_shown([clean]) == []


def test_notebook_runs_in_order_on_a_fresh_kernel(notebook_path, record_property):
    run = executed(notebook_path).ok()
    # papermill injects one cell after the parameters cell; every cell ran once, in order
    # (the test harness's cells included: they are counted here, then left out of the copy).
    counts = run.execution_counts
    assert counts == list(range(1, len(counts) + 1)), counts
    cells = run.cells()
    source = code_cells(nbformat.read(notebook_path, as_version=4))
    assert len(cells) == len(source) + 1, "the kept copy has the lesson's cells, and papermill's"
    errors = [out for cell in cells for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    shown = warnings_shown(cells)
    assert not shown, f"{notebook_path.name} shows warnings a learner would see: {shown}"
    if notebook_path.name[:2] != "00":  # a lesson ends by printing its wall time
        assert re.search(r"Wall time of this lesson.*: \d+ s", output_text(cells[-1])), \
            f"{notebook_path.name}: the last cell did not report the wall time"
    record_property("executed_cells", len(counts))
