"""``labkit.doctor()`` (lesson 00, and ``python -m labkit doctor``): is this machine ready for
the course? Each check returns findings, a fix with each one that is not "ok". A check reads
the live state unless given one, which is how the tests show a broken setup.
"""

import html
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from labkit.config import OFFLINE_ENV, SMOKE_TEST_ENV, STANDIN_ENV, cache_dirs, env_flag

OK, WARN, FAIL = "ok", "warn", "fail"
# The model hubs the lessons download from; any HTTP answer at all means "reachable".
HUBS = {"Hugging Face Hub": "https://huggingface.co",
        "PyTorch weights": "https://download.pytorch.org"}
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
        counts = (f"{fails} problem(s) and {len(self.problems) - fails} warning(s)"
                  if self.problems else f"All {len(self.findings)} checks passed")
        return f"{counts} ({self.seconds:.1f} s)."

    def __str__(self) -> str:
        width = max(len(f.topic) for f in self.findings)
        lines = ["labkit doctor"]
        for f in self.findings:
            lines.append(f"  [{f.status.upper():4}] {f.topic:<{width}}  {f.detail}")
            lines += [f"  {'':6} {'':<{width}}  fix: {f.fix}"] if f.fix else []
        return "\n".join(lines + [self.summary()])

    def _repr_html_(self) -> str:  # how a notebook shows the report
        return f"<pre class='lk-doctor'>{html.escape(str(self))}</pre>"


def check_python(version_info: tuple[int, ...] = tuple(sys.version_info)) -> list[Finding]:
    shown = ".".join(map(str, version_info[:3]))
    if tuple(version_info[:2]) >= (3, 10):
        return [Finding("Python", OK, shown)]
    return [Finding("Python", FAIL, f"{shown} is too old; the course needs 3.10 or newer.",
                    "create the environment with Python 3.10+ (make lab does this with python3)")]


def _required_ranges() -> dict[str, str]:
    """The tested version ranges, from labkit's own metadata (pyproject.toml)."""
    try:
        requirements = map(Requirement, metadata.requires("labkit") or [])
    except metadata.PackageNotFoundError:  # imported from a folder, never pip-installed
        return {}
    return {r.name.lower(): str(r.specifier) for r in requirements if r.marker is None}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # not installed
        return None


def _tested(package: str, ranges: dict[str, str]) -> str:
    """The package's tested range as people write it, lower bound first: ``>=2.6,<2.16``."""
    return ",".join(sorted(map(str, SpecifierSet(ranges.get(package, ""))), reverse=True))


def check_packages(versions: dict[str, str | None] | None = None,
                   ranges: dict[str, str] | None = None) -> list[Finding]:
    versions = {name: _version(name) for name in CHECKED_PACKAGES} if versions is None else versions
    ranges = _required_ranges() if ranges is None else ranges
    findings = []
    for name, found in versions.items():
        tested = _tested(name, ranges)
        spec, pin = SpecifierSet(tested), f'"{name}{tested}"'
        if found is None:  # without labkit's metadata there are no ranges: install the course
            finding = FAIL, "not installed.", f"pip install {pin}" if ranges else INSTALL_FIX
        elif spec.contains(found, prereleases=True):
            finding = OK, found, ""
        elif any(s.operator[0] == ">" and not s.contains(found, prereleases=True) for s in spec):
            finding = (FAIL, f"{found} is older than the course supports ({tested}).",
                       f"pip install --upgrade {pin}")
        else:
            finding = (WARN, f"{found} is newer than the tested range {tested}; lessons may "
                             "show warnings or break.", f"pip install {pin}")
        findings.append(Finding(name, *finding))
    return findings


def check_torch_pair() -> list[Finding]:
    """torchvision's compiled operators only load against the torch it was built for."""
    try:
        import torch
        import torchvision.ops

        torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
    except Exception as error:  # a missing package or a mismatch, as several different errors
        return [Finding("torch + torchvision", FAIL, f"torchvision cannot run with this torch "
                        f"({type(error).__name__}: {error}).", 'pip install --force-reinstall '
                        '"torch" "torchvision" (from PyPI, together)')]
    return [Finding("torch + torchvision", OK, "a working pair")]


def check_device(device=None) -> list[Finding]:
    from labkit.device import describe_device, get_device

    device = get_device(verbose=False) if device is None else device
    if device.type != "cpu":
        return [Finding("device", OK, describe_device(device))]
    return [Finding("device", WARN, f"no GPU found, lessons will run on the CPU: "
                    f"{describe_device(device)}. Smoke-size runs take seconds, full-size labs "
                    "much longer.", "use a CUDA or Apple GPU for full-size labs, or keep "
                    "SMOKE_TEST=True")]


