"""Instructor tools: student versions of the lessons, and a check run of the whole course.

    python -m labkit course student [NOTEBOOK_OR_FOLDER...] [-o student-notebooks]
    python -m labkit course run [NOTEBOOK_OR_FOLDER...] [--full] [--standin] [--offline]
                                [-o course-run] [--report course-run/report.md]

**Student versions.** The lessons keep their solutions between nbgrader-style markers::

    ### BEGIN SOLUTION
    def make_feature_extractor(model):
        ...
    ### END SOLUTION

``student_version`` replaces each marked block with a line that raises ``NotImplementedError``
saying "your code here", at the block's own indentation; it drops blocks between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` altogether, clears every output and
checks that the result is a valid notebook. In Markdown cells a solution becomes
"YOUR ANSWER HERE", and images attached to the cell that its remaining text does not show are
dropped. nbgrader reads the same markers, so its users can take the sources as they are.

Nothing of a solution may leak through a typo: a line that is almost a marker ("## Begin
Solution", "### END SOLUTION (a)", "BEGIN_SOLUTION") or a marker inside a string literal is an
error naming the notebook, the cell (index and id) and the line, and no student version is made.

**Check run.** ``run_course`` executes each notebook with papermill in a fresh process
(smoke size unless asked for full size), keeps the executed copies and reports, per notebook,
whether it ran, its wall time (kernel start included), the peak memory of its kernel process
and, for a failure, the cell that failed with its error. An instructor runs it on a lab machine
before class; the report is Markdown or HTML, by the file's suffix.
"""

from __future__ import annotations

import html
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tokenize
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "StudentVersionError", "MARKERS", "strip_solutions", "student_version",
    "write_student_versions", "course_notebooks", "NotebookRun", "CourseRun",
    "check_report_path", "run_notebook", "run_course",
]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
PLACEHOLDER = ('raise NotImplementedError("Your code here: write your solution in place of this '
               'line (the text above says what it should do), then run this cell again.")')
ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"


class StudentVersionError(ValueError):
    """A notebook's markers do not pair up, or a line is almost a marker, so no student
    version can be made from it without risking a solution in the student copy."""


# --------------------------------------------------------------------------- student versions

MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
# What is left of a marker once case, #s, punctuation, underscores and odd spaces are ignored.
_MARKER_WORDS = re.compile(r"\b(begin|end) ?(solutions?|hidden ?tests?)\b")


def _almost_a_marker(line: str) -> bool:
    """True for a line that reads as a marker to a person ("## Begin Solution:",
    "x = 1  # END SOLUTION", "BEGIN_SOLUTION"), so must not be copied through as text."""
    text = "".join(c for c in unicodedata.normalize("NFKC", line)
                   if unicodedata.category(c) != "Cf")  # zero-width spaces and the like
    return bool(_MARKER_WORDS.search(re.sub(r"[\W_]+", " ", text.casefold())))


def _comment_lines(source: str) -> set[int] | None:
    """Numbers of the lines of a code cell that hold nothing but a comment, by Python's own
    tokenizer; None for a cell that is not Python (a %%cell magic, a syntax error)."""
    if source.lstrip().startswith("%%"):
        return None
    # A line magic or shell escape is not Python; read as a comment, it keeps the line count
    # (and inside a string it is still just text).
    python = "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line
                       for line in source.splitlines())
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(python).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return {token.start[0] for token in tokens
            if token.type == tokenize.COMMENT and not token.line[:token.start[1]].strip()}


