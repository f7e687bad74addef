"""labkit.doctor: what a learner sees for a good setup and for each kind of broken one."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from packaging.specifiers import SpecifierSet

import labkit
from labkit.instructor import doctor as diagnose
from labkit.instructor.doctor import FAIL, OK, WARN

ROOT = Path(__file__).resolve().parents[1]


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


# --- Python and packages -----------------------------------------------------------------

def test_old_python_fails_with_the_fix():
    finding = only(diagnose.check_python((3, 9, 18)))
    assert finding.status == FAIL and "3.9.18" in finding.detail and "3.10" in finding.fix
    assert only(diagnose.check_python((3, 12, 1))).status == OK


def test_ranges_come_from_labkits_own_metadata():
    ranges = diagnose._required_ranges()
    assert set(diagnose.CHECKED_PACKAGES) <= set(ranges)
    assert "pytest" not in ranges  # test tools are not the learner's problem


def test_installed_packages_are_in_range():
    assert all(f.status == OK for f in diagnose.check_packages()), diagnose.check_packages()


def test_old_torch_fails_and_the_fix_names_the_supported_range():
    ranges = diagnose._required_ranges()
    findings = diagnose.check_packages({"torch": "1.13.1"})
    finding = only(findings)
    assert finding.status == FAIL
    assert "1.13.1 is older than the course supports" in finding.detail
    low, high = sorted(str(s) for s in SpecifierSet(ranges["torch"]))[::-1]  # ">=…", "<…"
    assert finding.fix == f'pip install --upgrade "torch{low},{high}"'


def test_missing_and_too_new_packages():
    missing = only(diagnose.check_packages({"transformers": None}))
    assert missing.status == FAIL and missing.fix.startswith('pip install "transformers>=')
    newer = only(diagnose.check_packages({"ipywidgets": "99.0"}))
    assert newer.status == WARN and "newer than the tested range" in newer.detail


def test_without_labkits_metadata_the_fix_is_to_install_the_course():
    finding = only(diagnose.check_packages({"torch": None}, ranges={}))
    assert finding.status == FAIL and finding.fix == diagnose.INSTALL_FIX


def test_the_installed_torch_and_torchvision_work_together():
    assert only(diagnose.check_torch_pair()).status == OK


# --- device and caches -------------------------------------------------------------------

def test_no_gpu_says_the_cpu_is_used_and_what_that_means():
    finding = only(diagnose.check_device(torch.device("cpu")))
    assert finding.status == WARN
    assert "lessons will run on the CPU" in finding.detail and "full-size labs" in finding.detail
    assert "SMOKE_TEST" in finding.fix


def test_cache_folders_report_free_disk(tmp_path):
    folders = {"weights (TORCH_HOME)": tmp_path / "not" / "made" / "yet"}
    finding = only(diagnose.check_caches(folders))
    assert finding.status == OK and "GB free" in finding.detail
    low = only(diagnose.check_caches(folders, min_free_gb=1e9))
    assert low.status == WARN and "larger disk" in low.fix


def test_cache_folders_follow_the_standard_variables(monkeypatch, tmp_path):
    from labkit.config import cache_dirs

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "data"))
    assert sorted(cache_dirs().values()) == [tmp_path / "data", tmp_path / "hf", tmp_path / "torch" / "hub"]


# --- widgets -----------------------------------------------------------------------------

def test_the_widget_frontend_of_this_environment_is_found():
    finding = only(diagnose.check_widgets())
    assert finding.status == OK and "jupyterlab-manager 5." in finding.detail


def test_missing_widget_frontend_fails_with_the_fix(tmp_path):
    finding = only(diagnose.check_widgets([str(tmp_path)], ipywidgets_version="8.1.9"))
    assert finding.status == FAIL
    assert "widget extension is not installed" in finding.detail
    assert finding.fix.startswith('pip install "ipywidgets')


def test_widget_frontend_of_the_wrong_generation_fails(tmp_path):
    package = tmp_path / "@jupyter-widgets" / "jupyterlab-manager" / "package.json"
    package.parent.mkdir(parents=True)
    package.write_text(json.dumps({"name": "@jupyter-widgets/jupyterlab-manager", "version": "3.1.0"}))
    finding = only(diagnose.check_widgets([str(tmp_path)], ipywidgets_version="8.1.9"))
    assert finding.status == FAIL and "needs extension 5.x" in finding.detail


# --- modes -------------------------------------------------------------------------------

def test_a_switch_that_is_neither_on_nor_off_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "maybe")
    finding = next(f for f in diagnose.check_modes() if f.topic == "LABKIT_OFFLINE")
    assert finding.status == FAIL and "'maybe'" in finding.detail
    assert finding.fix == "set LABKIT_OFFLINE=1 or LABKIT_OFFLINE=0, or unset it"


# --- hubs: real local servers that answer, refuse, or never answer ------------------------

class NotFound(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_hub_that_answers_even_with_an_error_is_reachable(answering_url):
    assert only(diagnose.check_hubs({"hub": answering_url}, timeout=2)).status == OK


def test_refused_and_silent_hubs_are_unreachable_within_the_timeout(closed_port, silent_port):
    hubs = {"refused": f"http://127.0.0.1:{closed_port}", "silent": f"http://127.0.0.1:{silent_port}"}
    start = time.monotonic()
    refused, silent = diagnose.check_hubs(hubs, timeout=1.0)
    assert time.monotonic() - start < 2.0
    assert refused.status == silent.status == WARN
    assert "unreachable" in refused.detail and "Connection" in refused.detail
    assert "unreachable" in silent.detail
    assert "LABKIT_OFFLINE=1" in silent.fix


def test_offline_mode_skips_the_hubs(silent_port):
    finding = only(diagnose.check_hubs({"hub": f"http://127.0.0.1:{silent_port}"}, offline=True))
    assert finding.status == OK and "offline mode" in finding.detail


# --- the whole report --------------------------------------------------------------------

def test_doctor_reports_every_part_as_text_and_html():
    report = labkit.doctor(timeout=1.0, offline=True)
    topics = [f.topic for f in report.findings]
    for expected in ("Python", "torch", "torchvision", "transformers", "ipywidgets",
                     "torch + torchvision", "device", "widget frontend", "Hugging Face Hub"):
        assert expected in topics
    assert any("TORCH_HOME" in t for t in topics) and any("HF_HOME" in t for t in topics)
    assert report.ok
    text = str(report)
    assert text.startswith("labkit doctor") and text.splitlines()[-1] == report.summary()
    assert "class='lk-doctor'" in report._repr_html_()
    for problem in report.problems:
        assert problem.fix and f"fix: {problem.fix}" in text


def run_cli(*args, env_extra=None, timeout=30):
    env = {**os.environ, "NO_PROXY": "", "no_proxy": "", **(env_extra or {})}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)
    return done, time.monotonic() - start


def test_cli_doctor_without_network_finishes_fast_and_names_the_fix(silent_port):
    # Every request goes to a proxy that never answers: the worst kind of "no network".
    proxy = f"http://127.0.0.1:{silent_port}"
    done, seconds = run_cli("doctor", env_extra={"HTTPS_PROXY": proxy, "https_proxy": proxy,
                                                 "HTTP_PROXY": proxy, "http_proxy": proxy,
                                                 "LABKIT_OFFLINE": "0"})
    # The same report without the hub checks, under the same load, is the baseline: what the
    # network may add is its 3-second timeout (the hubs are probed in parallel), plus slack.
    _, baseline = run_cli("doctor", env_extra={"LABKIT_OFFLINE": "1"})
    assert seconds - baseline < 6, f"doctor took {seconds:.1f} s, {baseline:.1f} s offline"
    assert done.returncode == 0, done.stdout + done.stderr  # unreachable hubs are a warning
    assert "https://huggingface.co is unreachable" in done.stdout
    assert "fix: connect to the internet" in done.stdout


def test_cli_doctor_exits_non_zero_when_something_blocks_the_lessons():
    done, _ = run_cli("doctor", "--timeout", "1", env_extra={"LABKIT_OFFLINE": "maybe"})
    assert done.returncode == 1
    assert "[FAIL] LABKIT_OFFLINE" in done.stdout


def test_cli_without_a_command_prints_usage():
    done, _ = run_cli()
    assert done.returncode == 2 and "doctor" in done.stderr
