"""One archive of everything fetched, for classrooms without a network.

An instructor runs ``python -m labkit assets fetch`` and ``pack course-assets.tar`` on a
connected machine, copies the file to each lab machine (USB stick, shared drive) and runs
``unpack course-assets.tar`` there. The archive mirrors the three caches::

    labkit-pack.json                  what is inside
    torch/checkpoints/...             -> $TORCH_HOME/hub/checkpoints
    huggingface/hub/models--.../...   -> $HF_HOME/hub   (the hub's own layout, links included)
    data/<folder>/...                 -> $LABKIT_DATA

Unpacking never writes outside those folders: tar's "data" filter refuses absolute paths,
``..`` and links that point outside, and only the three sections above are accepted.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from labkit.assets import store
from labkit.assets.registry import REGISTRY, Asset, PipModel, TextModel, VisionWeights, get_asset
from labkit.config import course_data_dir, hf_hub_dir, torch_checkpoints_dir

__all__ = ["pack", "unpack", "PackError"]

INDEX = "labkit-pack.json"


class PackError(RuntimeError):
    pass


def _section(asset: Asset) -> str:
    if isinstance(asset, VisionWeights):
        return f"torch/checkpoints/{asset.filename}"
    if isinstance(asset, TextModel):
        return f"huggingface/hub/{store.location(asset).name}"
    return f"data/{asset.folder}"


def _destinations() -> dict[str, Path]:
    return {"torch/checkpoints": torch_checkpoints_dir(), "huggingface/hub": hf_hub_dir(),
            "data": course_data_dir()}


def pack(file: Path, names: list[str] | None = None, *,
         registry: dict[str, Asset] | None = None) -> list[str]:
    """Write every present asset (or the named ones, which must be present) into ``file``."""
    registry = REGISTRY if registry is None else registry
    if names:
        assets = [get_asset(name, registry) for name in names]
        installed = [a.name for a in assets if isinstance(a, PipModel)]
        if installed:
            raise PackError(f"{', '.join(installed)} come(s) with the course's pip packages, so "
                            "every machine that installs the course has them: nothing to pack. "
                            "Fix: leave them out of the list.")
        missing = [a.name for a in assets if store.status(a) != "present"]
        if missing:
            raise PackError(f"Not fetched, so they cannot be packed: {', '.join(missing)}. "
                            f"Fix: python -m labkit assets fetch {' '.join(missing)}")
    else:
        assets = [a for a in registry.values()
                  if not isinstance(a, PipModel) and store.status(a) == "present"]
    if not assets:
        raise PackError("Nothing is fetched yet, so there is nothing to pack. "
                        "Fix: python -m labkit assets fetch")
    index = {"format": 1, "assets": {a.name: _section(a) for a in assets}}
    file = Path(file)
    partial = file.with_name(file.name + ".part")
    mode = "w:gz" if file.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(partial, mode) as archive:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / INDEX).write_text(json.dumps(index, indent=1))
            archive.add(Path(folder) / INDEX, arcname=INDEX)
        for asset in assets:
            archive.add(store.location(asset), arcname=_section(asset))  # links stay links
    partial.replace(file)
    return [a.name for a in assets]


def unpack(file: Path, *, registry: dict[str, Asset] | None = None) -> dict[str, tuple[bool, str]]:
    """Unpack ``file`` into this machine's caches; returns each asset's verify() result."""
    registry = REGISTRY if registry is None else registry
    destinations = _destinations()
    with tarfile.open(file) as archive:
        names = archive.getnames()
        if INDEX not in names:
            raise PackError(f"{file} is not a labkit asset pack (it has no {INDEX}). "
                            "Fix: make one with `python -m labkit assets pack FILE`.")
        stray = [n for n in names if n != INDEX and not n.startswith(tuple(
            f"{section}/" for section in destinations))]
        if stray:
            raise PackError(f"{file} holds {stray[0]!r}, outside the course's cache sections; "
                            "nothing was unpacked.")
        index = json.loads(archive.extractfile(INDEX).read())
        course_data_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=course_data_dir()) as staging:
            try:
                archive.extractall(staging, filter="data")
            except tarfile.FilterError as exc:
                raise PackError(f"{file} was not unpacked: {exc}") from exc
            for section, destination in destinations.items():
                source = Path(staging) / section
                if source.is_dir():
                    _merge(source, destination)
    return {name: store.verify(get_asset(name, registry)) for name in index["assets"]
            if name in registry}


def _merge(source: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = destination / item.name
        if item.is_dir() and not item.is_symlink():
            # A dataset folder is replaced whole (its manifest must match its files); a hub
            # repository folder is merged, since it may hold other revisions already.
            if (item / store.MANIFEST).is_file():
                shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(item, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target, follow_symlinks=False)
