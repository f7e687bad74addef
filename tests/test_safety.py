"""Issue 10: labkit never runs code it was not asked to run, and never writes where it was not asked.

- A static scan of labkit/, the notebooks and the benchmarks: no ``trust_remote_code``, no
  ``yaml.load`` without a safe loader, no ``eval``/``exec``, no pickle loads, ``torch.load``
  only with ``weights_only=True``, archives only unpacked with checks, network access only in
  the modules that download pinned files. The scanner is tested on code that breaks each rule.
- Files built to run code when read (a checkpoint, a feature cache, YAML banks, a glossary)
  are refused and run nothing: a marker file they would create stays absent. Each payload
  is first shown to work against the unsafe way of reading it, so the test can fail.
- Archives with ``../``, absolute paths and links that point outside write nothing outside.
- Every download is pinned: a checksum or a commit for each asset, https only.
"""

import ast
import io
import re
import tarfile
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import ROOT
from labkit.assets import REGISTRY, Dataset, DownloadError, TextModel, VisionWeights
from labkit.assets.registry import PipModel
from labkit.assets import store
from labkit.assets.store import download
from labkit.instructor.packs import PackError, unpack
from labkit.checkpoint import load_checkpoint
from labkit.features import extract_features, feature_cache_key
from labkit.quiz.bank import BankError, load_bank
from labkit.quiz.bank import load_glossary

ROOT = Path(__file__).resolve().parents[1]

# --- the static scan ----------------------------------------------------------------------------

NEVER = {  # dotted call name -> why it is never used
    "eval": "eval runs a string as code", "exec": "exec runs a string as code",
    "compile": "compile builds code from a string",
    "pickle.load": "a pickle can run code", "pickle.loads": "a pickle can run code",
    "pickle.Unpickler": "a pickle can run code", "dill.load": "a pickle can run code",
    "dill.loads": "a pickle can run code", "joblib.load": "a pickle can run code",
    "shelve.open": "a shelf is a pickle", "marshal.loads": "marshal loads code objects",
    "torch.hub.load": "torch.hub.load runs the repository's hubconf.py",
    "yaml.unsafe_load": "builds Python objects", "yaml.full_load": "builds Python objects",
    "yaml.unsafe_load_all": "builds Python objects", "yaml.full_load_all": "builds Python objects",
}
NETWORK = ("urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.request.build_opener",
           "requests.", "httpx.", "huggingface_hub.snapshot_download",
           "huggingface_hub.hf_hub_download", "torch.hub.load_state_dict_from_url",
           "torch.hub.download_url_to_file", "torchvision.datasets.utils.download")
# Modules that may touch the network: the asset store (which downloads pinned files and
# revisions) and `doctor` (HEAD requests, no download).
NETWORK_ALLOWED = {"labkit/assets/store.py", "labkit/instructor/doctor.py"}
# extractall without filter="data": only the zip branch of extract_archive, which refuses any
# member that resolves outside the target before extracting (tested below).
UNFILTERED_EXTRACT_ALLOWED = {("labkit/assets/store.py", "extract_archive")}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted origin, from the imports (``import numpy as np`` -> np: numpy)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0]: a.asname and a.name or
                      a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return "." + ".".join(reversed(parts))  # a method of some expression: x().extractall
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan(source: str, where: str) -> list[str]:
    """Every unsafe construct in ``source``, as 'where:line: what (why)'."""
    tree = ast.parse(source)
    aliases, found = _aliases(tree), []
    functions = {}  # call node -> the name of the function it is in
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions |= {id(n): function.name for n in ast.walk(function)}

    def report(node, what):
        found.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "trust_remote_code" and not (
                isinstance(node.value, ast.Constant) and node.value.value is False):
            report(node.value, "trust_remote_code (runs code from a model repository)")
        if isinstance(node, ast.Constant) and node.value == "trust_remote_code":
            report(node, "trust_remote_code (runs code from a model repository)")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name.removeprefix("builtins.") in NEVER:
            report(node, f"{name} ({NEVER[name.removeprefix('builtins.')]})")
        if name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            report(node, "torch.load without weights_only=True (a checkpoint can run code)")
        if name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or not _dotted(loader, aliases).endswith(("SafeLoader", "CSafeLoader")):
                report(node, f"{name} without SafeLoader (YAML tags can build Python objects)")
        if name == "numpy.load" and _is_true(_keyword(node, "allow_pickle")):
            report(node, "numpy.load with allow_pickle=True (a pickle can run code)")
        if name.endswith((".extractall", ".extract")) and not (
                isinstance(_keyword(node, "filter"), ast.Constant)
                and _keyword(node, "filter").value == "data") and \
                (where, functions.get(id(node))) not in UNFILTERED_EXTRACT_ALLOWED:
            report(node, f"{name} without filter='data' (members could land outside the folder)")
        if name.startswith(NETWORK) and where not in NETWORK_ALLOWED:
            report(node, f"{name} (network access outside labkit/assets and doctor)")
    return found


