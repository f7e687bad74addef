"""``course student``: notebooks without solutions (nbgrader's markers) or outputs. ``course
run``: each notebook run by papermill in a fresh process, timed and measured (README)."""

import io
import multiprocessing
import os
import re
import shutil
import sys
import time
import tokenize
import unicodedata
import urllib.parse
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
PLACEHOLDER = ('raise NotImplementedError("Your code here: write your solution in place of this '
               'line (the text above says what it should do), then run this cell again.")')
# What is left of a marker once case, #s, punctuation, underscores and odd spaces are ignored.
_MARKER_WORDS = re.compile(r"\b(begin|end) ?(solutions?|hidden ?tests?)\b")

# Parameters that run these lessons on the model and photos pip installs: `--installed`, tests.
INSTALLED = {
    "05_feature_extraction": {"BACKBONE": "efficientnet_lite0", "PHOTOS": "faces"},
    "06_fine_tuning": {"MODEL_NAME": "efficientnet_lite0", "PHOTOS": "faces"},
    "07_fine_tuning_strategies": {"MODEL_NAME": "efficientnet_lite0", "PHOTOS": "faces"},
    "10_choosing_a_model": {"PHOTOS": "faces"},
    "11_capstone": {"PHOTOS": "faces"},
}


class StudentVersionError(ValueError):
    """Markers that do not pair up, or a line that is almost one: no student version is made."""


def _almost_a_marker(line: str) -> bool:
    """True for a line a person reads as a marker ("## Begin Solution:", "BEGIN_SOLUTION")."""
    text = "".join(c for c in unicodedata.normalize("NFKC", line)
                   if unicodedata.category(c) != "Cf")  # zero-width spaces and the like
    return bool(_MARKER_WORDS.search(re.sub(r"[\W_]+", " ", text.casefold())))


def _comment_lines(source: str) -> set[int] | None:
    """The numbers of a code cell's comment-only lines; None for a cell that is not Python."""
    if source.lstrip().startswith("%%"):
        return None
    # Magics and shell lines read as comments, so the line numbers stay.
    python = "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line
                       for line in source.splitlines())
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(python).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return {t.start[0] for t in tokens
            if t.type == tokenize.COMMENT and not t.line[:t.start[1]].strip()}


def strip_solutions(source: str, *, cell_type: str = "code", where: str = "cell") -> str:
    """``source`` with each solution replaced by a placeholder and each hidden test removed.
    Markers pair up, unnested, each alone on its line (in code, a comment outside any string)."""
    out: list[str] = []
    open_marker = None
    comments = _comment_lines(source) if cell_type == "code" else None
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        at = f"{where}, line {number}: {marker!r}"
        if marker not in MARKERS and _almost_a_marker(line):
            raise StudentVersionError(
                f"{at} looks like a solution marker but is not exactly one, so what it marks "
                f"would reach the student copy. Fix: write the marker exactly as "
                f"{' / '.join(map(repr, MARKERS))}, alone on its line, or reword the line.")
        if marker in MARKERS and comments is not None and number not in comments:
            raise StudentVersionError(
                f"{at} is inside a string literal, where it is text, not a marker. Fix: put "
                f"markers on lines of their own, as comments outside any string.")
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if open_marker:
                raise StudentVersionError(f"{at} inside an open {open_marker!r} block. Fix: "
                                          f"close that block with its END marker first.")
            open_marker = marker
            indent = line[: len(line) - len(line.lstrip())]
            if marker == BEGIN_SOLUTION and cell_type == "code":
                out += [f"{indent}# YOUR CODE HERE", indent + PLACEHOLDER]
            elif marker == BEGIN_SOLUTION:
                out.append(indent + "YOUR ANSWER HERE")
        elif marker in (END_SOLUTION, END_HIDDEN):
            begin = marker.replace("END", "BEGIN")
            if open_marker != begin:
                raise StudentVersionError(f"{at} without a matching {begin!r} before it. Fix: "
                                          f"add the BEGIN marker, or remove this line.")
            open_marker = None
        elif open_marker is None:
            out.append(line)
    if open_marker:
        raise StudentVersionError(f"{where}: {open_marker!r} is never closed. Fix: add a "
                                  f"{open_marker.replace('BEGIN', 'END')!r} line where it ends.")
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def student_version(notebook: nbformat.NotebookNode, *, name: str = "notebook") \
        -> nbformat.NotebookNode:
    """A copy of ``notebook`` without solutions, hidden tests, outputs or widget state."""
    student = nbformat.from_dict(notebook)  # a deep copy
    cells = []
    for index, cell in enumerate(student.cells):
        source = strip_solutions(cell.source, cell_type=cell.cell_type,
                                 where=f"{name}, cell {index} (id {cell.get('id')})")
        if BEGIN_HIDDEN in cell.source and not source.strip():
            continue  # the cell was only a hidden test
        if source != cell.source and "attachments" in cell:  # a solution's images go with it
            shown = {key: data for key, data in cell.pop("attachments").items()
                     if f"attachment:{key}" in source
                     or f"attachment:{urllib.parse.quote(key)}" in source}
            if shown:
                cell.attachments = shown
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    student.cells = cells
    student.metadata.pop("widgets", None)
    nbformat.validate(student)
    return student


