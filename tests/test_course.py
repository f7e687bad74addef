"""The instructor kit: student versions of the lessons, and ``python -m labkit course run``."""

import re
import subprocess
import sys

import nbformat
import pytest

from conftest import NOTEBOOKS, ROOT
from notebook_runs import executed
from labkit.instructor.course import (PLACEHOLDER, StudentVersionError, strip_solutions, student_version,
                           write_student_versions)

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "labkit", "course", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


# --- taking the solutions out -------------------------------------------------------------------

def test_a_solution_becomes_a_placeholder_at_its_own_indentation():
    source = "def f(x):\n    '''Double x.'''\n    ### BEGIN SOLUTION\n    return 2 * x\n" \
             "    ### END SOLUTION\n\nprint(f(2))"
    student = strip_solutions(source)
    assert "return 2 * x" not in student and "SOLUTION" not in student
    assert student.splitlines() == ["def f(x):", "    '''Double x.'''", "    # YOUR CODE HERE",
                                    f"    {PLACEHOLDER}", "", "print(f(2))"]
    namespace = {}
    exec(student.replace("print(f(2))", ""), namespace)  # noqa: S102 - the test's own code
    with pytest.raises(NotImplementedError, match="Your code here"):
        namespace["f"](2)


def test_hidden_checks_go_and_markdown_answers_become_a_prompt():
    code = "answer = 42\n### BEGIN HIDDEN TESTS\nassert answer == 42\n### END HIDDEN TESTS\nprint(1)"
    assert strip_solutions(code) == "answer = 42\nprint(1)"
    markdown = "Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"
    assert strip_solutions(markdown, cell_type="markdown") == "Why?\n\nYOUR ANSWER HERE"


@pytest.mark.parametrize("source, problem", [
    (f"{BEGIN}\nx = 1", "never closed"),
    (f"x = 1\n{END}", "without a matching"),
    (f"{BEGIN}\n{BEGIN}\nx = 1\n{END}\n{END}", "inside an open"),
    (f"{BEGIN}\nx = 1\n### END HIDDEN TESTS", "without a matching"),
])
def test_markers_that_do_not_pair_up_are_named_with_their_cell(source, problem):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"),
                                         nbformat.v4.new_code_cell(source)])
    with pytest.raises(StudentVersionError, match=problem) as error:
        student_version(nb, name="lesson.ipynb")
    assert "lesson.ipynb, cell 1" in str(error.value) and "Fix:" in str(error.value)


def test_a_cell_that_was_only_a_hidden_check_is_dropped_and_outputs_are_cleared():
    ran = nbformat.v4.new_code_cell("x = 1", execution_count=1,
                                    outputs=[nbformat.v4.new_output("stream", text="hi\n")])
    hidden = nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS")
    nb = nbformat.v4.new_notebook(cells=[ran, hidden], metadata={"widgets": {"state": {}}})
    student = student_version(nb, name="t.ipynb")
    assert [c.source for c in student.cells] == ["x = 1"]
    assert student.cells[0].outputs == [] and student.cells[0].execution_count is None
    assert "widgets" not in student.metadata
    assert nb.cells[0].outputs, "the source notebook must not change"


def test_student_versions_refuse_to_overwrite_the_sources(tmp_path):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   tmp_path / "a.ipynb")
    with pytest.raises(ValueError, match="overwrite the solutions"):
        write_student_versions([tmp_path], tmp_path)


# --- the course's student versions --------------------------------------------------------------

