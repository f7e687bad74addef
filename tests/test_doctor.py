"""labkit.doctor: what a learner sees for a good setup and for each kind of broken one."""

import os
import subprocess
import sys
from pathlib import Path

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


def test_a_cache_folder_under_a_file_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    finding = only(diagnose.check_caches({"weights (TORCH_HOME)": tmp_path / "file" / "torch"}))
    assert finding.status == FAIL and "cannot be written" in finding.detail
    assert "folder you can write to" in finding.fix


def test_cache_folders_follow_the_standard_variables(monkeypatch, tmp_path):
    from labkit.config import cache_dirs

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "data"))
    assert sorted(cache_dirs().values()) == [tmp_path / "data", tmp_path / "hf", tmp_path / "torch" / "hub"]


# --- the whole report --------------------------------------------------------------------

def test_doctor_reports_every_part_as_text_and_html():
    report = labkit.doctor()
    topics = [f.topic for f in report.findings]
    for expected in ("Python", "torch", "torchvision", "transformers", "ipywidgets",
                     "torch + torchvision", "device"):
        assert expected in topics
    assert any("TORCH_HOME" in t for t in topics) and any("HF_HOME" in t for t in topics)
    assert report.ok
    text = str(report)
    assert text.startswith("labkit doctor") and text.splitlines()[-1] == report.summary()
    assert "class='lk-doctor'" in report._repr_html_()
    for problem in report.problems:
        assert problem.fix and f"fix: {problem.fix}" in text


def run_cli(*args, env_extra=None):
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True,
                          text=True, env={**os.environ, **(env_extra or {})}, timeout=60, cwd=ROOT)


def test_cli_doctor_exits_non_zero_when_something_blocks_the_lessons(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    done = run_cli("doctor", env_extra={"LABKIT_DATA": str(tmp_path / "file" / "data")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[FAIL] course datasets (LABKIT_DATA)" in done.stdout
    assert "fix: point the variable in brackets at a folder you can write to" in done.stdout


def test_cli_without_a_command_prints_usage():
    done = run_cli()
    assert done.returncode == 2 and "doctor" in done.stderr