def strip_solutions(source: str, *, cell_type: str = "code", where: str = "cell") -> str:
    """``source`` with every solution replaced by a placeholder and every hidden check removed.

    Markers must pair up, in order and unnested, each alone on its line (in code, as a comment
    outside any string); a line that is almost a marker is an error. ``where`` names the cell
    in the error.
    """
    out: list[str] = []
    open_marker: str | None = None
    comments = _comment_lines(source) if cell_type == "code" else None
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker not in MARKERS and _almost_a_marker(line):
            raise StudentVersionError(
                f"{where}, line {number}: {marker!r} looks like a solution marker but is not "
                f"exactly one, so what it marks would reach the student copy. Fix: write the "
                f"marker exactly as {' / '.join(map(repr, MARKERS))}, alone on its line, or "
                f"reword the line if it is not meant as a marker.")
        if marker in MARKERS and comments is not None and number not in comments:
            raise StudentVersionError(
                f"{where}, line {number}: {marker!r} is inside a string literal, where it is "
                f"text, not a marker. Fix: put markers on lines of their own, as comments "
                f"outside any string, and reword the string.")
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if open_marker:
                raise StudentVersionError(
                    f"{where}, line {number}: {marker!r} inside an open {open_marker!r} block. "
                    f"Fix: close the first block with its END marker before starting another.")
            open_marker = marker
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                if cell_type == "code":
                    out += [f"{indent}# YOUR CODE HERE", f"{indent}{PLACEHOLDER}"]
                else:
                    out.append(f"{indent}{ANSWER_PLACEHOLDER}")
        elif marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if open_marker != expected:
                raise StudentVersionError(
                    f"{where}, line {number}: {marker!r} without a matching {expected!r} before "
                    f"it. Fix: add the BEGIN marker, or remove this line.")
            open_marker = None
        elif open_marker is None:
            out.append(line)
    if open_marker:
        end = END_SOLUTION if open_marker == BEGIN_SOLUTION else END_HIDDEN
        raise StudentVersionError(f"{where}: {open_marker!r} is never closed. "
                                  f"Fix: add a {end!r} line where the block ends.")
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")  # as the cell ended


def _shown_attachments(cell) -> dict:
    """The attachments a cell's (student) text still shows; a solution's own images go."""
    return {name: data for name, data in cell.get("attachments", {}).items()
            if f"attachment:{name}" in cell.source
            or f"attachment:{urllib.parse.quote(name)}" in cell.source}


def student_version(notebook: nbformat.NotebookNode, *, name: str = "notebook") \
        -> nbformat.NotebookNode:
    """A copy of ``notebook`` without solutions, hidden checks, outputs or widget state."""
    student = nbformat.from_dict(json.loads(json.dumps(notebook)))  # a deep copy
    cells = []
    for index, cell in enumerate(student.cells):
        had_hidden, original = BEGIN_HIDDEN in cell.source, cell.source
        cell.source = strip_solutions(cell.source, cell_type=cell.cell_type,
                                      where=f"{name}, cell {index} (id {cell.get('id')})")
        if had_hidden and not cell.source.strip():
            continue  # the cell was nothing but a hidden check
        if cell.source != original and "attachments" in cell:
            cell.attachments = _shown_attachments(cell)
            if not cell.attachments:
                del cell["attachments"]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    student.cells = cells
    student.metadata.pop("widgets", None)
    student.metadata["labkit"] = {"student_version_of": name}
    nbformat.validate(student)
    return student


def _notebooks_in(sources: list[Path]) -> list[Path]:
    found = []
    for source in sources:
        if source.is_dir():
            found += sorted(p for p in source.glob("*.ipynb") if p.is_file())
        elif source.suffix == ".ipynb" and source.is_file():
            found.append(source)
        else:
            raise FileNotFoundError(f"{source}: no such notebook or folder. Fix: name .ipynb files "
                                    f"or folders that hold them.")
    if not found:
        raise FileNotFoundError(f"No notebooks found in {', '.join(map(str, sources))}.")
    return found


def course_notebooks() -> Path:
    """The course's own ``notebooks/`` folder."""
    folder = Path(__file__).resolve().parents[1] / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(f"The course's notebooks folder is missing (looked in {folder}). "
                                "Fix: name the notebooks or their folder on the command line.")
    return folder


