"""Videos given as http(s) URLs: each host downloads the file once into a local cache.

A worker on a host without shared storage can then still read its frame range. We copy
the whole file rather than stream byte ranges because many servers (and FFmpeg's HTTP
reader) seek badly, and a detect worker seeks once per chunk; the copy is made once per
host and URL (all processes on the host share it, under a file lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from facepipe.errors import FacepipeError
from facepipe.settings import WorkerSettings


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_copy(url: str, cache_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """The path of a local copy of ``url``, downloading it the first time on this host.

    ``cache_dir`` is ``FACEPIPE_CACHE_DIR`` (:class:`~facepipe.settings.WorkerSettings`).
    """
    folder = Path(cache_dir) if cache_dir else WorkerSettings().cache_dir
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    suffix = Path(url.split("?")[0]).suffix[:8] or ".video"
    target = folder / f"{digest}{suffix}"
    if target.exists():
        return target
    with open(folder / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download per host; the others wait for it
        if target.exists():
            return target
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise FacepipeError(f"cannot download {url}: {reason} (check the URL and the network)") from None
        partial.rename(target)
    return target