def check_caches(folders: dict[str, Path] | None = None,
                 min_free_gb: float = 5.0) -> list[Finding]:
    findings = []
    for topic, path in (cache_dirs() if folders is None else folders).items():
        existing = next(p for p in [path, *path.parents] if p.exists())
        free_gb = shutil.disk_usage(existing).free / 1e9
        detail = f"{path} ({free_gb:.1f} GB free)"
        if not os.access(existing, os.W_OK):
            finding = (FAIL, f"{detail} cannot be written.",
                       "point the variable in brackets at a folder you can write to")
        elif free_gb < min_free_gb:
            finding = (WARN, f"{detail}: less than {min_free_gb:.0f} GB free.",
                       "free disk space, or point the variable in brackets at a larger disk")
        else:
            finding = OK, detail, ""
        findings.append(Finding(topic, *finding))
    return findings


def check_widgets(labextension_dirs: list[str] | None = None,
                  ipywidgets_version: str | None = None) -> list[Finding]:
    """JupyterLab's widget extension, of the generation that renders this ipywidgets."""
    if labextension_dirs is None:
        from jupyter_core.paths import jupyter_path  # installed with JupyterLab

        labextension_dirs = jupyter_path("labextensions")
    ipywidgets_version = ipywidgets_version or _version("ipywidgets")
    packages = [Path(folder, "@jupyter-widgets", "jupyterlab-manager", "package.json")
                for folder in labextension_dirs]
    frontend = next((json.loads(p.read_text())["version"] for p in packages if p.is_file()), None)
    fix = (f'pip install "ipywidgets{_tested("ipywidgets", _required_ranges())}" in the '
           "environment that runs JupyterLab, then reload the page")
    if frontend is None:
        return [Finding("widget frontend", FAIL, "JupyterLab's widget extension is not "
                        "installed: quizzes would show as plain text such as "
                        "'VBox(children=...)'.", fix)]
    # ipywidgets 7 is rendered by the extension's 3.x, ipywidgets 8 by its 5.x.
    expected = {7: 3, 8: 5}.get(Version(ipywidgets_version).major) if ipywidgets_version else None
    if expected is not None and Version(frontend).major != expected:
        return [Finding("widget frontend", FAIL, f"extension {frontend} cannot render ipywidgets "
                        f"{ipywidgets_version} (it needs extension {expected}.x).", fix)]
    return [Finding("widget frontend", OK, f"jupyterlab-manager {frontend}")]


def check_hubs(hubs: dict[str, str] | None = None, timeout: float = 3.0,
               offline: bool = False) -> list[Finding]:
    """Ask every hub at once; what has not answered by the deadline is unreachable (enforced
    here, because name lookups and some proxies ignore the socket timeout)."""
    hubs = HUBS if hubs is None else hubs
    if offline:
        return [Finding(name, OK, f"not checked: offline mode is on ({OFFLINE_ENV}=1)")
                for name in hubs]
    answers: dict[str, str] = {}  # url -> "" when it answered (any HTTP status), else why not

    def ask(url: str) -> None:
        try:
            urlopen(Request(url, method="HEAD"), timeout=timeout).close()
            answers[url] = ""
        except HTTPError:
            answers[url] = ""
        except Exception as error:
            reason = getattr(error, "reason", error)
            answers[url] = f"{type(reason).__name__}: {reason}"

    threads = [threading.Thread(target=ask, args=(url,), daemon=True) for url in hubs.values()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    fix = ("connect to the internet, or copy a filled cache folder (see the cache rows) from a "
           f"connected machine and set {OFFLINE_ENV}=1")
    late = f"no answer within {timeout:g} s"
    return [Finding(name, OK, f"{url} answers") if answers.get(url) == "" else
            Finding(name, WARN, f"{url} is unreachable ({answers.get(url) or late}); downloads "
                                "of weights and data will fail.", fix)
            for name, url in hubs.items()]


def check_modes() -> list[Finding]:
    findings = []
    for name, meaning in ((SMOKE_TEST_ENV, "tiny sizes"), (OFFLINE_ENV, "no downloads"),
                          (STANDIN_ENV, "random weights instead of pre-trained ones")):
        try:
            state = "on" if env_flag(name) else "off"
            findings.append(Finding(name, OK, f"{state} ({meaning} when on)"))
        except ValueError:
            findings.append(Finding(name, FAIL, f"{name}={os.environ[name]!r} is neither on nor "
                                    "off.", f"set {name}=1 or {name}=0, or unset it"))
    return findings


def doctor(*, timeout: float = 3.0, offline: bool | None = None) -> Report:
    """Check the setup; in a notebook the report shows itself. Lesson 00.

    ``timeout``: seconds to wait for the model hubs; ``offline``: skip them (None: the mode)."""
    start = time.monotonic()
    try:
        offline = env_flag(OFFLINE_ENV) if offline is None else offline
    except ValueError:  # check_modes reports it
        offline = False
    pair = check_torch_pair()
    findings = check_python() + check_packages() + pair
    if pair[0].status == OK:  # these import torch and torchvision
        findings += check_device() + check_caches()
    findings += check_widgets() + check_modes() + check_hubs(timeout=timeout, offline=offline)
    return Report(findings, seconds=time.monotonic() - start)
