"""One careful HTTP download: short timeouts, progress, resume, checksum, atomic move.

The file is written next to its destination as ``NAME.part`` and moved into place only after
its checksum matched, so a reader never sees half a file. If the connection drops midway the
download resumes from where it stopped (an HTTP Range request; a server that ignores it
means starting again). Whatever goes wrong, the ``.part`` file is removed and the error says
what happened: a cache holds verified files or nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "ChecksumMismatch", "download", "sha256_file", "CONNECT_TIMEOUT"]

# Seconds to wait for a server to accept or to send the next bytes. Short, so that a machine
# without a network fails in seconds instead of hanging a lesson.
CONNECT_TIMEOUT = 5.0
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The file could not be fetched; nothing was left in the cache."""


class ChecksumMismatch(DownloadError):
    """The bytes arrived but are not the published file."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "labkit-course"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    # A fresh opener each time: urlopen's shared one keeps the proxy settings it first saw.
    return urllib.request.build_opener().open(request, timeout=timeout)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in str(exc):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed before the whole file arrived"
    reason = getattr(exc, "reason", exc)
    return f"{type(reason).__name__}: {reason}"


def _receive(url: str, part: Path, state: dict, *, timeout: float, progress) -> int:
    """Append the rest of the file to ``part``, hashing as it goes; returns its size."""
    start = part.stat().st_size if part.exists() else 0
    with _open(url, start, timeout) as response:
        if start and response.status != 206:  # the server ignored Range: start again
            start = 0
            state["sha256"] = hashlib.sha256()
            part.unlink()
            progress.reset()
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        if total is not None and progress.total != total:
            progress.total = total
            progress.refresh()
        with open(part, "ab") as file:
            while block := response.read(CHUNK):
                file.write(block)
                state["sha256"].update(block)
                progress.update(len(block))
    received = part.stat().st_size
    if total is not None and received < total:
        raise http.client.IncompleteRead(b"", total - received)
    return received


def download(url: str, dest: Path, *, sha256: str, size: int | None = None,
             timeout: float = CONNECT_TIMEOUT, retries: int = 3, progress: bool = True,
             sha256_is_prefix: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` and check it; returns ``dest``.

    ``sha256`` is the published checksum (or its start, with ``sha256_is_prefix``, as
    torchvision publishes it). A dropped connection is resumed up to ``retries`` times, but
    only while bytes keep arriving: a server that cannot be reached fails at once.
    """
    from tqdm.auto import tqdm

    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"Refusing to download {url}: only http(s) sources are allowed.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)  # a leftover from a killed process: we cannot vouch for it
    state = {"sha256": hashlib.sha256()}  # continues across a resumed transfer
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
               desc=dest.name, disable=not progress, leave=False)
    try:
        for attempt in range(retries + 1):
            before = part.stat().st_size if part.exists() else 0
            try:
                _receive(url, part, state, timeout=timeout, progress=bar)
                break
            except (OSError, http.client.HTTPException) as exc:
                now = part.stat().st_size if part.exists() else 0
                if isinstance(exc, urllib.error.HTTPError) or now == before or attempt == retries:
                    raise DownloadError(f"Downloading {url} failed: {_reason(exc, timeout)}.") from exc
        _check(url, part, state["sha256"].hexdigest(), sha256=sha256, size=size, prefix=sha256_is_prefix)
        os.replace(part, dest)
        return dest
    finally:
        bar.close()
        part.unlink(missing_ok=True)


def _check(url: str, part: Path, actual: str, *, sha256: str, size: int | None, prefix: bool):
    got = part.stat().st_size
    if size is not None and not prefix and got != size:
        raise ChecksumMismatch(
            f"Downloading {url} gave {got:,} bytes where {size:,} were expected. The download "
            "was discarded. Fix: try again; if it keeps happening the file on the server has "
            "changed, so tell the course maintainers.")
    if not (actual.startswith(sha256) if prefix else actual == sha256):
        raise ChecksumMismatch(
            f"Downloading {url} gave a file whose sha256 is {actual}, not the published "
            f"{sha256}. The download was discarded. Fix: try again; if it keeps happening the "
            "file on the server has changed (or something between you and it alters it), so "
            "tell the course maintainers.")
