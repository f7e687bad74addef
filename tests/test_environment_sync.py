"""environment.yml (conda) and pyproject.toml (pip) name the same packages and ranges."""

import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells some packages differently from PyPI.
CONDA_TO_PYPI = {"pytorch": "torch"}


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {Requirement(line).name.lower(): Requirement(line).specifier for line in lines}


def conda_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip section: packages only PyPI has, and labkit itself
            for line in entry["pip"]:
                if not line.startswith("-"):
                    found[Requirement(line).name.lower()] = Requirement(line).specifier
            continue
        name, _, spec = entry.partition(" ")
        found[CONDA_TO_PYPI.get(name, name).lower()] = SpecifierSet(spec.replace(" ", ""))
    return found


def test_conda_and_pip_name_the_same_packages_and_ranges():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert conda.pop("python") == SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    conda.pop("pip")
    assert sorted(conda) == sorted(pip), "a package is in one file but not the other"
    drift = {name: (str(pip[name]), str(conda[name])) for name in pip if pip[name] != conda[name]}
    assert not drift, f"ranges differ (pyproject, environment.yml): {drift}"


def test_every_range_has_an_upper_and_a_lower_bound():
    for name, spec in pyproject_requirements().items():
        operators = {s.operator for s in spec}
        assert operators & {">=", ">", "~=", "=="}, f"{name} has no lower bound"
        assert operators & {"<", "<=", "~=", "=="}, f"{name} has no upper bound"


def test_environment_installs_labkit_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict))
    assert "--editable ." in pip_section
