"""Issue 22 (2): ``assets unpack`` writes only into the caches.

Real tar files built here and real symbolic links: a link is judged against where it will
finally point, nothing is written through a link that is already in a cache, and a write the
disk refuses leaves nothing partial behind and says why.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from labkit.instructor.packs import PackError, unpack

INDEX = json.dumps({"format": 1, "assets": {}}).encode()


@pytest.fixture
def caches(tmp_path, monkeypatch) -> Path:
    """Empty caches under tmp_path/caches; returns LABKIT_DATA."""
    for variable, folder in (("TORCH_HOME", "torch"), ("HF_HOME", "hf"), ("LABKIT_DATA", "data")):
        monkeypatch.setenv(variable, str(tmp_path / "caches" / folder))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "caches" / "data"


def file(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def tar(path: Path, *members) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in [file("labkit-pack.json", INDEX), *members]:
            archive.addfile(info, None if content is None else io.BytesIO(content))
    return path


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- links --------------------------------------------------------------------------------

def test_a_link_that_would_point_above_the_cache_once_merged_is_refused(caches, tmp_path):
    victim = tmp_path / "caches" / "victim"  # LABKIT_DATA/../victim
    victim.mkdir(parents=True)
    with pytest.raises(PackError, match=r"evil.tar was not unpacked: data/evil is a link to "
                                        r"'../victim', which would point outside .*data.*Fix:"):
        unpack(tar(tmp_path / "evil.tar", link("data/evil", "../victim")))
    assert not os.path.lexists(caches / "evil")
    assert everything_under(caches) == []  # nothing else of it either, staging included
    # The second archive of the pair has nothing to write through.
    unpack(tar(tmp_path / "pwn.tar", file("data/evil/pwned.txt", b"pwned")))
    assert everything_under(victim) == []
    assert (caches / "evil" / "pwned.txt").read_bytes() == b"pwned"


@pytest.mark.parametrize("members", [
    [link("data/here", "."), link("data/out", "here/../victim")],  # "." makes it "../victim"
    [link("data/here", "."), link("data/out", "here/../../victim")],
    [link("data/a/b", "../../victim")],
    [link("torch/checkpoints/w.pth", "../../../../data/x")],  # into another cache
    [link("huggingface/hub/models--a--b/x", "../../../../victim")],
    [link("data/abs", "/etc/passwd")],
    [link("data/x", "."), file("data/x/../evil")],
])
def test_links_out_of_their_cache_by_any_route_are_refused(caches, tmp_path, members):
    with pytest.raises(PackError, match="was not unpacked"):
        unpack(tar(tmp_path / "links.tar", *members))
    assert everything_under(tmp_path / "caches") == []


def test_links_inside_a_cache_are_kept_as_links(caches, tmp_path):
    blob = "a" * 64
    repo = "huggingface/hub/models--org--tiny"
    unpack(tar(tmp_path / "hub.tar", file(f"{repo}/blobs/{blob}", b"weights"),
               link(f"{repo}/snapshots/rev/model.bin", f"../../blobs/{blob}"),
               file("data/set/a.txt"), link("data/set/also.txt", "a.txt")))
    snapshot = tmp_path / "caches" / "hf" / "hub" / "models--org--tiny" / "snapshots" / "rev"
    assert (snapshot / "model.bin").is_symlink()
    assert (snapshot / "model.bin").read_bytes() == b"weights"
    assert (caches / "set" / "also.txt").is_symlink()


def test_nothing_is_written_through_a_link_already_in_a_cache(caches, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    caches.mkdir(parents=True)
    os.symlink(victim, caches / "evil")                      # a folder link, e.g. left by an
    os.symlink(victim / "keep.txt", caches / "file.txt")     # older labkit, and a file link
    (caches / "set").mkdir()
    os.symlink(victim, caches / "set" / "sub")
    unpack(tar(tmp_path / "pwn.tar", file("data/evil/pwned.txt", b"pwned"),
               file("data/file.txt", b"pwned"), file("data/set/sub/pwned.txt", b"pwned"),
               file("data/set/.labkit-manifest.json", b"{}")))  # a dataset: replaced whole
    assert everything_under(victim) == ["keep.txt"] and (victim / "keep.txt").read_text() == "mine"
    for written in ("evil/pwned.txt", "file.txt", "set/sub/pwned.txt"):
        assert not (caches / written).is_symlink() and (caches / written).read_bytes() == b"pwned"
    assert not (caches / "evil").is_symlink() and not (caches / "set" / "sub").is_symlink()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system")
def test_a_cache_on_another_disk_is_copied_into_without_writing_through_links(caches, tmp_path,
                                                                              monkeypatch):
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))  # tmpfs: another device than tmp_path
    try:
        if other.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        monkeypatch.setenv("TORCH_HOME", str(other / "torch"))
        checkpoints = other / "torch" / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        (tmp_path / "victim.pth").write_bytes(b"mine")
        os.symlink(tmp_path / "victim.pth", checkpoints / "w.pth")
        unpack(tar(tmp_path / "w.tar", file("torch/checkpoints/w.pth", b"weights"),
                   link("torch/checkpoints/also.pth", "w.pth")))
        assert (tmp_path / "victim.pth").read_bytes() == b"mine"
        assert not (checkpoints / "w.pth").is_symlink()
        assert (checkpoints / "also.pth").read_bytes() == b"weights"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["also.pth", "w.pth"]
    finally:
        shutil.rmtree(other)


# --- a disk that refuses a write ------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_write_that_fails_midway_leaves_nothing_partial_and_says_why(caches, tmp_path):
    """The disk (here a real file-size limit of 1 MiB) refuses a write halfway."""
    archive = tar(tmp_path / "pack.tar", file("data/set/a.txt"),
                  file("data/set/big.bin", os.urandom(3 << 20)))
    script = (
        "import resource, signal, sys\n"
        "from labkit.instructor.packs import PackError, unpack\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "try:\n"
        f"    unpack({str(archive)!r})\n"
        "except PackError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "pack.tar was not unpacked" in done.stdout and "File too large" in done.stdout
    assert "nothing of it was kept" in done.stdout and "Fix:" in done.stdout
    assert everything_under(tmp_path / "caches") in ([], ["data"])