@pytest.fixture(scope="session")  # once per worker: its tests sit in each notebook's group
def student_folder(tmp_path_factory):
    """The student versions, made the way the instructor guide says: with the command line."""
    folder = tmp_path_factory.mktemp("class") / "student-notebooks"
    done = run_cli("student", "-o", folder, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"Wrote {len(NOTEBOOKS)} student notebooks" in done.stdout
    return folder


def solution_only_lines(nb):
    """Lines inside solution blocks that appear nowhere else in the notebook."""
    inside, outside = set(), set()
    for cell in nb.cells:
        in_block = False
        for line in cell.source.splitlines():
            if line.strip() in (BEGIN, END):
                in_block = line.strip() == BEGIN
            elif line.strip() and not line.strip().startswith("#"):
                (inside if in_block else outside).add(line.strip())
    return inside - outside


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_has_no_solution_code_left(student_folder, source):
    original = nbformat.read(source, as_version=4)
    student = nbformat.read(student_folder / source.name, as_version=4)
    nbformat.validate(student)
    text = "\n".join(cell.source for cell in student.cells)
    assert "SOLUTION" not in text and "HIDDEN TESTS" not in text
    hidden = solution_only_lines(original)
    assert not [line for line in text.splitlines() if line.strip() in hidden]
    blocks = sum(c.source.count(BEGIN) for c in original.cells if c.cell_type == "code")
    assert text.count(PLACEHOLDER) == blocks
    if source.name not in ("00_start_here.ipynb", "12_scaling_out.ipynb"):  # no exercise there
        assert blocks >= 1 and hidden, f"{source.name} has no exercise to take out"
    assert all(not c.get("outputs") for c in student.cells)
    # Everything else is the lesson as written.
    assert len(student.cells) == len(original.cells)
    for before, after in zip(original.cells, student.cells):
        if BEGIN not in before.source:
            assert after.source == before.source


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_cells_carry_nbgraders_metadata(source):
    """So `nbgrader generate_assignment` takes the lessons as they are (it refuses markers in
    cells not marked as solution cells)."""
    cells = [c for c in nbformat.read(source, as_version=4).cells if BEGIN in c.source]
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells]
    for cell in cells:
        meta = cell.metadata.get("nbgrader")
        assert meta and meta["solution"] is True and meta["schema_version"] == 3, source.name
    assert len(set(ids)) == len(ids), f"{source.name}: grade_ids repeat: {ids}"


def test_student_versions_bring_their_quiz_banks(student_folder):
    banks = {path.name for path in (ROOT / "notebooks" / "quizzes").glob("*.yaml")}
    assert banks and banks == {path.name for path in (student_folder / "quizzes").glob("*.yaml")}


@pytest.mark.notebook
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_runs_until_each_exercise_and_stops_there(student_folder, source):
    """The student version runs up to each exercise, which stops it with 'Your code here';
    the instructor's version passes there.

    No second run: the notebook's one test run (notebook_runs.executed) executes the student
    version of each exercise cell in the same kernel just before the instructor's cell. The
    cells before an exercise are the same in both versions (see the test above), and the
    instructor run executed them without error."""
    student = nbformat.read(student_folder / source.name, as_version=4)
    exercises = [i for i, cell in enumerate(student.cells) if PLACEHOLDER in cell.source]
    if not exercises:  # no exercise: the same code as the source, which test_notebooks runs
        original = nbformat.read(source, as_version=4)
        assert [c.source for c in student.cells] == [c.source for c in original.cells]
        return
    run = executed(source).ok()
    checks = {check["cell"]: check for check in run.student_checks}
    assert sorted(checks) == exercises, "every exercise cell is checked, once"
    for index in exercises:
        check = checks[index]
        # It stops in the exercise's cell, or (where that cell only defines a function) in
        # one of the cells after it that calls it; either way the error is the placeholder's.
        assert check["stopped_at"] is not None, f"cell {index}: the student version never stopped"
        assert check["stopped_at"] >= index
        assert check["ename"] == "NotImplementedError", check
        assert "Your code here" in check["evalue"], check


# --- python -m labkit course run ----------------------------------------------------------------