def write_student_versions(sources: list[Path | str] | None = None,
                           output: Path | str = "student-notebooks") -> list[Path]:
    """Write the student version of every notebook in ``sources`` into ``output``.

    Each notebook's ``quizzes/`` folder is copied beside the student versions, since the
    lessons load their quiz banks from there. Returns the student notebooks written.
    """
    notebooks = _notebooks_in([Path(s) for s in sources] if sources else [course_notebooks()])
    output = Path(output)
    for notebook in notebooks:
        if output.resolve() == notebook.parent.resolve():
            raise ValueError(f"{output} holds the source notebooks; writing student versions there "
                             "would overwrite the solutions. Fix: choose another folder with -o.")
    # Check every notebook before writing any, so a bad marker leaves nothing half-done.
    versions = [(nb, student_version(nbformat.read(nb, as_version=4), name=nb.name))
                for nb in notebooks]
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook, student in versions:
        target = output / notebook.name
        nbformat.write(student, target)
        written.append(target)
    for folder in {nb.parent / "quizzes" for nb in notebooks}:
        if folder.is_dir():
            shutil.copytree(folder, output / "quizzes", dirs_exist_ok=True)
    return written


# --------------------------------------------------------------------------- check run

@dataclass
class NotebookRun:
    notebook: str
    executed: str
    status: str                      # "passed" or "failed"
    seconds: float
    peak_memory_mb: float | None     # the kernel's peak resident memory; None where unknown
    error: str = ""                  # "ZeroDivisionError: division by zero"
    failed_cell: int | None = None   # the failing cell's position in the notebook, from 1
    failed_execution_count: int | None = None
    failed_source: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def where(self) -> str:
        if self.failed_cell is None:
            return ""
        count = f" (In [{self.failed_execution_count}])" if self.failed_execution_count else ""
        return f"cell {self.failed_cell}{count}"


@dataclass
class CourseRun:
    runs: list[NotebookRun]
    mode: str                        # "smoke" or "full"
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(run.passed for run in self.runs)

    def summary(self) -> str:
        failed = [Path(run.notebook).name for run in self.runs if not run.passed]
        text = f"{len(self.runs) - len(failed)} of {len(self.runs)} notebooks ran ({self.mode} size)"
        return text + (f"; failed: {', '.join(failed)}" if failed else "")

    def markdown(self) -> str:
        lines = ["# labkit course run", "", f"**{self.summary()}.**", ""]
        lines += [f"- {key}: {value}" for key, value in self.environment.items()]
        lines += ["", "| notebook | status | wall time | peak memory | failed at |",
                  "| --- | --- | --- | --- | --- |"]
        for run in self.runs:
            lines.append(f"| {Path(run.notebook).name} | {run.status} | {run.seconds:.0f} s | "
                         f"{_memory(run.peak_memory_mb)} | {run.where()} |")
        for run in (r for r in self.runs if not r.passed):
            lines += ["", f"## {Path(run.notebook).name}: failed", "",
                      f"{run.error}" + (f" ({run.where()})" if run.where() else ""), "",
                      f"Executed copy, with the traceback under the cell: `{run.executed}`"]
            if run.failed_source:
                lines += ["", "```python", run.failed_source, "```"]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        e = html.escape
        rows = "\n".join(
            f"<tr class='{run.status}'><td>{e(Path(run.notebook).name)}</td><td>{run.status}</td>"
            f"<td>{run.seconds:.0f} s</td><td>{_memory(run.peak_memory_mb)}</td>"
            f"<td>{e(run.where())}</td></tr>" for run in self.runs)
        details = "\n".join(
            f"<h2>{e(Path(run.notebook).name)}: failed</h2><p>{e(run.error)}"
            f"{' (' + e(run.where()) + ')' if run.where() else ''}</p>"
            f"<p>Executed copy, with the traceback under the cell: <code>{e(run.executed)}</code></p>"
            f"<pre>{e(run.failed_source)}</pre>" for run in self.runs if not run.passed)
        facts = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in self.environment.items())
        return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>labkit course run</title>"
                "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}"
                ".failed{background:#fdd}.passed{background:#dfd}</style></head><body>\n"
                f"<h1>labkit course run</h1><p><b>{e(self.summary())}.</b></p><ul>{facts}</ul>\n"
                "<table><tr><th>notebook</th><th>status</th><th>wall time</th><th>peak memory</th>"
                f"<th>failed at</th></tr>\n{rows}\n</table>\n{details}\n</body></html>\n")

    def write_report(self, path: Path | str) -> Path:
        path = check_report_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown() if path.suffix.lower() == ".md" else self.html(),
                        encoding="utf-8")
        return path