def notebook_code(path: Path) -> str:
    """A notebook's code cells as one module; IPython magics and shell lines become blank."""
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    lines = [("" if line.lstrip().startswith(("%", "!")) else line)
             for source in cells for line in (source + "\n").splitlines()]
    return "\n".join(lines)


def course_sources():
    for path in sorted([*(ROOT / "labkit").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        yield path.relative_to(ROOT).as_posix(), notebook_code(path)


def test_no_code_in_labkit_notebooks_or_benchmarks_can_run_what_it_reads():
    sources = list(course_sources())
    assert len(sources) > 40 and any(name.endswith(".ipynb") for name, _ in sources)
    found = [problem for name, source in sources for problem in scan(source, name)]
    assert found == []


BAD_CODE = '''
import pickle as pk, yaml, numpy as np, torch, tarfile
from torch import load
from transformers import AutoModel
from urllib.request import urlopen
eval("1 + 1")
exec(text)
pk.loads(data)
yaml.load(text)
yaml.load(text, Loader=yaml.FullLoader)
yaml.unsafe_load(text)
torch.load(path)
torch.load(path, weights_only=False)
load(path)
np.load(path, allow_pickle=True)
AutoModel.from_pretrained(name, trust_remote_code=True)
AutoModel.from_pretrained(name, **{"trust_remote_code": True})
tarfile.open(path).extractall(target)
torch.hub.load("someone/repo", "model")
urlopen("https://example.com/weights.pt")
'''
SAFE_CODE = '''
import yaml, torch, numpy as np, re
model.eval()
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
torch.load(path, map_location="cpu", weights_only=True)
np.load(path)
re.compile("x")
AutoModel.from_pretrained(name, trust_remote_code=False)
bundle.extractall(target, filter="data")
'''


def test_the_scan_finds_every_unsafe_construct_it_looks_for():
    found = scan(BAD_CODE, "labkit/somewhere.py")
    lines = sorted(int(problem.split(":")[1]) for problem in found)
    expected = list(range(6, 21))  # every line from eval(...) on, each once
    assert lines[:1] == [6] and sorted(set(lines)) == expected, found
    assert scan(SAFE_CODE, "labkit/somewhere.py") == []
    assert scan("urlopen = 1\nimport urllib.request\nurllib.request.urlopen(u)\n",
                "labkit/assets/store.py") == []


# --- files that would run code when read ----------------------------------------------------------

class Plant:
    """Unpickling this creates ``marker``: what a malicious file would do, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def planted_file(path: Path, marker: Path, content: dict) -> Path:
    torch.save({**content, "payload": Plant(marker)}, path)
    torch.load(path, weights_only=False).get("payload").close()  # unsafe loading runs it...
    assert marker.exists()
    marker.unlink()  # ...so the payload is real, and gone again before the safe load
    return path


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    model = nn.Linear(2, 2)
    marker = tmp_path / "ran"
    path = planted_file(tmp_path / "evil.pt", marker, {"format": 1, "model_class": "Linear",
                                                      "model": model.state_dict()})
    with pytest.raises(ValueError, match=r"evil.pt was refused: it holds a Python object "
                                         r"\(io.open\) that could run code when loaded.*Nothing "
                                         r"was loaded.*Fix:") as caught:
        load_checkpoint(path, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        scheduler=None, scaler=None)
    assert "weights_only=False" not in str(caught.value)  # never advise the unsafe way
    assert not marker.exists()


def test_a_feature_cache_that_would_run_code_is_set_aside_and_runs_nothing(tmp_path):
    backbone = nn.Flatten()
    loader = DataLoader(TensorDataset(torch.rand(6, 3), torch.tensor([0, 1] * 3)), batch_size=4)
    key = feature_cache_key(backbone, loader.dataset)
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "ran"
    planted = planted_file(cache / f"Flatten-{key[:16]}.pt", marker,
                           {"features": torch.zeros(6, 3), "labels": torch.zeros(6),
                            "key": key, "format": 1})
    with pytest.warns(UserWarning, match=r"corrupt or unreadable \(it holds a Python object "
                                         r"\(io.open\)") as caught:
        features, _ = extract_features(backbone, loader, "cpu", cache_dir=cache)
    assert "weights_only=False" not in str(caught[0].message)
    assert not marker.exists() and planted.with_name(planted.name + ".corrupt").exists()
    torch.testing.assert_close(features, loader.dataset.tensors[0])


YAML_PAYLOAD = "!!python/object/apply:builtins.open [{marker}, w]"


@pytest.mark.parametrize("loader, what, template", [
    (load_bank, "quiz bank", "id: demo\ntitle: {payload}\nquestions: []\n"),
    (load_glossary, "glossary", "terms:\n  - term: {payload}\n    definition: d\n")])
def test_yaml_data_files_are_read_safely_and_run_nothing(tmp_path, loader, what, template):
    marker = tmp_path / "ran"
    text = template.format(payload=YAML_PAYLOAD.format(marker=marker))
    yaml.unsafe_load(text)  # the payload is real...
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(BankError, match=rf"(?s)data.yaml: 1 problem.s. in this {what}:.*not valid "
                                        r"YAML: could not determine a constructor for the tag"):
        loader(path)  # ...and reading it the course's way builds nothing
    assert not marker.exists()


def test_a_bank_carries_checker_names_never_checker_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "bank.yaml"
    path.write_text("id: demo\nquestions:\n  - id: c\n    type: code\n    prompt: p\n"
                    f"    checker: \"__import__('pathlib').Path('{marker}').touch()\"\n")
    with pytest.raises(BankError) as caught:
        load_bank(path)
    assert [(p.question, p.field) for p in caught.value.problems] == [("'c'", "checker")]
    assert not marker.exists()


# --- archives ---------------------------------------------------------------------------------

def zip_with(path: Path, name: str) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("fine/ok.txt", b"ok")
        bundle.writestr(zipfile.ZipInfo(name), b"escaped")
    return path


def tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as bundle:
        for info in members:
            bundle.addfile(info, io.BytesIO(b"escaped") if info.isfile() else None)
    return path


def member(name: str, kind=tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    info.size = len(b"escaped") if kind == tarfile.REGTYPE else 0
    return info


def escaping_archives(tmp_path: Path) -> dict[str, Path]:
    outside = tmp_path / "outside.txt"
    return {
        "zip ../": zip_with(tmp_path / "dots.zip", "../outside.txt"),
        "zip absolute": zip_with(tmp_path / "absolute.zip", str(outside)),
        "tar ../": tar_with(tmp_path / "dots.tar", member("../outside.txt")),
        "tar absolute": tar_with(tmp_path / "absolute.tar", member(str(outside))),
        "tar symlink out": tar_with(tmp_path / "symlink.tar",
                                    member("link", tarfile.SYMTYPE, ".."),
                                    member("link/outside.txt")),
        "tar hard link out": tar_with(tmp_path / "hardlink.tar",
                                      member("copy", tarfile.LNKTYPE, "/etc/passwd")),
    }


def test_archives_that_point_outside_their_folder_write_nothing_outside(tmp_path):
    for what, archive in escaping_archives(tmp_path).items():
        target = tmp_path / f"target-{archive.name}"
        target.mkdir()
        if what == "tar absolute":  # tar's data filter strips the leading / : it lands inside
            store.extract_archive(archive, target)
            assert (target / str(tmp_path / "outside.txt").lstrip("/")).is_file()
        else:
            with pytest.raises(DownloadError, match=f"{archive.name} (was not unpacked|holds "
                                                    ".*points outside)"):
                store.extract_archive(archive, target)
        assert not (tmp_path / "outside.txt").exists(), what
        assert not (target / "copy").exists(), what
    fine = tmp_path / "fine"
    fine.mkdir()
    store.extract_archive(zip_with(tmp_path / "good.zip", "fine/also.txt"), fine)
    assert (fine / "fine" / "also.txt").read_bytes() == b"escaped"


def test_an_asset_pack_with_links_out_is_refused(tmp_path, monkeypatch):
    for variable, folder in (("TORCH_HOME", "torch"), ("HF_HOME", "hf"), ("LABKIT_DATA", "data")):
        monkeypatch.setenv(variable, str(tmp_path / folder))
    index = tarfile.TarInfo("labkit-pack.json")
    content = b'{"format": 1, "assets": {}}'
    index.size = len(content)
    path = tmp_path / "pack.tar"
    with tarfile.open(path, "w") as bundle:
        bundle.addfile(index, io.BytesIO(content))
        bundle.addfile(member("data/x/link", tarfile.SYMTYPE, "../../../.."))
        bundle.addfile(member("data/x/link/outside.txt"), io.BytesIO(b"escaped"))
    with pytest.raises(PackError, match="not unpacked"):
        unpack(path)
    assert not (tmp_path / "outside.txt").exists()


# --- downloads are pinned -----------------------------------------------------------------------

def test_every_download_is_pinned_to_a_checksum_or_a_commit():
    assert REGISTRY
    for asset in REGISTRY.values():
        if isinstance(asset, VisionWeights):
            assert not asset.weights.endswith("DEFAULT") and asset.source.startswith("https://")
            assert re.fullmatch(r"[0-9a-f]{8,}", asset.sha256_prefix), asset.name
        elif isinstance(asset, TextModel):
            assert re.fullmatch(r"[0-9a-f]{40}", asset.revision), asset.name  # a commit, not "main"
        elif isinstance(asset, PipModel):  # pip installs it: one version, its file's full sha256
            assert re.fullmatch(r"\d+(\.\d+)+", asset.version), asset.name
            assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256), asset.name
            assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in asset.unpacked_sha256.values())
            assert f'"{asset.requirement}"' in (ROOT / "pyproject.toml").read_text(), asset.name
        else:
            assert isinstance(asset, Dataset)
            assert asset.source.startswith("https://") and asset.size > 0, asset.name
            assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256), asset.name


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.zip", "/etc/passwd"])
def test_only_http_sources_are_downloaded(tmp_path, url):
    with pytest.raises(DownloadError, match="only http"):
        download(url, tmp_path / "x", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_pickle_is_not_how_results_or_caches_are_written():
    # The quiz results are JSON; checkpoints and caches are torch zip files of tensors and
    # plain containers (weights_only-loadable). No module imports pickle to save things.
    assert [p for p in (ROOT / "labkit").rglob("*.py")
            if re.search(r"^\s*(import|from)\s+(pickle|dill|cloudpickle|joblib|shelve)\b",
                         p.read_text(), re.M)] == []
