"""Open a video (a path, or an http(s) URL fetched once per host) and read what planning needs.

:func:`probe` is the one place a video is judged usable: a missing, empty, unreadable or
frameless file is a one-line :class:`~facepipe.errors.FacepipeError` before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2

from facepipe.errors import FacepipeError
from facepipe.media.fetch import is_url, local_copy
from facepipe.records import VideoInfo

__all__ = ["VideoInfo", "probe"]


def probe(location: str | os.PathLike[str], cache_dir: Path | None = None) -> VideoInfo:
    """Open a video (path or http(s) URL) and read its frame count, fps and size.

    Raises a clear :class:`FacepipeError` when it is unusable. For a URL the returned
    ``path`` stays the URL (workers fetch it themselves; ``cache_dir`` holds the copy).
    """
    if is_url(str(location)):
        info = probe(local_copy(str(location), cache_dir))
        return VideoInfo(str(location), info.frame_count, info.fps, info.width, info.height)
    path = Path(location)
    if not path.exists():
        raise FacepipeError(f"video not found: {path} (check the path)")
    if path.is_dir():
        raise FacepipeError(f"{path} is a folder, not a video file (pass a video file)")
    if path.stat().st_size == 0:
        raise FacepipeError(f"video file is empty: {path} (re-copy or re-download it)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FacepipeError(
                f"cannot open {path} as a video (not a video, or a codec OpenCV's FFmpeg lacks)"
            )
        frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or frame_count <= 0 or width <= 0 or height <= 0:
        raise FacepipeError(
            f"{path} has no readable video frames (not a video, truncated, or unsupported codec)"
        )
    return VideoInfo(str(path.resolve()), frame_count, fps, width, height)
