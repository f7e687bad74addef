"""One download: torch.hub moves the bytes, with a short timeout and a checked sha256.

``torch.hub.download_url_to_file`` writes beside the destination, checks the sha256 (or the
start of it, as torchvision publishes it) and only then renames the file into place, so the
cache holds verified files or nothing. labkit adds the timeout and errors that say the fix.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from pathlib import Path

# Seconds to wait for a server to answer or send more: a machine without a network fails
# in seconds instead of hanging a lesson.
CONNECT_TIMEOUT = 5.0
RETRY = ("Fix: try again; if it keeps happening the file on the server has changed (or "
         "something between you and it alters it), so tell the course maintainers.")


class DownloadError(RuntimeError):
    """The file could not be fetched; nothing was left in the cache."""


class ChecksumMismatch(DownloadError):
    """The bytes arrived but are not the published file."""


def download(url: str, dest: Path, *, sha256: str, timeout: float = CONNECT_TIMEOUT,
             progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` if its sha256 starts with ``sha256`` (the whole or a prefix)."""
    import torch.hub

    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"Refusing to download {url}: only http(s) sources are allowed.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # torch.hub's urlopen keeps the proxy settings it first saw, and waits forever by default.
    urllib.request.install_opener(urllib.request.build_opener())
    default = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=sha256, progress=progress)
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"Downloading {url} failed: {_reason(exc, timeout)}.") from exc
    except RuntimeError as exc:  # torch.hub: 'invalid hash value (expected "...", got "...")'
        got = str(exc).rpartition('got "')[2].rstrip('")')
        raise ChecksumMismatch(f"Downloading {url} gave a file whose sha256 is {got}, "
                               f"not the published {sha256}. It was discarded. {RETRY}") from exc
    finally:
        socket.setdefaulttimeout(default)
    return dest


def _reason(exc: BaseException, timeout: float) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed before the whole file arrived"
    return f"{type(reason).__name__}: {reason}"
