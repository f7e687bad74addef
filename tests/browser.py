"""A real Jupyter server and a real headless Chromium, for the browser tests.

The server gets JupyterLab's own test configuration (jupyterlab.galata: no token, the app
exposed to the page as ``window.jupyterapp``) on a free port, and a throwaway settings folder
so a learner's settings are neither used nor touched. The quiz saves its results to the file
the caller names (LABKIT_QUIZ_RESULTS, set for the server and so for its kernels), never into
the course folder or the home folder. Chromium is the system's (CHROMIUM, /usr/bin/chromium by
default): Playwright's own browser download is not used.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def require_chromium():
    """Skip the calling test module without Chromium or Playwright; fail in CI instead."""
    if not Path(CHROMIUM).is_file():
        reason = (f"no Chromium at {CHROMIUM}. Fix: install it (Debian/Ubuntu: apt-get install "
                  "chromium) or set CHROMIUM=/path/to/chromium")
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the browser test, but there is {reason}")
        pytest.skip(reason, allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


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


@contextlib.contextmanager
def jupyter_server(command: list[str], *, root: Path, work: Path, results: Path, cwd: Path):
    """Run ``command`` (``make lab``, ``jupyter lab``, ``jupyter notebook``) serving ``root``
    with the test configuration; yield its URL. ``work`` holds config, settings and log."""
    port = free_port()
    config = work / "jupyter_server_config.py"
    config.write_text(
        "from jupyterlab.galata import configure_jupyter_server\n"
        "configure_jupyter_server(c)\n"
        "c.JupyterNotebookApp.expose_app_in_browser = True\n"  # Notebook 7, where installed
        f"c.ServerApp.port = {port}\n"
        f"c.ServerApp.root_dir = {str(root)!r}\n"
        "c.ServerApp.allow_root = True\n"  # CI runs as root in a container
    )
    write_settings(work / "settings")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
           "LABKIT_QUIZ_RESULTS": str(results)}
    log_path = work / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*command, f"--config={config}"] if command[0] != "make"
                                  else [*command, f"LAB_ARGS=--config={config}"],
                                  cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_server(url, server, log_path)
            yield url
        finally:
            stop(server)


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
            pytest.fail(f"the server exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the server did not answer within {seconds} s:\n{log_path.read_text()}")


@contextlib.contextmanager
def chromium():
    """A headless Chromium; ``browser.new_page(viewport=...)`` opens a page in it."""
    api = require_chromium()
    with api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Runs in the page: the notebook panel shown, through the exposed app (JupyterLab and
# Notebook 7 alike: both are JupyterFrontEnd applications with a shell).
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
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds} s waiting for {what}; last state: {state}")


def open_and_run(page, url, seconds=300):
    """Open ``url`` (a notebook), wait for its kernel, run every cell; return the state."""
    page.goto(url, timeout=120_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell",
                           timeout=120_000)
    wait_until(page, lambda s: s["kernel"] == "idle", 120, "an idle kernel")
    # Run All is dropped if sent before the kernel is idle, hence the wait above.
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return wait_until(page, lambda s: s["kernel"] == "idle" and all(s["counts"]), seconds,
                      "every code cell to run")


def stderr_errors(page):
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]


def click_when_idle(page, locator):
    # Widget callbacks run in the kernel only between cells: click on an idle kernel.
    wait_until(page, lambda s: s["kernel"] == "idle", 60, "an idle kernel")
    locator.click()
