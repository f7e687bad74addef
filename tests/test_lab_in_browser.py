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
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ARTIFACTS, ROOT

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = "notebooks/00_start_here.ipynb"

if not Path(CHROMIUM).is_file():
    reason = (f"no Chromium at {CHROMIUM}. Fix: install it (Debian/Ubuntu: apt-get install chromium) "
              "or set CHROMIUM=/path/to/chromium")
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must run the browser test, but there is {reason}")
    pytest.skip(reason, allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")
sync_playwright, expect = playwright_api.sync_playwright, playwright_api.expect


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(folder: Path):
    """Settings for a page driven by a test rather than a person.

    No "Select Kernel" dialog and no news pop-up covering the notebook; every cell drawn,
    not only those on screen; and no autosave, which would write outputs into the course.
    """
    settings = {
        "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True,
                                                   "windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }
    for name, values in settings.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(url, results file) of a JupyterLab started by `make lab`."""
    tmp_path = tmp_path_factory.mktemp("lab")
    results = tmp_path / "quiz-results.json"
    port = free_port()
    config = tmp_path / "jupyter_server_config.py"
    config.write_text(
        "from jupyterlab.galata import configure_jupyter_server\n"
        "configure_jupyter_server(c)\n"
        f"c.ServerApp.port = {port}\n"
        f"c.ServerApp.root_dir = {str(ROOT)!r}\n"
        "c.ServerApp.allow_root = True\n"  # CI runs as root in a container
    )
    write_settings(tmp_path / "settings")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "LABKIT_QUIZ_RESULTS": str(results)}
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(["make", "lab", f"LAB_ARGS=--config={config}"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server, tmp_path / "lab.log")
        yield url, results
    finally:
        stop(server)
        log.close()


def stop(server):
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)  # make and the jupyter process it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def wait_for_server(url, server, log_path, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"make lab exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {seconds} s:\n{log_path.read_text()}")


# Runs in the page: the notebook panel that JupyterLab shows, through the exposed app.
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) return null;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
    return {
        path: panel.context.path,
        kernel: kernel ? kernel.status : null,
        counts: cells.map(cell => cell.model.executionCount),
    };
}"""


def wait_until(page, predicate, seconds, what):
    deadline = time.monotonic() + seconds
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE)
        if state and predicate(state):
            return state
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds} s waiting for {what}; last state: {state}")


def stderr_errors(page):
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]


@pytest.fixture(scope="module")
def course_page(lab):
    """The start notebook open in Chromium, every cell run once."""
    url, _ = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            # ?reset drops tabs restored from an earlier session.
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?reset", timeout=120_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
            state = wait_until(page, lambda s: s["kernel"] == "idle", 120, "an idle kernel")
            assert state["path"] == NOTEBOOK
            # Run All is dropped if sent before the kernel is idle, hence the wait above.
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            wait_until(page, lambda s: s["kernel"] == "idle" and all(s["counts"]), 300,
                       "every code cell to run")
            yield page
        finally:
            browser.close()


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
    for topic in ("torch + torchvision", "widget frontend", "device", "Hugging Face Hub"):
        assert topic in text
    # The page's own kernel reports the frontend that renders this very page.
    assert "jupyterlab-manager 5." in text
    assert not tracebacks, tracebacks
    assert (ROOT / NOTEBOOK).read_bytes() == committed, "the test changed the course notebook"


def click_when_idle(page, locator):
    # Widget callbacks run in the kernel only between cells: click on an idle kernel.
    wait_until(page, lambda s: s["kernel"] == "idle", 60, "an idle kernel")
    locator.click()


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
