"""Where each asset lives in the caches, fetching and checking it (``python -m labkit assets``):
a download moves into place only once its sha256 matches; a pip model is checked at each load."""

import hashlib
import http.client
import importlib.metadata
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

from labkit.assets.registry import Asset, Dataset, PipModel, TextModel, VisionWeights
from labkit.config import course_data_dir, hf_hub_dir, torch_checkpoints_dir
from labkit.files import atomic_write, sha256_file

MANIFEST = ".labkit-manifest.json"
CONNECT_TIMEOUT = 5.0  # seconds: a machine without a network fails fast instead of hanging


class DownloadError(RuntimeError):
    """The file could not be fetched; nothing was left in the cache."""


class ChecksumMismatch(DownloadError):
    """The bytes are not the published file."""


class AssetMissing(RuntimeError):
    """An asset is neither here (checked) nor downloadable now; the message says how to fix it."""


def download(url: str, dest: Path, *, sha256: str, timeout: float = CONNECT_TIMEOUT,
             progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` if its sha256 starts with ``sha256`` (the whole or a prefix)."""
    from tqdm.auto import tqdm

    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"Refusing to download {url}: only http(s) sources are allowed.")
    digest = hashlib.sha256()

    def write(file) -> None:
        opener = urllib.request.build_opener()  # a new one reads the proxy settings of now
        with opener.open(url, timeout=timeout) as response, tqdm(
                total=response.length, unit="B", unit_scale=True, disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                file.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if not digest.hexdigest().startswith(sha256):
            raise ChecksumMismatch(
                f"Downloading {url} gave a file whose sha256 is {digest.hexdigest()}, not the "
                f"published {sha256}. It was discarded. Fix: try again; if it keeps happening "
                "the file on the server has changed, so tell the course maintainers.")

    try:
        return atomic_write(dest, write)  # a failed or wrong download is never renamed in
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            reason = f"no answer within {timeout:g} s"
        elif isinstance(exc, urllib.error.HTTPError):
            reason = f"the server answered HTTP {exc.code} {exc.reason}"
        raise DownloadError(f"Downloading {url} failed: {reason}.") from exc


def location(asset: Asset) -> Path:
    """The file or folder that holds ``asset`` in this machine's caches."""
    if isinstance(asset, VisionWeights):
        return torch_checkpoints_dir() / asset.filename
    if isinstance(asset, TextModel):
        return hf_hub_dir() / ("models--" + asset.repo_id.replace("/", "--"))
    if isinstance(asset, PipModel):
        found = next(importlib.metadata.distributions(name=asset.package), None)  # no import
        return Path(found.locate_file(asset.module) if found else "<not installed>") / asset.file
    return course_data_dir() / asset.folder


def _installed(asset: PipModel) -> str | None:
    return next((d.version for d in importlib.metadata.distributions(name=asset.package)), None)


def _pip_fix(asset: PipModel, again: str = "") -> str:
    return (f"Fix: pip install {again}'{asset.requirement}' in the course's environment "
            "(`make lab` and `make test` install it with the course).")


def _changed(folder: Path, files: dict[str, str]) -> list[str]:
    """The names in ``files`` (name -> sha256 or its start) missing under ``folder`` or changed."""
    return [name for name, digest in files.items()
            if not (folder / name).is_file() or not sha256_file(folder / name).startswith(digest)]


def pip_model_path(asset: PipModel) -> Path:
    """The checked weights file of a pip model, or the folder its archive is unpacked into."""
    if (installed := _installed(asset)) != asset.version:
        found = f"version {installed} is installed instead" if installed else "it is not installed"
        raise AssetMissing(f"'{asset.name}' comes with the pip package {asset.requirement}, "
                           f"and {found}. {_pip_fix(asset)}")
    file = location(asset)
    if (actual := sha256_file(file)) != asset.sha256:
        raise AssetMissing(
            f"{file} has sha256 {actual[:16]}..., not {asset.sha256[:16]}... as pinned for "
            f"'{asset.name}': the file was changed or damaged. "
            + _pip_fix(asset, "--force-reinstall "))
    if not asset.unpacked_sha256:
        return file
    folder = course_data_dir() / "models" / f"{asset.name}-{asset.version}"
    stamp = next(iter(asset.unpacked_sha256))  # the folder appears whole, so any file marks it
    publish(folder, lambda staging: extract_archive(file, staging), stamp)
    if bad := _changed(folder, asset.unpacked_sha256):  # every time: a later change is found
        raise AssetMissing(
            f"{folder / bad[0]} of '{asset.name}' has changed: its sha256 is not "
            f"{asset.unpacked_sha256[bad[0]][:16]}... as published. Fix: delete {folder} and "
            "load the model again.")
    return folder


def publish(folder: Path, make, stamp: str = MANIFEST) -> Path:
    """``make(staging)`` fills a folder with ``stamp`` in it (or the part it returns), renamed to
    ``folder`` unless that has ``stamp``: readers see none or a whole one; the first one stays."""
    if (folder / stamp).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        source = make(staging) or staging
        if not (folder / stamp).is_file():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(source, folder)
        except OSError:
            if not (folder / stamp).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def status(asset: Asset) -> str:
    """"present" (fetched and checked once, or installed) or "missing"."""
    path = location(asset)
    if isinstance(asset, PipModel):
        present = path.is_file() and _installed(asset) == asset.version
    elif isinstance(asset, TextModel):
        snapshot = path / "snapshots" / asset.revision
        present = (snapshot / "config.json").is_file() and any(
            (snapshot / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    else:
        present = (path if isinstance(asset, VisionWeights) else path / MANIFEST).is_file()
    return "present" if present else "missing"


def fetch(asset: Asset, *, timeout: float = CONNECT_TIMEOUT, progress: bool = True) -> Path:
    """Download ``asset`` unless it is present; returns where it is. Raises DownloadError."""
    where = location(asset)
    if status(asset) == "present":
        return where
    if isinstance(asset, PipModel):
        raise DownloadError(f"'{asset.name}' is installed by pip with the course, not "
                            f"downloaded here. {_pip_fix(asset)}")
    if isinstance(asset, VisionWeights):
        return download(asset.source, where, sha256=asset.sha256_prefix, timeout=timeout,
                        progress=progress)
    if isinstance(asset, Dataset):
        return publish(where, lambda staging: _fetch_dataset(asset, staging, timeout, progress))
    try:  # huggingface_hub retries for 24 s offline: one request of ours fails in seconds
        urllib.request.build_opener().open("https://huggingface.co", timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except OSError as exc:
        raise DownloadError(f"Cannot reach huggingface.co: {getattr(exc, 'reason', exc)}.") from exc
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(asset.repo_id, revision=asset.revision)
        weights = "model.safetensors" if "model.safetensors" in files else "pytorch_model.bin"
        snapshot_download(asset.repo_id, revision=asset.revision, cache_dir=hf_hub_dir(),
                          allow_patterns=["*.json", "vocab.txt", weights])
    except Exception as exc:  # huggingface_hub raises many types; the reason is what matters
        raise DownloadError(f"Downloading {asset.repo_id}@{asset.revision[:8]} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    return where


def _fetch_dataset(asset: Dataset, staging: Path, timeout: float, progress: bool) -> Path:
    archive = download(asset.source, staging / "archive", sha256=asset.sha256, timeout=timeout,
                       progress=progress)
    extract_archive(archive, staging)
    root = staging / asset.folder  # each archive holds the asset's folder: hymenoptera_data/...
    files = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}
    (root / MANIFEST).write_text(json.dumps({"asset": asset.name, "files": files}, sort_keys=True))
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


def verify(asset: Asset) -> tuple[bool, str]:
    """Re-check a present asset against its checksums: (ok, what was found)."""
    if status(asset) != "present":
        return False, "not present"
    path = location(asset)
    if isinstance(asset, PipModel):
        try:
            return True, (f"{asset.requirement}: sha256 {asset.sha256[:12]}... matches in full "
                          f"({pip_model_path(asset)})")
        except AssetMissing as exc:
            return False, str(exc)
    if isinstance(asset, TextModel):  # the hub names each large file's blob after its sha256
        path = path / "snapshots" / asset.revision
        blobs = {link.name: link.resolve().name for link in sorted(path.iterdir())}
        files = {name: blob for name, blob in blobs.items() if re.fullmatch(r"[0-9a-f]{64}", blob)}
    elif isinstance(asset, VisionWeights):  # torchvision publishes the start of the sha256
        path, files = path.parent, {path.name: asset.sha256_prefix}
    else:
        files = json.loads((path / MANIFEST).read_text())["files"]
    if bad := _changed(path, files):
        return False, f"{len(bad)} of {len(files)} changed: {bad[0]} does not match its sha256"
    return True, f"{len(files)} file(s) match their sha256"
