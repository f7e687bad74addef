"""The README's first command, `make lab`, serves the course; the doctor and the quiz run in it.

A real JupyterLab started by `make lab`, a real headless Chromium driven by Playwright. The
server gets JupyterLab's own test configuration (jupyterlab.galata: no token, the app exposed
to the page) on a free port, and a throwaway settings folder so a learner's settings are
neither used nor touched. The quiz saves its results to a temporary file (LABKIT_QUIZ_RESULTS,
set for the server and so for its kernels), never into the course folder or the home folder.
One server and one page serve both tests: starting JupyterLab and running every cell is the
slow part.
"""

import json

import pytest

from browser import (chromium, click_when_idle, jupyter_server, open_and_run, require_chromium,
                     stderr_errors)
from conftest import ARTIFACTS, ROOT

expect = require_chromium().expect
NOTEBOOK = "notebooks/00_start_here.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(url, results file) of a JupyterLab started by `make lab`."""
    tmp_path = tmp_path_factory.mktemp("lab")
    results = tmp_path / "quiz-results.json"
    with jupyter_server(["make", "lab"], root=ROOT, work=tmp_path, results=results,
                        cwd=ROOT) as url:
        yield url, results


@pytest.fixture(scope="module")
def course_page(lab):
    """The start notebook open in Chromium, every cell run once."""
    url, _ = lab
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # ?reset drops tabs restored from an earlier session.
        state = open_and_run(page, f"{url}/lab/tree/{NOTEBOOK}?reset")
        assert state["path"] == NOTEBOOK
        yield page


def test_make_lab_opens_the_course_and_the_doctor_runs_in_it(course_page):
    page = course_page
    committed = (ROOT / NOTEBOOK).read_bytes()
    shot = ARTIFACTS / "browser" / "00_start_here.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    doctor = page.locator(".lk-doctor")
    doctor.wait_for(timeout=10_000)
    text = doctor.inner_text()
    doctor.scroll_into_view_if_needed()
    page.screenshot(path=str(shot))
    tracebacks = stderr_errors(page)
    assert "labkit doctor" in text
    for topic in ("torch + torchvision", "device"):
        assert topic in text
    assert not tracebacks, tracebacks
    assert (ROOT / NOTEBOOK).read_bytes() == committed, "the test changed the course notebook"


def test_the_quiz_grades_wrong_then_right_and_the_kernel_saves_the_score(course_page, lab):
    from labkit.quiz import load_bank

    page, (_, results) = course_page, lab
    committed = (ROOT / NOTEBOOK).read_bytes()
    bank = load_bank(ROOT / "notebooks" / "quizzes" / "00_start_here.yaml")
    question = bank.questions[0]  # the first question is a single choice
    right = next(c for c in question.choices if c.correct)
    wrong = next(c for c in question.choices if not c.correct)
    box = page.locator(f".lk-quiz .lk-question-{question.id}")
    box.wait_for(timeout=30_000)
    assert question.prompt.replace("`", "") in box.locator(".lk-prompt").inner_text()

    # Each widget updates in its own message, so every check below waits (expect retries)
    # rather than reading the page once.
    box.locator(".lk-choices label", has_text=wrong.text).click()
    click_when_idle(page, box.locator(".lk-check"))
    expect(box.locator(".lk-feedback.lk-wrong")).to_contain_text(wrong.explanation,
                                                                  timeout=30_000)
    expect(box.locator(".lk-attempts")).to_contain_text("1 of 3", timeout=30_000)

    box.locator(".lk-choices label", has_text=right.text).click()
    click_when_idle(page, box.locator(".lk-check"))
    expect(box.locator(".lk-feedback.lk-correct")).to_contain_text(right.explanation,
                                                                    timeout=30_000)
    expect(box.locator(".lk-check")).to_be_disabled(timeout=30_000)
    total = sum(q.points for q in bank.questions)
    expect(page.locator(".lk-quiz .lk-score")).to_contain_text(f"Score: 1 / {total:g}",
                                                              timeout=30_000)

    # The flashcards under the quiz flip in the page too.
    card = page.locator(".lk-flashcards .lk-card")
    front = card.inner_text()
    click_when_idle(page, page.locator(".lk-flashcards .lk-flip"))
    expect(card).not_to_have_text(front, timeout=30_000)

    shot = ARTIFACTS / "browser" / "00_start_here_quiz.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(shot))

    # What the kernel saved: the second attempt, right, and the score.
    saved = json.loads(results.read_text(encoding="utf-8"))["quizzes"][bank.id]
    record = saved["questions"][question.id]
    assert (record["answer"], record["correct"], record["attempts"]) == (right.id, True, 2)
    assert (saved["score"], saved["max_score"]) == (1, total)
    assert not stderr_errors(page)
    assert not list((ROOT / "notebooks").rglob("quiz-results*.json")), "results in the course"
    assert (ROOT / NOTEBOOK).read_bytes() == committed, "the test changed the course notebook"
