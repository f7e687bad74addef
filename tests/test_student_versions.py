"""Student versions leak nothing: marker variants, attachments, markers inside strings.

A line that is almost a marker is an error naming the notebook, the cell and the line; a
solution cell's attachments stay out of the student copy; a marker inside a string literal
is an error rather than a silent cut. The course's own notebooks still make student versions.
"""

import subprocess
import sys

import nbformat
import pytest

from conftest import NOTEBOOKS, ROOT
from labkit.instructor.course import StudentVersionError, strip_solutions, student_version

SECRET = "secret_answer = 6 * 7"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def _variants(marker: str) -> list[str]:
    """Lines a person might type for ``marker`` that are not exactly it."""
    words = marker.removeprefix("### ")
    return [marker.lower(), marker.title(), f"# {words}", f"## {words}", f"#### {words}",
            f"###{words}", f"### {words.replace(' ', '  ')}", f"### {words.replace(' ', '_')}",
            f"### {words.replace(' ', '-')}", f"{marker} (part a)", f"{marker}:",
            f"{marker} ###", f"# --- {words} ---", words, f"x = 1  {marker}",
            f"{marker}\u200b",  # a zero-width space
            f"### {words.replace('N', 'Ｎ')}",  # a full-width N
            f"\t{marker.lower()}"]


def _notebook(*sources, cell_type="code"):
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                           *(make(source) for source in sources)])


def _leaks(student, *secrets) -> bool:
    text = "\n".join(cell.source for cell in student.cells)
    return any(secret in text for secret in secrets)


BEGIN_VARIANTS = _variants(BEGIN) + _variants("### BEGIN HIDDEN TESTS")
END_VARIANTS = _variants(END) + _variants("### END HIDDEN TESTS")


@pytest.mark.parametrize("cell_type", ["code", "markdown"])
@pytest.mark.parametrize("variant", BEGIN_VARIANTS)
def test_a_begin_marker_variant_is_an_error_naming_cell_and_line(variant, cell_type):
    nb = _notebook("intro = 1", f"def f():\n    {variant}\n    {SECRET}\n    {END}",
                   cell_type=cell_type)
    with pytest.raises(StudentVersionError) as error:
        student_version(nb, name="lesson.ipynb")
    message = str(error.value)
    assert f"lesson.ipynb, cell 2 (id {nb.cells[2].id}), line 2" in message, message
    assert "Fix:" in message and "### BEGIN SOLUTION" in message


@pytest.mark.parametrize("variant", END_VARIANTS)
def test_an_end_marker_variant_is_an_error_and_nothing_after_it_leaks(variant):
    begin = "### BEGIN HIDDEN TESTS" if "HIDDEN" in variant.upper() else BEGIN
    end = begin.replace("BEGIN", "END")
    nb = _notebook(f"{begin}\n{SECRET}\n{variant}\nsecond_secret = 1\n{end}")
    with pytest.raises(StudentVersionError, match=r"cell 1 \(id .*\), line 3"):
        student_version(nb, name="lesson.ipynb")


@pytest.mark.parametrize("variant", BEGIN_VARIANTS + END_VARIANTS + [
    f"{BEGIN}  ", f"  {BEGIN}\t", f"{BEGIN}\u00a0"])
def test_no_student_copy_contains_a_solution_line_for_any_variant(variant):
    """Every way of mixing variants and markers either fails or leaves no solution line."""
    for source in (f"{variant}\n{SECRET}\n{END}", f"{BEGIN}\n{SECRET}\n{variant}\n{SECRET}\n{END}",
                   f"{variant}\n{SECRET}\n{variant}"):
        try:
            student = student_version(_notebook(source), name="lesson.ipynb")
        except StudentVersionError:
            continue
        assert not _leaks(student, SECRET), (variant, source)


def test_the_command_line_fails_on_a_variant_and_writes_nothing(tmp_path):
    nbformat.write(_notebook(f"### Begin Solution\n{SECRET}\n### End Solution"),
                   tmp_path / "lesson.ipynb")
    done = subprocess.run([sys.executable, "-m", "labkit", "course", "student", "lesson.ipynb",
                           "-o", "out"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "lesson.ipynb, cell 1" in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


def _markdown_with_attachments():
    cell = nbformat.v4.new_markdown_cell(
        "What does the model see?\n\n![question](attachment:question.png)\n\n"
        f"{BEGIN}\nThis:\n\n![answer](attachment:answer.png)\n{END}")
    cell.attachments = {"question.png": {"image/png": "UVVFU1RJT04="},
                        "answer.png": {"image/png": "QU5TV0VS"},
                        "unused.png": {"image/png": "VU5VU0VE"}}
    return nbformat.v4.new_notebook(cells=[cell])


def test_a_solution_cells_attachments_stay_out_of_the_student_copy():
    student = student_version(_markdown_with_attachments(), name="lesson.ipynb")
    cell = student.cells[0]
    assert "answer.png" not in cell.get("attachments", {}) and "QU5TV0VS" not in str(student)
    assert "VU5VU0VE" not in str(student), "an attachment nothing shows may be a solution's"
    # The question's own picture stays, so the question still reads as written.
    assert cell.attachments == {"question.png": {"image/png": "UVVFU1RJT04="}}
    nbformat.validate(student)


@pytest.mark.parametrize("source", [
    f'text = """\n{BEGIN}\n{SECRET}\n{END}\n"""',
    f"text = f'''\n{BEGIN}\n{SECRET}\n{END}\n'''",
    f'def f():\n    """Docs.\n\n    {BEGIN}\n    """\n    {SECRET}\n    {END}',
])
def test_a_marker_inside_a_string_literal_is_an_error_not_a_silent_cut(source):
    with pytest.raises(StudentVersionError, match="string") as error:
        student_version(_notebook(source), name="lesson.ipynb")
    assert "cell 1" in str(error.value) and "Fix:" in str(error.value)


def test_markers_still_work_beside_magics_and_shell_lines():
    nb = _notebook(f"%matplotlib inline\n!echo hi\nx = 1\n{BEGIN}\n{SECRET}\n{END}\nx?")
    student = student_version(nb, name="lesson.ipynb")
    assert not _leaks(student, SECRET) and "NotImplementedError" in student.cells[1].source


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_the_course_notebooks_still_make_student_versions(source):
    original = nbformat.read(source, as_version=4)
    student = student_version(original, name=source.name)
    solutions = [c for c in original.cells if BEGIN in c.source]
    assert all(BEGIN not in c.source for c in student.cells)
    assert sum("NotImplementedError" in c.source or "YOUR ANSWER HERE" in c.source
               for c in student.cells) >= len(solutions)
    assert ROOT in source.parents


@pytest.mark.parametrize("source", ["Read the rows.\n", "x = 1\n\n", "no newline", ""])
def test_a_cell_without_markers_is_copied_exactly(source):
    assert strip_solutions(source) == source
    assert strip_solutions(source, cell_type="markdown") == source
