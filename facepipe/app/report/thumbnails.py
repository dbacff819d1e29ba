"""Face thumbnails for the report: kept by the run, or cut again from the video.

A run keeps every face's thumbnail as its detect worker cuts it
(:func:`facepipe.media.images.thumbnail`, a few KB of JPEG, stored with the run under
:func:`facepipe.records.face_key`), so writing the report decodes no video; thumbnails come
from the video only for faces without one (``facepipe report DIR`` rebuilding from the output
folder alone, or a run made by an older version). This is the only part of the report that
decodes video.

The chosen frames are decoded from their keyframes, each GOP only as far as its chosen frames
need and without its unreferenced frames (:func:`facepipe.media.keyframes.read_frames`); where PyAV
cannot index the file, OpenCV reads each with one seek, or with a few forward grabs when it is
close after the previous one (seeking re-decodes from the last keyframe, so for nearby frames
grabbing is cheaper); on H.264 with long GOPs those seeks cost several times more. A thumbnail
becomes a base64 JPEG ``data:`` URI so the page stays one self-contained file. When the video
cannot be read (moved, deleted), no thumbnails come back, and the reason does, for the page to show
instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facepipe.media.images import thumbnail, to_base64
from facepipe.media.keyframes import read_frames
from facepipe.records import face_key

#: forward ``grab`` instead of seeking when the next wanted frame is this close
GRAB_AHEAD = 48


def _uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + to_base64(jpeg)


def thumbnail_uri(frame: np.ndarray, bbox: list[float]) -> str | None:
    """The face's thumbnail as a JPEG ``data:`` URI; None if it cannot be encoded (none shown)."""
    try:
        return _uri(thumbnail(frame, bbox))
    except ValueError:
        return None


def _frames(cap: cv2.VideoCapture, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` for each of the sorted ``indices`` that can be read; unreadable ones are skipped."""
    pos = 0  # index of the frame the next read returns
    for index in indices:
        if index < pos or index - pos > GRAB_AHEAD:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            pos = index
        while pos < index and cap.grab():
            pos += 1
        ok, frame = cap.read() if pos == index else (False, None)
        pos += 1
        if ok and frame is not None:
            yield index, frame


def read_thumbnails(
    video_path: str | None,
    wanted: list[dict[str, Any]],
    kept: Callable[[list[str]], dict[str, bytes]] | None = None,
) -> tuple[dict[int, str], str | None]:
    """The thumbnail of each wanted face (keyed by ``id(face)``); also says why not, if not.

    ``kept`` returns the thumbnails the run kept, by :func:`~facepipe.records.face_key`; faces
    without one are cut from the video. Keyed by object identity because face dicts are not hashable and the
    caller holds the very same dicts it passed in, so it finds each face's crop without a
    lookup key.
    """
    if not wanted:
        return {}, None
    thumbs: dict[int, str] = {}
    if kept is not None:
        found = kept([face_key(f["frame"], f["bbox"]) for f in wanted])
        for face in wanted:
            jpeg = found.get(face_key(face["frame"], face["bbox"]))
            if jpeg:
                thumbs[id(face)] = _uri(jpeg)
        wanted = [face for face in wanted if id(face) not in thumbs]
        if not wanted:
            return thumbs, None
    if not video_path or not Path(video_path).is_file():
        return thumbs, f"video not found at {video_path}" if video_path else "no video path recorded"
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for face in wanted:
        by_frame[int(face["frame"])].append(face)
    # The report is written after the workers have stopped: the decoder may use every core.
    frames = read_frames(str(video_path), sorted(by_frame), threads=0)
    cap = None
    if frames is None:
        cap = cv2.VideoCapture(str(video_path))
        if not cap.isOpened():
            cap.release()
            return thumbs, f"cannot open {video_path} as a video"
        frames = _frames(cap, sorted(by_frame))
    try:
        for index, frame in frames:
            for face in by_frame[index]:
                uri = thumbnail_uri(frame, face["bbox"])
                if uri:
                    thumbs[id(face)] = uri
    except (OSError, ValueError):  # a damaged file: show the thumbnails read so far
        pass
    finally:
        if cap is not None:
            cap.release()
    if not thumbs:
        return thumbs, f"no frames could be read from {video_path}"
    return thumbs, None
