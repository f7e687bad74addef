"""One archive of everything fetched, for a classroom without a network (README: For instructors).

Its sections mirror the caches: ``torch/checkpoints/``, ``huggingface/hub/`` (links included)
and ``data/``. Unpacking judges every member and link from where it will finally be, and the
sizes against the free space, before writing anything; tar's "data" filter then extracts into a
staging folder, and files move into the caches, replacing (never following) a link there.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from labkit.assets import store
from labkit.assets.registry import REGISTRY, Asset, PipModel, TextModel, VisionWeights, get_asset
from labkit.config import course_data_dir, hf_hub_dir, torch_checkpoints_dir

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
    assets = [get_asset(name, registry) for name in names] if names else [
        a for a in registry.values()
        if not isinstance(a, PipModel) and store.status(a) == "present"]
    if installed := [a.name for a in assets if isinstance(a, PipModel)]:
        raise PackError(f"{', '.join(installed)} come(s) with the course's pip packages, so "
                        "every machine that installs the course has them: nothing to pack. "
                        "Fix: leave them out of the list.")
    if missing := [a.name for a in assets if store.status(a) != "present"]:
        raise PackError(f"Not fetched, so they cannot be packed: {', '.join(missing)}. "
                        f"Fix: python -m labkit assets fetch {' '.join(missing)}")
    if not assets:
        raise PackError("Nothing is fetched yet, so there is nothing to pack. "
                        "Fix: python -m labkit assets fetch")
    index = json.dumps({"format": 1, "assets": {a.name: _section(a) for a in assets}}).encode()
    file = Path(file)
    partial = file.with_name(file.name + ".part")
    with tarfile.open(partial, "w:gz" if file.name.endswith((".tar.gz", ".tgz")) else "w") as tar:
        info = tarfile.TarInfo(INDEX)
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index))
        for asset in assets:
            tar.add(store.location(asset), arcname=_section(asset))  # links stay links
    partial.replace(file)
    return [a.name for a in assets]


def unpack(file: Path, *, registry: dict[str, Asset] | None = None) -> dict[str, tuple[bool, str]]:
    """Unpack ``file`` into this machine's caches; returns each asset's ``verify()`` result."""
    registry = REGISTRY if registry is None else registry
    destinations = _destinations()
    with tarfile.open(file) as archive:
        members = archive.getmembers()
        if INDEX not in [m.name for m in members]:
            raise PackError(f"{file} is not a labkit asset pack (it has no {INDEX}). "
                            "Fix: make one with `python -m labkit assets pack FILE`.")
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
                    if (Path(staging) / section).is_dir():
                        _merge(Path(staging) / section, destination)
            except OSError as exc:
                raise PackError(f"{file} was unpacked only in part: {exc}. Every file it placed "
                                "is whole, but some assets may be incomplete. Fix: check the "
                                "disk, then unpack again (it replaces what is there).") from exc
    return {name: store.verify(registry[name]) for name in index["assets"] if name in registry}


def _check_member(file: Path, member: tarfile.TarInfo, destinations: dict[str, Path]) -> None:
    """Refuse a member outside the three sections, or one that would land (or a link that would
    point) outside its cache once in place: judged from its final place, not from the staging
    folder, so ``data/x -> ../victim`` is refused although it stays inside the staging."""
    section = next((s for s in destinations if member.name.startswith(f"{s}/")), None)
    if section is None:
        raise PackError(f"{file} holds {member.name!r}, outside the course's cache sections; "
                        "nothing was unpacked.")
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
        elif os.path.commonpath([target, root]) != root:
            problem = f"is a link to {member.linkname!r}, which would point outside"
    if problem:
        raise PackError(f"{file} was not unpacked: {member.name} {problem} {root}. Nothing was "
                        f"written. {UNTRUSTED}")


def _check_space(file: Path, members: list[tarfile.TarInfo], destinations: dict[str, Path]):
    """Refuse an archive whose files do not fit, before writing any: all of it lands in a
    staging folder in LABKIT_DATA, then each section is moved (same disk) or copied into its
    cache. A sparse member counts at its full size, each member at least a 4 KiB block."""
    def size(prefix) -> int:
        return sum(max(m.size if m.isreg() else 0, 4096) for m in members
                   if m.name.startswith(prefix))

    for folder, need in [(course_data_dir(), size(tuple(f"{s}/" for s in destinations))),
                         *((d, size(f"{s}/")) for s, d in destinations.items())]:
        folder = Path(os.path.abspath(folder))
        free = shutil.disk_usage(next(p for p in [folder, *folder.parents] if p.exists())).free
        if need > free:
            raise PackError(f"{file} was not unpacked: it needs {_size(need)} in {folder}, where "
                            f"{_size(free)} are free. Nothing was written. Fix: free some space "
                            "there, or point LABKIT_DATA, TORCH_HOME and HF_HOME at a disk with "
                            "more room, then unpack again.")


def _size(count: float) -> str:
    power = min(4, max(0, (int(count).bit_length() - 1) // 10))  # 1024 ** power <= count
    return f"{count / 1024 ** power:.1f} {('B', 'KiB', 'MiB', 'GiB', 'TiB')[power]}"


def _merge(source: Path, destination: Path) -> None:
    """Move ``source``'s tree into ``destination``, replacing (never following) a link there."""
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
            try:                                                   # rename, so a failed copy
                shutil.copy2(item, part, follow_symlinks=False)    # leaves no partial file
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