def _notebooks(sources: list[Path | str] | None) -> list[Path]:
    """The notebooks named, or in the folders named (by default the course's notebooks/)."""
    sources = sources or [Path(__file__).resolve().parents[2] / "notebooks"]
    found = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(source.glob("*.ipynb"))
        elif source.suffix == ".ipynb" and source.is_file():
            found.append(source)
        else:
            raise FileNotFoundError(f"{source}: no such notebook or folder. Fix: name .ipynb "
                                    f"files or folders that hold them.")
    if not found:
        raise FileNotFoundError(f"No notebooks in {', '.join(map(str, sources))}. Fix: name "
                                f"the folder that holds the lessons.")
    return found


def write_student_versions(sources: list[Path | str] | None = None,
                           output: Path | str = "student-notebooks") -> list[Path]:
    """Write each notebook's student version, and the quizzes/ folder, into ``output``."""
    notebooks, output = _notebooks(sources), Path(output)
    if any(output.resolve() == notebook.parent.resolve() for notebook in notebooks):
        raise ValueError(f"{output} holds the source notebooks; writing student versions there "
                         "would overwrite the solutions. Fix: choose another folder with -o.")
    # Every notebook is checked before any is written: a bad marker leaves nothing half-done.
    versions = {output / nb.name: student_version(nbformat.read(nb, as_version=4), name=nb.name)
                for nb in notebooks}
    output.mkdir(parents=True, exist_ok=True)
    for target, student in versions.items():
        nbformat.write(student, target)
    for quizzes in {notebook.parent / "quizzes" for notebook in notebooks}:
        if quizzes.is_dir():
            shutil.copytree(quizzes, output / "quizzes", dirs_exist_ok=True)
    return list(versions)


@dataclass
class NotebookRun:
    notebook: Path
    executed: Path
    seconds: float
    peak_memory_mb: float | None  # the kernel's peak resident memory; None where unknown
    error: str = ""               # "ZeroDivisionError: division by zero"; empty if it ran
    failed_at: str = ""           # "cell 4 (In [3])": the cell's position in the source


