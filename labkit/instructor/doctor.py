"""``labkit.doctor()`` (lesson 00, and ``python -m labkit doctor``): is this machine ready for
the course? Each check returns findings, each not "ok" with its fix; given a state instead of
the live one, a check shows what a broken setup looks like (the tests)."""

import html
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from labkit.config import cache_dirs

OK, WARN, FAIL = "ok", "warn", "fail"
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

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status != OK]

    @property
    def ok(self) -> bool:
        """False when something would stop a lesson (warnings do not)."""
        return all(f.status != FAIL for f in self.findings)

    def summary(self) -> str:
        fails = sum(f.status == FAIL for f in self.findings)
        return (f"{fails} problem(s) and {len(self.problems) - fails} warning(s)." if self.problems
                else f"All {len(self.findings)} checks passed.")

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
    except metadata.PackageNotFoundError:
        return None


def check_packages(versions: dict[str, str | None] | None = None,
                   ranges: dict[str, str] | None = None) -> list[Finding]:
    versions = {name: _version(name) for name in CHECKED_PACKAGES} if versions is None else versions
    ranges = _required_ranges() if ranges is None else ranges
    findings = []
    for name, found in versions.items():
        # The tested range as people write it, lower bound first: ">=2.6,<2.16".
        tested = ",".join(sorted(map(str, SpecifierSet(ranges.get(name, ""))), reverse=True))
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
        if not (existing.is_dir() and os.access(existing, os.W_OK)):
            finding = (FAIL, f"{detail} cannot be written.",
                       "point the variable in brackets at a folder you can write to")
        elif free_gb < min_free_gb:
            finding = (WARN, f"{detail}: less than {min_free_gb:.0f} GB free.",
                       "free disk space, or point the variable in brackets at a larger disk")
        else:
            finding = OK, detail, ""
        findings.append(Finding(topic, *finding))
    return findings


def doctor() -> Report:
    """Check the setup; in a notebook the report shows itself. Lesson 00."""
    pair = check_torch_pair()
    findings = check_python() + check_packages() + pair
    if pair[0].status == OK:  # these import torch and torchvision
        findings += check_device() + check_caches()
    return Report(findings)
