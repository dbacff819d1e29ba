"""Probe a video, plan it into chunks of sampled frames, and read one chunk's frames.

Pixels never travel through the broker: a detect worker opens the video itself,
seeks once to the start of its range and then grabs sequentially, retrieving
(decoding to BGR) only the sampled frames. One seek per chunk matters: seeking an
H.264 stream to every sampled frame costs several times a full decode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facepipe.contracts import Chunk, ShippedFrame
from facepipe.errors import FacepipeError
from facepipe.fetch import is_url, local_copy
from facepipe.images import decode_image, encode_jpeg, from_base64, to_base64


@dataclass(frozen=True)
class VideoInfo:
    """What the dispatcher needs to know about a video before planning."""

    path: str
    frame_count: int
    fps: float
    width: int
    height: int


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


def plan_chunks(frame_count: int, frame_step: int, chunk_size: int) -> list[Chunk]:
    """Split the sampled frames (multiples of ``frame_step``) into chunks of ``chunk_size``.

    Every sampled frame lands in exactly one chunk, in order; chunk ``seq`` numbers
    are the order in which the writer applies them.
    """
    if frame_step < 1 or chunk_size < 1:
        raise ValueError("frame_step and chunk_size must be at least 1")
    span = frame_step * chunk_size
    return [
        Chunk(seq=seq, start=start, stop=min(start + span, frame_count))
        for seq, start in enumerate(range(0, frame_count, span))
    ]


def open_capture(path: str, threads: int = 1) -> cv2.VideoCapture:
    """A capture with ``threads`` FFmpeg decoder threads. Workers use one
    (``FACEPIPE_DECODE_THREADS``): they run in parallel processes already, and FFmpeg's own
    decoder threads only add overhead then (measured: 0.66 s against 0.97 s for 842 frames
    of 720p on one process)."""
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])


class ChunkReader:
    """Iterate ``(frame_index, bgr_image)`` over a chunk's sampled frames; counts frames grabbed.

    Grabs (demuxes and decodes without colour conversion) every frame from the chunk's
    start to its last sampled frame and retrieves only the sampled ones. Stops early,
    without error, at the real end of the stream, which can come before the container's
    announced frame count; ``grabbed`` and the frames yielded tell what was read.
    """

    def __init__(
        self, path: str, chunk: Chunk, step: int, decode_threads: int = 1, cache_dir: Path | None = None
    ) -> None:
        self.path = str(local_copy(path, cache_dir)) if is_url(path) else path
        self.chunk = chunk
        self.step = step
        self.decode_threads = decode_threads
        self.grabbed = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        chunk, step = self.chunk, self.step
        sampled = chunk.frames(step)
        if not sampled:
            return
        cap = open_capture(self.path, self.decode_threads)
        if not cap.isOpened():
            raise OSError(f"cannot open video {self.path}")
        try:
            if chunk.start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, chunk.start)
            for index in range(chunk.start, sampled[-1] + 1):
                if not cap.grab():
                    return
                self.grabbed += 1
                if (index - chunk.start) % step == 0:
                    ok, frame = cap.retrieve()
                    if not ok:
                        return
                    yield index, frame
        finally:
            cap.release()


class PayloadReader:
    """The frames of a chunk shipped inside the task message (``--ship-frames``).

    Used by workers on hosts that cannot read the video: the dispatcher decodes the
    sampled frames and sends each as base64 JPEG with its frame index.
    """

    def __init__(self, frames: list[ShippedFrame]) -> None:
        self.frames = frames
        self.grabbed = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for frame in self.frames:
            self.grabbed += 1
            yield frame.index, decode_frame(frame.jpeg)


def encode_frame(frame: np.ndarray, quality: int = 95) -> str:
    """A frame as base64 JPEG, to ship inside a detect message."""
    return to_base64(encode_jpeg(frame, quality))


def decode_frame(text: str) -> np.ndarray:
    """Inverse of :func:`encode_frame`; ValueError for anything that is not an image."""
    return decode_image(from_base64(text, "shipped frame"), "shipped frame")
