"""Shared test fixtures and paths. The environment every test and notebook runs in (smoke mode,
stand-in mode, a throwaway quiz-results file) is set by the conftest.py at the repository
root. The summary at the end counts the notebook cells that were executed.
"""

import socket
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"

_executed = {"nbval": 0, "papermill": 0}


def bank_question(bank: Path, question_id: str) -> dict:
    """One question of a quiz bank, as the YAML file has it (answers and mistakes included)."""
    raw = yaml.safe_load(bank.read_text(encoding="utf-8"))
    return next(q for q in raw["questions"] if q["id"] == question_id)


def cell_source(notebook: Path, cell_id: str) -> str:
    """The source of the notebook's cell with this id."""
    cells = nbformat.read(notebook, as_version=4).cells
    return next(cell.source for cell in cells if cell.get("id") == cell_id)


def pytest_runtest_logreport(report):
    # Runs in the main process also under pytest-xdist, so the counts cover every worker.
    if report.when != "call" or not report.passed:
        return
    if ".ipynb::Cell" in report.nodeid:
        _executed["nbval"] += 1
    for name, value in report.user_properties:
        if name == "executed_cells":
            _executed["papermill"] += value


def pytest_terminal_summary(terminalreporter):
    total = _executed["nbval"] + _executed["papermill"]
    if total:
        terminalreporter.write_line(
            f"notebook cells executed: {total} "
            f"(nbval {_executed['nbval']}, papermill {_executed['papermill']})"
        )


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
