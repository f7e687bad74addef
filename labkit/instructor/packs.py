"""``assets pack`` and ``assets unpack``: everything fetched in one archive, for a classroom
without a network (README: For instructors). Its sections mirror the caches: ``torch/checkpoints/``,
``huggingface/hub/`` and ``data/``; unpacking judges every member from its final place first."""

import contextlib
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
from labkit.files import atomic_write

INDEX = "labkit-pack.json"
UNTRUSTED = "Fix: only unpack archives made by `python -m labkit assets pack` on a trusted machine."


class PackError(RuntimeError):
    pass


def _section(asset: Asset) -> str:
    if isinstance(asset, VisionWeights):
        return f"torch/checkpoints/{asset.filename}"
    if isinstance(asset, TextModel):
        return f"huggingface/hub/{store.location(asset).name}"
    return f"data/{asset.folder}"


def pack(file: Path, names: list[str] | None = None, *,
         registry: dict[str, Asset] | None = None) -> list[str]:
    """Write every present asset (or the named ones, which must be present) into ``file``."""
    registry = REGISTRY if registry is None else registry
    assets = [get_asset(name, registry) for name in names] if names else [
        a for a in registry.values()
        if not isinstance(a, PipModel) and store.status(a) == "present"]
    if installed := [a.name for a in assets if isinstance(a, PipModel)]:
        raise PackError(f"{', '.join(installed)}: installed with the course's pip packages on "
                        "every machine, so there is nothing to pack. Fix: leave them out.")
    if missing := [a.name for a in assets if store.status(a) != "present"]:
        raise PackError(f"Not fetched, so they cannot be packed: {', '.join(missing)}. "
                        f"Fix: python -m labkit assets fetch {' '.join(missing)}")
    if not assets:
        raise PackError("Nothing is fetched yet, so there is nothing to pack. "
                        "Fix: python -m labkit assets fetch")
    index = json.dumps({"format": 1, "assets": {a.name: _section(a) for a in assets}}).encode()

    def write(out) -> None:  # out: the temporary file atomic_write opened
        with tarfile.open(fileobj=out, mode="w:gz" if str(file).endswith("gz") else "w") as tar:
            info = tarfile.TarInfo(INDEX)
            info.size = len(index)
            tar.addfile(info, io.BytesIO(index))
            for asset in assets:
                tar.add(store.location(asset), arcname=_section(asset))  # links stay links

    atomic_write(file, write)
    return [a.name for a in assets]


def unpack(file: Path, *, registry: dict[str, Asset] | None = None) -> dict[str, tuple[bool, str]]:
    """Unpack ``file`` into this machine's caches; returns each asset's ``verify()`` result."""
    registry = REGISTRY if registry is None else registry
    caches = {"torch/checkpoints": torch_checkpoints_dir(), "huggingface/hub": hf_hub_dir(),
              "data": course_data_dir()}
    with tarfile.open(file) as archive, contextlib.ExitStack() as staged:
        members = archive.getmembers()
        if INDEX not in [m.name for m in members]:
            raise PackError(f"{file} is not a labkit asset pack (it has no {INDEX}). "
                            "Fix: make one with `python -m labkit assets pack FILE`.")
        for member in members:
            if member.name != INDEX:
                _check_member(file, member, caches)
        index = json.loads(archive.extractfile(INDEX).read())
        moves = {}  # staged section -> its cache
        try:
            for section, cache in caches.items():
                chosen = [m for m in members if m.name.startswith(f"{section}/")]
                if chosen:
                    cache.mkdir(parents=True, exist_ok=True)
                    staging = staged.enter_context(
                        tempfile.TemporaryDirectory(prefix=".unpack-", dir=cache))
                    archive.extractall(staging, members=chosen, filter="data")
                    moves[Path(staging) / section] = cache
        except tarfile.FilterError as exc:
            raise PackError(f"{file} was not unpacked: {exc}. Nothing was written. "
                            f"{UNTRUSTED}") from exc
        except (tarfile.TarError, OSError) as exc:  # a damaged file, a full disk
            raise PackError(f"{file} was not unpacked: {exc}; nothing of it was kept. Fix: "
                            "check the file (copy it again if it is damaged) and the free space "
                            "on the disk, then unpack again.") from exc
        try:
            for source, cache in moves.items():
                _merge(source, cache)
        except OSError as exc:
            raise PackError(f"{file} was unpacked only in part: {exc}. Every file it placed "
                            "is whole, but some assets may be incomplete. Fix: check the "
                            "disk, then unpack again (it replaces what is there).") from exc
    return {name: store.verify(registry[name]) for name in index["assets"] if name in registry}


def _check_member(file: Path, member: tarfile.TarInfo, caches: dict[str, Path]) -> None:
    """Refuse a member that would land (or a link that would point) outside its cache, judged from
    its final place: ``data/x -> ../victim`` is refused though it stays inside the staging."""
    section = next((s for s in caches if member.name.startswith(f"{s}/")), None)
    if section is None:
        raise PackError(f"{file} holds {member.name!r}, outside the course's cache sections; "
                        "nothing was unpacked.")
    root = os.path.abspath(caches[section])
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
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)  # the same disk; replaces a link at target, never follows it
