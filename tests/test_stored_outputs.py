"""nbval's job in this suite: the stored outputs of tests/nbval/stored_outputs.ipynb, compared
cell by cell (--nbval-lax compares the cells tagged nbval-check-output, after the rules in
tests/sanitize.cfg). nbval runs in a pytest of its own, so that its cells share one kernel
whatever pytest-xdist does with the rest. The other tests make sure the comparison can fail:
every tagged cell has an output stored, and a wrong stored output fails."""

import subprocess
import sys

import nbformat

from conftest import ROOT

STORED = ROOT / "tests" / "nbval" / "stored_outputs.ipynb"


def nbval(notebook, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q",
         "-p", "no:xdist", "--nbval-lax", "--nbval-current-env", f"--rootdir={cwd}",
         f"--nbval-sanitize-with={ROOT / 'tests' / 'sanitize.cfg'}", str(notebook)],
        capture_output=True, text=True, cwd=cwd, timeout=300)


def test_nbval_finds_the_stored_outputs_unchanged(record_property):
    done = nbval(STORED, STORED.parent)
    assert done.returncode == 0, done.stdout[-4000:]
    cells = len([c for c in nbformat.read(STORED, as_version=4).cells if c.cell_type == "code"])
    assert f"{cells} passed" in done.stdout, done.stdout[-2000:]
    record_property("nbval_cells", cells)


def test_every_compared_cell_has_a_stored_output():
    cells = [c for c in nbformat.read(STORED, as_version=4).cells if c.cell_type == "code"]
    compared = [c for c in cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(compared) >= 4
    for cell in compared:  # nbval compares nothing for a cell with no stored output
        assert cell.outputs and cell.execution_count, cell.source
    assert "widgets" not in nbformat.read(STORED, as_version=4).metadata


def test_nbval_fails_a_cell_whose_stored_output_differs(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    for source, shown in (("print(1 + 1)", "2\n"), ("print(2 + 2)", "5\n")):
        cell = nbformat.v4.new_code_cell(source, execution_count=1,
                                         metadata={"tags": ["nbval-check-output"]})
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=shown)]
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "sums.ipynb")
    done = nbval(tmp_path / "sums.ipynb", tmp_path)
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed" in done.stdout, done.stdout