def write_notebook(path, *sources, parameters="SMOKE_TEST = False"):
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    if parameters:
        cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    """Two small notebooks, one of which fails in its fourth cell, run by the command."""
    folder = tmp_path_factory.mktemp("room")
    write_notebook(folder / "a_big.ipynb",
                   "import numpy as np\nblock = np.ones(400 * 2**20 // 8)  # 400 MB, touched",
                   "print('smoke' if SMOKE_TEST else 'full', block.sum())")
    write_notebook(folder / "b_broken.ipynb", "x = 1", "y = x / 0  # the broken cell", "z = 2")
    done = run_cli("run", "a_big.ipynb", "b_broken.ipynb", "-o", "out", cwd=folder)
    return folder, done


def test_course_run_reports_the_failure_with_its_cell(course_run):
    folder, done = course_run
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 of 2 notebooks ran (smoke size); failed: b_broken.ipynb" in done.stdout
    report = (folder / "out" / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in report.splitlines()
            if line.startswith("| ") and ".ipynb" in line}
    assert re.search(r"\| passed \| \d+ s \| [\d,]+ MB \|", rows["a_big.ipynb"])
    assert "| failed |" in rows["b_broken.ipynb"]
    # The markdown title is cell 1, the parameters cell 2: the division is cell 4.
    assert "cell 4 (In [" in rows["b_broken.ipynb"]
    assert re.search(r"cell 4 \(In \[\d+\]\): ZeroDivisionError: division by zero", report)
    executed = nbformat.read(folder / "out" / "b_broken.ipynb", as_version=4)
    assert any(o.output_type == "error" for c in executed.cells if c.cell_type == "code"
               for o in c.outputs)


def test_course_run_measures_wall_time_and_peak_memory(course_run):
    folder, _ = course_run
    report = (folder / "out" / "report.md").read_text()
    memory = {name: int(mb.replace(",", "")) for name, mb in
              re.findall(r"\| (\w+)\.ipynb \| \w+ \| \d+ s \| ([\d,]+) MB", report)}
    assert memory["a_big"] >= 400, memory   # the 400 MB array is in the kernel's peak
    assert memory["b_broken"] < 300, memory  # and does not leak into the next notebook's
    executed = nbformat.read(folder / "out" / "a_big.ipynb", as_version=4)
    assert "smoke" in executed.cells[-1].outputs[0]["text"]  # run in smoke size by default
    assert "(smoke size)" in report


def test_course_run_installed_sets_the_installed_models_parameters(tmp_path):
    from labkit.instructor.course import INSTALLED

    params = 'SMOKE_TEST = False\nBACKBONE = "resnet18"\nPHOTOS = "hymenoptera"'
    shown = "print(BACKBONE, PHOTOS)"
    for name in ("05_feature_extraction", "02_vgg"):  # one lesson in INSTALLED, one not
        write_notebook(tmp_path / f"{name}.ipynb", shown, parameters=params)
    done = run_cli("run", "05_feature_extraction.ipynb", "02_vgg.ipynb", "--installed", "-o",
                   "out", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    def printed(name):
        executed = nbformat.read(tmp_path / "out" / f"{name}.ipynb", as_version=4)
        return executed.cells[-1].outputs[0]["text"]

    expected = INSTALLED["05_feature_extraction"]
    assert printed("05_feature_extraction") == f"{expected['BACKBONE']} {expected['PHOTOS']}\n"
    assert printed("02_vgg") == "resnet18 hymenoptera\n"  # lessons without an entry: as they are


def test_course_run_reports_a_cell_that_hangs(tmp_path):
    write_notebook(tmp_path / "slow.ipynb", "import time", "time.sleep(60)", parameters=None)
    done = run_cli("run", "slow.ipynb", "--timeout", "3", cwd=tmp_path)
    assert done.returncode == 1
    report = (tmp_path / "course-run" / "report.md").read_text()
    assert "| slow.ipynb | failed |" in report
    assert "| cell 3 (In [" in report  # the markdown title is cell 1
    assert "Timeout" in report or "timed out" in report


def test_course_run_names_a_missing_notebook(tmp_path):
    missing = run_cli("run", "nothing.ipynb", cwd=tmp_path)
    assert missing.returncode == 1 and "nothing.ipynb: no such notebook" in missing.stderr
