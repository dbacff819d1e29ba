"""Read one chunk's sampled frames: from the video itself, or from the task message.

Pixels never travel through the broker unless asked to (``--ship-frames``): a detect
worker opens the video itself, seeks once and decodes forward, converting to BGR only the
sampled frames. :func:`chunk_reader` picks the reader a chunk was planned for
(:mod:`facepipe.media.plan`):

* :class:`KeyframeReader` decodes only what its sampled frames need from the chunk's keyframe
  (:class:`~facepipe.media.keyframes.KeyframeDecoder`): GOPs without a sampled frame are not
  decoded at all, non-reference frames that are not sampled are skipped by the decoder
  (FFmpeg's ``skip_frame``), and decoding stops at the last sampled frame. Frames are
  numbered by their timestamps, so skipping cannot shift a number.
* :class:`ChunkReader` grabs a frame range with OpenCV (the seed's way).
* :class:`PayloadReader` decodes frames shipped inside the message.

The first two give the same frames, pixel for pixel (PyAV and OpenCV's FFmpeg convert to BGR
alike; tested), in the same order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facepipe.media.fetch import is_url, local_copy
from facepipe.media.images import decode_image, encode_jpeg, from_base64, to_base64
from facepipe.media.keyframes import KeyframeDecoder
from facepipe.records import Chunk, ShippedFrame


def open_capture(path: str, threads: int = 1) -> cv2.VideoCapture:
    """A capture with ``threads`` FFmpeg decoder threads. Workers use one
    (``FACEPIPE_DECODE_THREADS``): they run in parallel processes already, and FFmpeg's own
    decoder threads only add overhead then (measured: 0.66 s against 0.97 s for 842 frames
    of 720p on one process)."""
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])


class _ChunkFrames:
    """What both chunk readers hold: the (local) video, the chunk, the step, and ``grabbed``,
    the frames decoded so far."""

    def __init__(
        self,
        path: str,
        chunk: Chunk,
        step: int,
        decode_threads: int = 1,
        cache_dir: Path | None = None,
        hwaccel: str | None = None,
    ) -> None:
        self.path = str(local_copy(path, cache_dir)) if is_url(path) else path
        self.chunk = chunk
        self.step = step
        self.decode_threads = decode_threads
        self.hwaccel = hwaccel
        self.grabbed = 0


class ChunkReader(_ChunkFrames):
    """Iterate ``(frame_index, bgr_image)`` over a chunk's sampled frames; counts frames grabbed.

    Grabs (demuxes and decodes without colour conversion) every frame from the chunk's
    start to its last sampled frame and retrieves only the sampled ones. Stops early,
    without error, at the real end of the stream, which can come before the container's
    announced frame count; ``grabbed`` and the frames yielded tell what was read.
    """

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


class KeyframeReader(_ChunkFrames):
    """Iterate ``(frame_index, bgr_image)`` over a keyframe-planned chunk's sampled frames:
    :class:`KeyframeDecoder` from the chunk's keyframe. ``grabbed`` counts decoded frames.

    The decoder stays open between chunks of the same file in a thread (:func:`_open_decoder`):
    opening an MP4 parses its whole sample index, 13 ms for 50 minutes of video, which every
    chunk would otherwise pay again.
    """

    def __init__(
        self,
        path: str,
        chunk: Chunk,
        step: int,
        decode_threads: int = 1,
        cache_dir: Path | None = None,
        hwaccel: str | None = None,
    ) -> None:
        if chunk.key is None or chunk.key_pts is None:
            raise ValueError("a KeyframeReader needs a chunk planned on keyframes")
        super().__init__(path, chunk, step, decode_threads, cache_dir, hwaccel)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        chunk = self.chunk
        assert chunk.key is not None and chunk.key_pts is not None
        decoder = _open_decoder(self.path, self.decode_threads, self.hwaccel)
        before = decoder.grabbed
        try:
            yield from decoder.frames(chunk.key, chunk.key_pts, chunk.frames(self.step))
        except BaseException:  # an error or an abandoned iteration: never reuse that decoder
            _close_decoder()
            raise
        finally:
            self.grabbed = decoder.grabbed - before


_decoders = threading.local()


def _open_decoder(path: str, threads: int, hwaccel: str | None = None) -> KeyframeDecoder:
    """This thread's open decoder for ``path`` (the same file: same size and modification time)."""
    stat = os.stat(path)
    key = (path, threads, hwaccel, stat.st_size, stat.st_mtime_ns)
    held = getattr(_decoders, "held", None)
    if held is not None and held[0] == key:
        return held[1]
    _close_decoder()
    decoder = KeyframeDecoder(path, threads, hwaccel)
    _decoders.held = (key, decoder)
    return decoder


def _close_decoder() -> None:
    held = getattr(_decoders, "held", None)
    _decoders.held = None
    if held is not None:
        held[1].close()


def chunk_reader(
    path: str,
    chunk: Chunk,
    step: int,
    decode_threads: int = 1,
    cache_dir: Path | None = None,
    hwaccel: str | None = None,
) -> ChunkReader | KeyframeReader:
    """The reader a chunk was planned for: keyframes (PyAV, on ``hwaccel`` where asked and
    available) or a frame range (OpenCV)."""
    if chunk.key is not None:
        return KeyframeReader(path, chunk, step, decode_threads, cache_dir, hwaccel)
    return ChunkReader(path, chunk, step, decode_threads, cache_dir)


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