@dataclass
class CourseRun:
    runs: list[NotebookRun]
    size: str  # "smoke" or "full"

    def summary(self) -> str:
        failed = [run.notebook.name for run in self.runs if run.error]
        ran = f"{len(self.runs) - len(failed)} of {len(self.runs)} notebooks ran ({self.size} size)"
        return ran + (f"; failed: {', '.join(failed)}" if failed else "")

    def write_report(self, path: Path) -> Path:
        """Write the report as Markdown: a table of the runs, then each failure's error."""
        lines = ["# labkit course run", "", f"**{self.summary()}.**", "",
                 "| notebook | status | wall time | peak memory | failed at |", "|---" * 5 + "|"]
        lines += [f"| {r.notebook.name} | {'failed' if r.error else 'passed'} | "
                  f"{r.seconds:.0f} s | {_memory(r.peak_memory_mb)} | {r.failed_at} |"
                  for r in self.runs]
        lines += [f"\n## {r.notebook.name}\n\n{r.failed_at or 'unknown cell'}: {r.error}\n\n"
                  f"The traceback is in `{r.executed}`." for r in self.runs if r.error]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def _memory(mb: float | None) -> str:
    return "n/a" if mb is None else f"{mb:,.0f} MB"


def _execute(notebook: Path, executed: Path, parameters: dict, timeout: float | None,
             modes: dict[str, str]) -> NotebookRun:
    """Run one notebook in this process, the fresh one that ``run_course`` starts for it."""
    import papermill

    os.environ.update(modes)  # for the kernel papermill starts
    started, error, peak = time.perf_counter(), "", None
    try:
        papermill.execute_notebook(notebook, executed, parameters=parameters, kernel_name="python3",
                                   cwd=str(notebook.parent), execution_timeout=timeout,
                                   progress_bar=False)
    except papermill.PapermillExecutionError as failure:  # the cell's error, not the wrapper's
        error = f"{failure.ename}: {failure.evalue}"
    except Exception as failure:  # a timeout, a dead kernel
        error = f"{type(failure).__name__}: {failure}".strip()
    if sys.platform != "win32":
        import resource

        # The kernel was this process's one child and was waited for: this is its peak
        # resident size, in KiB on Linux and bytes on macOS.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak /= 2**20 if sys.platform == "darwin" else 1024
    return NotebookRun(notebook, executed, time.perf_counter() - started, peak, error)


def _find_failure(run: NotebookRun) -> None:
    """Name the cell the run stopped in, the last one that started, from the executed copy."""
    try:
        cells = nbformat.read(run.executed, as_version=4).cells
    except (OSError, ValueError):  # no executed copy: the kernel never started
        return
    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells the source does not have
    cells = [c for c in cells if not added & set(c.metadata.get("tags", []))]
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    if started:
        count = cells[started[-1]].get("execution_count")
        run.failed_at = f"cell {started[-1] + 1}" + (f" (In [{count}])" if count else "")


def run_course(sources: list[Path | str] | None = None, *, output: Path | str = "course-run",
               smoke: bool = True, standin: bool = False, offline: bool = False,
               installed: bool = False, timeout: float | None = 600) -> CourseRun:
    """Execute every notebook, one at a time and each in a fresh process, into ``output``;
    ``installed`` runs the lessons of ``INSTALLED`` on the model and photos pip installed."""
    modes = {name: "1" for name, on in (("LABKIT_STANDIN", standin),
                                        ("LABKIT_OFFLINE", offline)) if on}
    runs = []
    for notebook in _notebooks(sources):
        print(f"running {notebook.name} ...", flush=True)
        executed = Path(output).resolve() / notebook.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        lesson = INSTALLED.get(notebook.stem, {}) if installed else {}
        # A fresh process per notebook, so that its peak memory is this notebook's alone.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
            job = worker.submit(_execute, notebook.resolve(), executed,
                                {"SMOKE_TEST": smoke, **lesson}, timeout, modes)
            try:
                run = job.result()
            except BrokenExecutor as error:  # the process itself died
                run = NotebookRun(notebook, executed, 0.0, None, str(error))
        if run.error:
            _find_failure(run)
        status = f"failed: {run.error.splitlines()[0]}" if run.error else "passed"
        print(f"  {status} ({run.seconds:.0f} s, peak memory {_memory(run.peak_memory_mb)})")
        runs.append(run)
    return CourseRun(runs, "smoke" if smoke else "full")