def check_report_path(path: Path | str) -> Path:
    """``path`` if it names a Markdown or HTML report, else a ValueError with the fix."""
    path = Path(path)
    if path.suffix.lower() not in (".md", ".html", ".htm"):
        raise ValueError(f"{path}: a report is Markdown (.md) or HTML (.html). "
                         "Fix: name the report file with one of these suffixes.")
    return path


def _memory(mb: float | None) -> str:
    return "n/a" if mb is None else f"{mb:,.0f} MB"


def _environment(mode: str, env: dict[str, str]) -> dict[str, str]:
    facts = {"size": mode,
             "stand-in weights and data": "yes" if env.get("LABKIT_STANDIN") == "1" else "no",
             "offline": "yes" if env.get("LABKIT_OFFLINE") == "1" else "no",
             "machine": f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPU cores",
             "python": platform.python_version(),
             "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        facts["torch"], facts["GPU"] = torch.__version__, gpu
    except ImportError:
        pass
    return facts


# Lessons whose default model or photos are downloads, and the parameters that run them on a
# real pre-trained model and real photos installed with the course instead: nothing to
# download, nothing random. `course run --installed` and the test suite use them.
INSTALLED = {
    "05_feature_extraction": {"BACKBONE": "efficientnet_lite0", "PHOTOS": "faces"},
    "06_fine_tuning": {"MODEL_NAME": "efficientnet_lite0", "PHOTOS": "faces"},
    "07_fine_tuning_strategies": {"MODEL_NAME": "efficientnet_lite0", "PHOTOS": "faces"},
    "10_choosing_a_model": {"PHOTOS": "faces"},
    "11_capstone": {"PHOTOS": "faces"},
}


def _execute(notebook: str, executed: str, smoke: bool, timeout: float | None,
             kernel: str, parameters: dict | None = None) -> dict:
    """Run one notebook in this process (a fresh one per notebook): what ``run_notebook`` reads."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    result: dict = {"status": "passed", "error": ""}
    started = time.perf_counter()
    try:
        papermill.execute_notebook(notebook, executed,
                                   parameters={"SMOKE_TEST": smoke, **(parameters or {})},
                                   kernel_name=kernel, cwd=str(Path(notebook).parent),
                                   execution_timeout=timeout, progress_bar=False)
    except PapermillExecutionError as error:
        result.update(status="failed", error=f"{error.ename}: {error.evalue}",
                      failed_cell=_source_position(executed, error.cell_index),
                      failed_execution_count=error.exec_count, failed_source=error.source)
    except Exception as error:  # a timeout, a dead kernel, an unreadable notebook
        result.update(status="failed", error=f"{type(error).__name__}: {error}".strip())
        index = _running_cell(executed)
        if index is not None:
            result.update(failed_cell=_source_position(executed, index),
                          failed_source=nbformat.read(executed, as_version=4).cells[index].source)
    result["seconds"] = time.perf_counter() - started
    try:
        import resource

        # The kernel ran as this process's child and was waited for, so RUSAGE_CHILDREN holds
        # its peak resident size (kilobytes on Linux, bytes on macOS).
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result["peak_memory_mb"] = peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
    except ImportError:  # Windows
        result["peak_memory_mb"] = None
    return result


def _running_cell(executed: str) -> int | None:
    """The cell execution stopped in, for a stop papermill does not pin on a cell (a timeout,
    a dead kernel): one still marked running, else the first with an error, else the last one
    that started."""
    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return None
    states = [cell.get("metadata", {}).get("papermill", {}) for cell in cells]
    errors = [i for i, cell in enumerate(cells) if cell.cell_type == "code"
              and any(out.get("output_type") == "error" for out in cell.get("outputs", []))]
    started = [i for i, state in enumerate(states) if state.get("start_time")]
    running = [i for i, state in enumerate(states) if state.get("status") == "running"]
    return next(iter(running or errors or started[-1:]), None)


def _source_position(executed: str, index: int) -> int:
    """Cell ``index`` of the executed copy as a position in the source notebook, from 1.

    papermill adds one cell (tagged ``injected-parameters``) that the source does not have.
    """
    try:
        cells = nbformat.read(executed, as_version=4).cells[:index]
    except (OSError, ValueError):
        return index + 1
    return 1 + sum("injected-parameters" not in c.get("metadata", {}).get("tags", []) for c in cells)


def run_notebook(notebook: Path | str, executed: Path | str, *, smoke: bool = True,
                 timeout: float | None = 600, kernel: str = "python3",
                 env: dict[str, str] | None = None,
                 parameters: dict | None = None) -> NotebookRun:
    """Execute ``notebook`` into ``executed`` in a fresh process and say how it went.
    ``parameters`` are set after the notebook's parameters cell, as papermill's ``-p`` does."""
    notebook, executed = Path(notebook).resolve(), Path(executed).resolve()
    executed.parent.mkdir(parents=True, exist_ok=True)
    request = json.dumps([str(notebook), str(executed), smoke, timeout, kernel, parameters])
    process = subprocess.run([sys.executable, "-m", "labkit.instructor.course", request],
                             capture_output=True, text=True, env=env)
    try:
        result = json.loads(process.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"status": "failed", "seconds": 0.0, "peak_memory_mb": None,
                  "error": f"the runner itself failed: {process.stderr.strip()[-2000:]}"}
    return NotebookRun(notebook=str(notebook), executed=str(executed), **result)


def run_course(sources: list[Path | str] | None = None, *, output: Path | str = "course-run",
               smoke: bool = True, standin: bool = False, offline: bool = False,
               installed: bool = False, timeout: float | None = 600, kernel: str = "python3",
               progress=print) -> CourseRun:
    """Execute every notebook, one after the other, into ``output``; see the module docstring.
    ``installed`` runs the lessons of ``INSTALLED`` on the real models and photos installed
    with the course."""
    notebooks = _notebooks_in([Path(s) for s in sources] if sources else [course_notebooks()])
    env = dict(os.environ)
    for name, on in (("LABKIT_STANDIN", standin), ("LABKIT_OFFLINE", offline)):
        if on:
            env[name] = "1"
    runs = []
    for notebook in notebooks:
        if progress:
            progress(f"running {notebook.name} ...", flush=True)
        run = run_notebook(notebook, Path(output) / notebook.name, smoke=smoke, timeout=timeout,
                           kernel=kernel, env=env,
                           parameters=INSTALLED.get(notebook.stem) if installed else None)
        if progress:
            progress(f"  {run.status} in {run.seconds:.0f} s, peak memory "
                     f"{_memory(run.peak_memory_mb)}"
                     + (f": {run.error.splitlines()[0]}" if run.error else ""),
                     flush=True)
        runs.append(run)
    mode = "smoke" if smoke else "full"
    return CourseRun(runs, mode, _environment(mode, env))


if __name__ == "__main__":  # the worker that run_notebook starts: one notebook, a JSON line back
    notebook, executed, smoke, timeout, kernel, parameters = json.loads(sys.argv[1])
    outcome = _execute(notebook, executed, smoke, timeout, kernel, parameters)
    print(json.dumps(outcome))
