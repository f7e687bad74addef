"""One archive of everything fetched, for classrooms without a network.

An instructor runs ``python -m labkit assets fetch`` and ``pack course-assets.tar`` on a
connected machine, copies the file to each lab machine (USB stick, shared drive) and runs
``unpack course-assets.tar`` there. The archive mirrors the three caches::

    labkit-pack.json                  what is inside
    torch/checkpoints/...             -> $TORCH_HOME/hub/checkpoints
    huggingface/hub/models--.../...   -> $HF_HOME/hub   (the hub's own layout, links included)
    data/<folder>/...                 -> $LABKIT_DATA

Unpacking never writes outside those folders: only the three sections above are accepted;
each member and each link is judged from where it will finally be (a link must point inside
its own cache), on top of tar's "data" filter; a link already in a cache is replaced, never
written through; and the sizes are checked against the free space before anything is written.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from labkit.assets import store
from labkit.assets.registry import REGISTRY, Asset, PipModel, TextModel, VisionWeights, get_asset
from labkit.config import course_data_dir, hf_hub_dir, torch_checkpoints_dir

__all__ = ["pack", "unpack", "PackError"]

INDEX = "labkit-pack.json"
UNTRUSTED = ("Fix: unpack only archives made by `python -m labkit assets pack` on a machine you "
             "trust.")


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
    """Unpack ``file`` into this machine's caches; returns each asset's verify() result.

    Everything is checked before anything is written: the sections, each link against where
    it will finally point, and the sizes against the free space."""
    registry = REGISTRY if registry is None else registry
    destinations = _destinations()
    with tarfile.open(file) as archive:
        members = archive.getmembers()
        names = [member.name for member in members]
        if INDEX not in names:
            raise PackError(f"{file} is not a labkit asset pack (it has no {INDEX}). "
                            "Fix: make one with `python -m labkit assets pack FILE`.")
        stray = [n for n in names if n != INDEX and not n.startswith(tuple(
            f"{section}/" for section in destinations))]
        if stray:
            raise PackError(f"{file} holds {stray[0]!r}, outside the course's cache sections; "
                            "nothing was unpacked.")
        for member in members:
            if member.name != INDEX:
                _check_member(file, member, destinations)
        _check_space(file, members, destinations)
        index = json.loads(archive.extractfile(INDEX).read())
        course_data_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=course_data_dir()) as staging:
            try:
                archive.extractall(staging, filter="data")
            except tarfile.FilterError as exc:
                raise PackError(f"{file} was not unpacked: {exc}. Nothing was written. "
                                f"{UNTRUSTED}") from exc
            except (tarfile.TarError, OSError) as exc:
                raise PackError(f"{file} was not unpacked: {exc}; nothing of it was kept. Fix: "
                                "check the file (copy it again if it is damaged) and the disk, "
                                "then unpack again.") from exc
            try:
                for section, destination in destinations.items():
                    source = Path(staging) / section
                    if source.is_dir():
                        _merge(source, destination)
            except OSError as exc:
                raise PackError(f"{file} was unpacked only in part: {exc}. Every file it placed "
                                "is whole, but some assets may be incomplete. Fix: check the disk, "
                                "then unpack again (it replaces what is there).") from exc
    return {name: store.verify(get_asset(name, registry)) for name in index["assets"]
            if name in registry}


def _check_member(file: Path, member: tarfile.TarInfo, destinations: dict[str, Path]) -> None:
    """Refuse a member that would land, or a link that would point, outside its cache once in
    place: judged from the member's final place, not from the staging folder (one level
    deeper), so ``data/x -> ../victim`` is refused although it stays inside the staging."""
    section = next(s for s in destinations if member.name.startswith(f"{s}/"))
    root = os.path.abspath(destinations[section])
    final = os.path.normpath(os.path.join(root, member.name[len(section) + 1:]))
    problem = None
    if ".." in member.name.split("/"):  # "data/x/../y" lands outside if x is a link to "."
        problem = "has '..' in its path, so it could land outside"
    elif member.issym():
        parts = member.linkname.split("/")
        ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
        target = os.path.normpath(os.path.join(os.path.dirname(final), member.linkname))
        if os.path.isabs(member.linkname) or any(p in ("", ".", "..") for p in parts[ups:]):
            # "x/../y" depends on what x is: a link to "." in the same archive makes it "../y".
            problem = f"is a link to {member.linkname!r}, which is not a plain relative path into"
        elif _outside(target, root):
            problem = f"is a link to {member.linkname!r}, which would point outside"
    if problem:
        raise PackError(f"{file} was not unpacked: {member.name} {problem} {root}. Nothing was "
                        f"written. {UNTRUSTED}")


def _outside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) != folder


def _check_space(file: Path, members: list[tarfile.TarInfo], destinations: dict[str, Path]):
    """Refuse an archive whose files do not fit on the disk, before writing any of them.
    Everything lands in a staging folder beside LABKIT_DATA first, then is moved (same disk)
    or copied (another disk) into each cache. A sparse member counts at its full size."""
    def disk(folder: Path) -> Path:
        folder = Path(os.path.abspath(folder))
        while not folder.exists():
            folder = folder.parent
        return folder

    def size(names) -> int:  # at least one 4 KiB block per file, link or folder
        return sum(max(m.size if m.isreg() else 0, 4096) for m in members
                   if m.name.startswith(names))

    staging = disk(course_data_dir()).stat().st_dev
    needs = {staging: [course_data_dir(), size(tuple(f"{s}/" for s in destinations))]}
    for section, destination in destinations.items():
        device = disk(destination).stat().st_dev
        needs.setdefault(device, [destination, 0])[1] += (
            0 if device == staging else size(f"{section}/"))
    for folder, need in needs.values():
        free = shutil.disk_usage(disk(folder)).free
        if need > free:
            raise PackError(f"{file} was not unpacked: it needs {_size(need)} in {folder}, where "
                            f"{_size(free)} are free. Nothing was written. Fix: free some space "
                            "there, or point LABKIT_DATA, TORCH_HOME and HF_HOME at a disk with "
                            "more room, then unpack again.")


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _merge(source: Path, destination: Path) -> None:
    """Move ``source``'s tree into ``destination``. Nothing is written through a link found
    there: a link where the archive has a folder or a file is replaced, not followed."""
    destination.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = destination / item.name
        if item.is_dir() and not item.is_symlink():
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif (item / store.MANIFEST).is_file():
                # A dataset folder is replaced whole (its manifest must match its files); a hub
                # repository folder is merged, since it may hold other revisions already.
                shutil.rmtree(target, ignore_errors=True)
            _merge(item, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        try:
            os.replace(item, target)  # replaces a link at target; never follows it
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            part = target.with_name(f".{target.name}.unpacking")  # another disk: copy, then
            part.unlink(missing_ok=True)                           # replace, so a failed copy
            try:                                                   # leaves no partial file
                shutil.copy2(item, part, follow_symlinks=False)
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
