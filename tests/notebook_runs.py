"""Each notebook executed once per test run, and every test that needs it reads that one run.

``executed(notebook)`` runs the notebook with papermill in smoke size (the environment set by
the root conftest.py also puts it in stand-in mode) the first time any test asks for it, and
returns the same ``Run`` to every later caller, in this process or another pytest-xdist worker
(a file lock per notebook). A run gives:

- ``copy``: the executed notebook, kept in test-artifacts/notebooks/ for people to read;
- ``state``: the lesson's plain values (numbers, strings, lists and dicts of them, dataclasses
  such as a ``History`` as dicts) as they were after its last cell, so a lesson test checks a
  number without running cells again;
- ``student_checks``: the student version checked in the same kernel. Just before each cell
  that holds an exercise, the run executes the *student* version of that cell (and, should it
  only define a function, the cells after it until one fails): it must stop with the
  "Your code here" placeholder. Then the instructor's own cell runs, and must pass.

The check cells and the cell that saves ``state`` are added for the run and taken out of the
kept copy. Every execution adds a line to the test run's own log, which the summary at the
end of the test run counts. Records, locks and the log of a test run live in a folder of its
own (test-artifacts/notebooks/.run-ID), so two test runs at once do not share notebook runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import pytest
from filelock import FileLock
from papermill.exceptions import PapermillExecutionError

from labkit.instructor.course import INSTALLED, PLACEHOLDER, student_version

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "test-artifacts" / "notebooks"  # the executed copies, for people to read
RUN_ID = "LABKIT_TEST_RUN"  # set by the main pytest process, inherited by the xdist workers
HARNESS = "test-harness"  # the tag of the cells this module adds to a run
FOLLOWING = 3  # how many cells after an exercise its student check may run to reach the stop

STUDENT_CHECK = '''\
# Test harness (not part of the lesson): the student version of the next cell must stop here.
import json as _json
_report = {{"cell": {cell}, "stopped_at": None, "ename": None, "evalue": None}}
for _index, _source in {sources!r}:
    try:
        exec(compile(get_ipython().transform_cell(_source), f"<student cell {{_index}}>", "exec"),
             get_ipython().user_ns)
    except Exception as _error:
        _report.update(stopped_at=_index, ename=type(_error).__name__, evalue=str(_error))
        break
with open({path!r}, "a", encoding="utf-8") as _file:
    _file.write(_json.dumps(_report) + "\\n")
print("student version:", _report)
'''

SAVE_STATE = '''\
# Test harness (not part of the lesson): the lesson's plain values, for its tests to read.
import dataclasses as _dataclasses
import json as _json


def _plain(value, depth=0):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _dataclasses.is_dataclass(value) and not isinstance(value, type):  # a History, a run
        return _plain(_dataclasses.asdict(value), depth + 1)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy and torch scalars
        return value.item()
    if depth < 6 and isinstance(value, (list, tuple)) and len(value) <= 10_000:
        return [_plain(item, depth + 1) for item in value]
    if depth < 6 and isinstance(value, dict) and len(value) <= 10_000:
        kept = {{}}
        for k, v in value.items():  # entries that are not plain data (tensors) are left out
            try:
                kept[k if isinstance(k, str) else repr(k)] = _plain(v, depth + 1)
            except TypeError:
                pass
        return kept
    raise TypeError(type(value).__name__)


_state = {{}}
for _name, _value in list(get_ipython().user_ns.items()):
    if _name.startswith("_") or _name in ("In", "Out", "exit", "quit"):
        continue
    try:
        _state[_name] = _plain(_value)
    except Exception:  # not plain data (a model, a tensor, a loader): left out
        pass
with open({path!r}, "w", encoding="utf-8") as _file:
    _json.dump(_state, _file)
'''


@dataclass
class Run:
    """One execution of a notebook: its kept copy, its final plain values, its student checks."""

    name: str
    copy: Path
    seconds: float
    error: str | None
    execution_counts: list
    state: dict
    student_checks: list

    def cells(self) -> list:
        """The executed copy's code cells (papermill's injected parameters cell included)."""
        return [c for c in nbformat.read(self.copy, as_version=4).cells if c.cell_type == "code"]

    def ok(self) -> Run:
        """The run itself, or a failed test that shows why the notebook did not run through."""
        if self.error:
            pytest.fail(f"{self.name} did not run through in this test run (the executed copy "
                        f"is {RUNS.relative_to(ROOT) / self.name}):\n{self.error}", pytrace=False)
        return self


def _harness(source: str, tag: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"tags": [HARNESS, tag]})


def _instrument(notebook: nbformat.NotebookNode, name: str, checks: Path, state: Path):
    """The notebook with a student check before each exercise cell and a state cell at the end."""
    student = {cell.get("id"): cell.source for cell in student_version(notebook, name=name).cells}
    cells = []
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and PLACEHOLDER in student.get(cell.get("id"), ""):
            after = [i for i in code if i >= index][: 1 + FOLLOWING]
            sources = [(i, student[notebook.cells[i].get("id")]) for i in after]
            cells.append(_harness(STUDENT_CHECK.format(cell=index, sources=sources,
                                                       path=str(checks)), "student-check"))
        cells.append(cell)
    cells.append(_harness(SAVE_STATE.format(path=str(state)), "save-state"))
    instrumented = nbformat.from_dict(notebook)  # a deep copy
    instrumented.cells = cells
    return instrumented


def _run_folder() -> Path:
    folder = RUNS / f".run-{os.environ.setdefault(RUN_ID, f'{os.getpid()}-{time.time_ns()}')}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _execute(notebook: Path, folder: Path) -> dict:
    """Run the notebook once; keep the copy without the harness cells; return the record."""
    stem = notebook.stem
    checks, state = folder / f"{stem}.student-checks.jsonl", folder / f"{stem}.state.json"
    raw = folder / f"{stem}.with-harness.ipynb"
    source = nbformat.read(notebook, as_version=4)
    nbformat.write(_instrument(source, notebook.name, checks, state), raw)
    started, error = time.perf_counter(), None
    try:
        # Lessons whose models or photos are downloads run on those installed with the course.
        parameters = {"SMOKE_TEST": True, **INSTALLED.get(stem, {})}
        papermill.execute_notebook(
            str(raw), str(raw), parameters=parameters, kernel_name="python3",
            cwd=str(notebook.parent), execution_timeout=600, progress_bar=False)
    except PapermillExecutionError as failure:
        error = str(failure)
    seconds = time.perf_counter() - started
    with (folder / "executions.log").open("a", encoding="utf-8") as log:
        log.write(f"{notebook.name}\t{seconds:.1f}\t{os.getpid()}\n")
    executed = nbformat.read(raw, as_version=4)
    counts = [c.execution_count for c in executed.cells if c.cell_type == "code"]
    executed.cells = [c for c in executed.cells if HARNESS not in c.metadata.get("tags", [])]
    nbformat.write(executed, folder / notebook.name)
    shutil.copyfile(folder / notebook.name, RUNS / notebook.name)  # where people look
    return {
        "seconds": seconds, "error": error, "execution_counts": counts,
        "state": json.loads(state.read_text()) if state.exists() else {},
        "student_checks": ([json.loads(line) for line in checks.read_text().splitlines()]
                           if checks.exists() else []),
    }


def executed(notebook: Path) -> Run:
    """The notebook's one execution in this test run (made now if no test has asked yet)."""
    folder = _run_folder()
    record_path = folder / f"{notebook.stem}.run.json"
    with FileLock(str(folder / f"{notebook.stem}.lock")):
        if not record_path.exists():
            record_path.write_text(json.dumps(_execute(notebook, folder)))
        record = json.loads(record_path.read_text())
    return Run(name=notebook.name, copy=folder / notebook.name, **record)


def start_test_run() -> None:
    """Give this test run its own folder of records (called once, by the main pytest process),
    and remove those of test runs that ended more than an hour ago."""
    os.environ[RUN_ID] = f"{os.getpid()}-{time.time_ns()}"
    for old in RUNS.glob(".run-*") if RUNS.exists() else ():
        if time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)


def executions() -> dict[str, int]:
    """How many times each notebook was executed in this test run."""
    log = RUNS / f".run-{os.environ.get(RUN_ID)}" / "executions.log"
    counts: dict[str, int] = {}
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else ():
        name = line.split("\t")[0]
        counts[name] = counts.get(name, 0) + 1
    return counts
