"""What every lesson notebook promises, checked across all of them: a quiz bank of at least
six explained questions, an exercise graded by a registered checker, the solution between
nbgrader-style markers, the quiz loaded by the notebook itself, a stated seed and a report of
the lesson's wall time. (test_notebooks.py runs them and checks what they print.)"""

import re

import nbformat
import pytest
import yaml

from conftest import NOTEBOOKS, ROOT
from labkit.quiz import load_bank
from labkit.exercises import CHECKERS

APPENDIX = "12_scaling_out.ipynb"  # no quiz, exercise or flashcards
LESSONS = [path for path in NOTEBOOKS
           if re.match(r"\d\d_", path.name) and path.name not in ("00_start_here.ipynb", APPENDIX)]
QUIZZES = ROOT / "notebooks" / "quizzes"


def test_the_lessons_are_here():
    names = {path.stem for path in LESSONS}
    assert {"01_transfer_learning", "02_vgg", "03_resnet", "04_inception",
            "05_feature_extraction", "06_fine_tuning", "07_fine_tuning_strategies", "08_bert",
            "09_fine_tuning_bert", "10_choosing_a_model", "11_capstone"} <= names, names


@pytest.fixture(params=LESSONS, ids=lambda p: p.name)
def lesson(request):
    return request.param


def test_lesson_has_a_quiz_of_six_explained_questions_and_a_code_exercise(lesson):
    bank_path = QUIZZES / f"{lesson.stem}.yaml"
    assert bank_path.exists(), f"{lesson.name} has no quiz bank {bank_path.name}"
    bank = load_bank(bank_path)  # raises, naming every problem, if the bank is malformed
    assert bank.id == lesson.stem
    raw = yaml.safe_load(bank_path.read_text(encoding="utf-8"))["questions"]
    assert len(raw) >= 6, f"{bank_path.name} has {len(raw)} questions; a lesson needs at least 6"
    unexplained = [q["id"] for q in raw if not str(q.get("explanation", "")).strip()]
    assert not unexplained, f"{bank_path.name}: questions without an explanation: {unexplained}"
    code = [q for q in raw if q["type"] == "code"]
    assert code, f"{bank_path.name} has no code exercise (type: code)"
    for question in code:
        assert question["checker"] in CHECKERS


def test_lesson_loads_its_quiz_and_hands_the_exercise_to_the_checker(lesson):
    source = "\n".join(cell.source for cell in nbformat.read(lesson, as_version=4).cells
                       if cell.cell_type == "code")
    assert f'Quiz.from_file("quizzes/{lesson.stem}.yaml")' in source
    raw = yaml.safe_load((QUIZZES / f"{lesson.stem}.yaml").read_text(encoding="utf-8"))
    for question in (q for q in raw["questions"] if q["type"] == "code"):
        assert f'quiz.answer("{question["id"]}"' in source, \
            f"{lesson.name} never answers its exercise {question['id']!r}"


def test_lesson_solutions_sit_between_markers(lesson):
    cells = [cell.source for cell in nbformat.read(lesson, as_version=4).cells
             if cell.cell_type == "code"]
    begins = sum(source.count("### BEGIN SOLUTION") for source in cells)
    ends = sum(source.count("### END SOLUTION") for source in cells)
    assert begins >= 1 and begins == ends, f"{lesson.name}: {begins} BEGIN and {ends} END markers"
    for source in cells:
        if "### BEGIN SOLUTION" in source:
            assert source.index("### BEGIN SOLUTION") < source.index("### END SOLUTION")


def test_lesson_states_its_seed(lesson):
    cells = nbformat.read(lesson, as_version=4).cells
    parameters = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    assert re.search(r"^SEED = \d+", parameters, re.M), f"{lesson.name}: no SEED in parameters"
    assert any("seed_everything(SEED)" in c.source for c in cells if c.cell_type == "code")


def test_lesson_times_itself_from_the_set_up_cell_to_the_last(lesson):
    cells = [c for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "code"]
    parameters = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert "lesson_started = time.perf_counter()" in cells[parameters + 1].source, \
        f"{lesson.name}: the cell after the parameters should start the lesson's clock"
    assert "time.perf_counter() - lesson_started" in cells[-1].source, \
        f"{lesson.name}: the last code cell should print the lesson's wall time"


def prose_words(path):
    """Words of a notebook's markdown cells, as the README's lessons table counts them."""
    cells = nbformat.read(path, as_version=4).cells
    return sum(len(cell.source.split()) for cell in cells if cell.cell_type == "markdown")


def test_the_readme_gives_every_notebooks_prose_word_count():
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    for path in NOTEBOOKS:
        row = next(line for line in rows if line.startswith(f"| `{path.stem}`"))
        assert row.split(" | ")[2] == f"{prose_words(path):,}", (path.name, row[:60])


def test_prose_words_counts_only_markdown(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Two words\n\nthree"),
                                         nbformat.v4.new_code_cell("x = 1  # not prose")])
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert prose_words(tmp_path / "n.ipynb") == 4  # "#", "Two", "words", "three"


# --- pacing: one lesson fits one 90-minute lab slot ---------------------------------------------

MAX_PROSE_WORDS = 2_000  # about what a learner reads, runs and thinks through in a lab slot
MAX_FULL_MINUTES = 10    # full size, default parameters, on the README's 2-core CPU


def readme_minutes(cell):
    """'74 s', '21 min*' or '2.5 min' from the README's lessons table, in minutes."""
    match = re.fullmatch(r"([\d.,]+) (s|min)\S*", cell.strip())
    assert match, f"not a time: {cell!r}"
    value = float(match.group(1).replace(",", ""))
    return value / 60 if match.group(2) == "s" else value


def test_readme_minutes_reads_seconds_and_minutes():
    assert readme_minutes("90 s") == 1.5 and readme_minutes("21 min*") == 21
    assert readme_minutes(" 12 s† ") == 0.2


def test_no_lesson_is_longer_than_a_lab_slot():
    rows = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    too_long = []
    for path in NOTEBOOKS:
        if prose_words(path) > MAX_PROSE_WORDS:
            too_long.append(f"{path.stem}: {prose_words(path):,} words of prose")
        row = next(line for line in rows if line.startswith(f"| `{path.stem}`"))
        if readme_minutes(row.split(" | ")[4]) > MAX_FULL_MINUTES:
            too_long.append(f"{path.stem}: {row.split(' | ')[4]} at full size")
    assert not too_long, ("longer than one lab slot (split the lesson, or make the heavy "
                          "settings parameters): " + "; ".join(too_long))
