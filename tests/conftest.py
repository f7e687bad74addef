"""Shared test fixtures and paths. The environment every test and notebook runs in (smoke mode,
stand-in mode, a throwaway quiz-results file) is set by the conftest.py at the repository
root.

Each course notebook is executed once per test run (tests/notebook_runs.py), whichever
pytest-xdist worker first needs it; the summary at the end counts the executions of each
notebook and fails the run if one was executed twice.
"""

import socket
from pathlib import Path

import nbformat
import pytest
import yaml

import notebook_runs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"

_executed = {"nbval": 0, "papermill": 0}
collect_ignore = ["nbval"]  # tests/test_stored_outputs.py runs nbval on it, in a pytest of its own


def bank_question(bank: Path, question_id: str) -> dict:
    """One question of a quiz bank, as the YAML file has it (answers and mistakes included)."""
    raw = yaml.safe_load(bank.read_text(encoding="utf-8"))
    return next(q for q in raw["questions"] if q["id"] == question_id)


def cell_source(notebook: Path, cell_id: str) -> str:
    """The source of the notebook's cell with this id."""
    cells = nbformat.read(notebook, as_version=4).cells
    return next(cell.source for cell in cells if cell.get("id") == cell_id)


def markdown_of(notebook: Path) -> str:
    """The notebook's prose: its markdown cells, joined."""
    cells = nbformat.read(notebook, as_version=4).cells
    return "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")


def run_cell_of(notebook: Path, cell_id: str, namespace: dict | None = None) -> dict:
    """Execute one of the notebook's code cells (the course's own code) in ``namespace``."""
    namespace = {} if namespace is None else namespace
    exec(cell_source(notebook, cell_id), namespace)  # noqa: S102 - the course's own notebook
    return namespace


def smoke_parameters(notebook: Path) -> dict:
    """The notebook's parameters, shrunk by its own smoke block (the `if SMOKE_TEST:` paragraph
    that opens its "setup" cell); the root conftest.py sets the flags."""
    namespace = run_cell_of(notebook, "parameters")
    assert namespace["SMOKE_TEST"] and namespace["STANDIN"]
    exec(cell_source(notebook, "setup").split("\n\n")[0], namespace)  # noqa: S102
    return namespace


def exercise_and_helper(notebook: Path, definition: str, helper: str):
    """(the notebook's cells, the index of the cell that holds ``definition``, the indices of
    the cells that mention ``helper``): does the exercise come before labkit's version?"""
    cells = nbformat.read(notebook, as_version=4).cells
    exercise = next(i for i, c in enumerate(cells) if definition in c.source)
    return cells, exercise, [i for i, c in enumerate(cells) if helper in c.source]


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the main process, once per test run
        notebook_runs.start_test_run()


def pytest_runtest_logreport(report):
    # Runs in the main process also under pytest-xdist, so the counts cover every worker.
    if report.when != "call" or not report.passed:
        return
    for name, value in report.user_properties:
        if name == "executed_cells":
            _executed["papermill"] += value
        elif name == "nbval_cells":
            _executed["nbval"] += value


def pytest_terminal_summary(terminalreporter):
    total = _executed["nbval"] + _executed["papermill"]
    if total:
        terminalreporter.write_line(
            f"notebook cells executed: {total} "
            f"(nbval {_executed['nbval']}, papermill {_executed['papermill']})"
        )
    runs = notebook_runs.executions()
    if runs:
        twice = sorted(name for name, count in runs.items() if count > 1)
        terminalreporter.write_line(
            f"course notebooks executed: {sum(runs.values())} executions of {len(runs)} "
            f"notebooks" + (f"; MORE THAN ONCE: {', '.join(twice)}" if twice else ", each once"))


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    if any(count > 1 for count in notebook_runs.executions().values()):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a notebook ran twice: too slow


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook_path(request):
    return request.param


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog does) but never replies."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()
