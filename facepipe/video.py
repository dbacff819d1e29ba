"""Probe a video, plan it into chunks of sampled frames, and read one chunk's frames.

Pixels never travel through the broker: a detect worker opens the video itself, seeks
once and decodes forward, converting to BGR only the sampled frames.

Two ways to plan and read (``--decoder``):

* **keyframes** (``pyav``, the default where PyAV can index the file): the dispatcher lists
  the keyframes from packet headers (:func:`scan_keyframes`, no decoding) and plans chunks
  of whole GOPs (:func:`plan_keyframe_chunks`), so a chunk's decoding starts at its own
  keyframe and no frame is decoded by two workers. The worker
  (:class:`KeyframeReader`) decodes only what its sampled frames need: GOPs without a
  sampled frame are not decoded at all, non-reference frames that are not sampled are
  skipped by the decoder (FFmpeg's ``skip_frame``), and decoding stops at the last sampled
  frame. Frames are numbered by their timestamps, so skipping cannot shift a number.
* **frame ranges** (``opencv``, the seed's): fixed ranges of ``chunk_size`` sampled frames,
  one OpenCV seek to each range's start. On H.264 with long GOPs each seek decodes up to a
  GOP of frames that the previous chunk's worker decodes too.

Both give the same frames, pixel for pixel (PyAV and OpenCV's FFmpeg convert to BGR alike;
tested), in the same order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facepipe.contracts import Chunk, ShippedFrame, sampled_frames
from facepipe.errors import FacepipeError
from facepipe.fetch import is_url, local_copy
from facepipe.images import decode_image, encode_jpeg, from_base64, to_base64
from facepipe.keyframes import KeyframeDecoder, KeyframeIndex, scan_keyframes


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


def plan_keyframe_chunks(
    index: KeyframeIndex, frame_step: int, chunk_size: int, min_chunks: int = 1
) -> list[Chunk]:
    """Chunks of whole GOPs, each with at least ``chunk_size`` sampled frames where the GOPs allow.

    A chunk starts at the keyframe of the GOP holding its first sampled frame and ends where
    the next chunk's starts, so GOPs never straddle two chunks: every frame is decoded by one
    worker at most. Where GOPs are long, one GOP is a chunk with many sampled frames.
    Every sampled frame lands in exactly one chunk, in order, as with :func:`plan_chunks`.

    With fewer than ``min_chunks`` chunks (a short clip is often one or two GOPs), the chunks
    with most sampled frames are split until there are ``min_chunks``: each part still
    decodes from its GOP's keyframe, so the frames before a later part are decoded twice, and
    in return more workers (and the embed stage) get work sooner.
    """
    if frame_step < 1 or chunk_size < 1:
        raise ValueError("frame_step and chunk_size must be at least 1")
    bounds = [*index.keys, index.frame_count]
    groups: list[list[int]] = []  # GOP numbers per chunk
    count = 0
    for gop in range(len(index.keys)):
        sampled = len(sampled_frames(bounds[gop], bounds[gop + 1], frame_step))
        if not sampled:  # nothing to decode here: the reader skips it, whichever chunk holds it
            if groups:
                groups[-1].append(gop)
            continue
        # Close the chunk when this GOP would take it further from chunk_size than it is.
        if not groups or abs(count + sampled - chunk_size) > abs(count - chunk_size):
            groups.append([])
            count = 0
        groups[-1].append(gop)
        count += sampled
    parts: list[tuple[int, int, int]] = []  # (start, stop, first GOP)
    for n, gops in enumerate(groups):
        stop = bounds[groups[n + 1][0]] if n + 1 < len(groups) else index.frame_count
        parts.append((bounds[gops[0]], stop, gops[0]))
    parts = _split_parts(parts, frame_step, min_chunks)
    return [
        Chunk(seq=seq, start=start, stop=stop, key=index.keys[gop], key_pts=index.key_pts[gop])
        for seq, (start, stop, gop) in enumerate(parts)
    ]


def _split_parts(parts: list[tuple[int, int, int]], step: int, min_chunks: int) -> list[tuple[int, int, int]]:
    """Halve the part with most sampled frames until there are ``min_chunks`` parts (or none has 2)."""
    parts = list(parts)
    while len(parts) < min_chunks:
        sizes = [len(sampled_frames(a, b, step)) for a, b, _ in parts]
        biggest = max(range(len(parts)), key=sizes.__getitem__) if parts else 0
        if not parts or sizes[biggest] < 2:
            break
        start, stop, gop = parts[biggest]
        frames = sampled_frames(start, stop, step)
        middle = frames[len(frames) // 2]
        parts[biggest : biggest + 1] = [(start, middle, gop), (middle, stop, gop)]
    return parts


@dataclass(frozen=True)
class Plan:
    """How a run's video is cut: the decoder its chunks are planned for, and the chunks."""

    decoder: str  # 'pyav' (keyframe chunks) or 'opencv' (frame ranges)
    frame_count: int
    chunks: list[Chunk]


def plan(
    info: VideoInfo,
    decoder: str,
    frame_step: int,
    chunk_size: int,
    min_chunks: int = 1,
    cache_dir: Path | None = None,
) -> Plan:
    """Plan a run's chunks for ``--decoder``: keyframes where the file can be indexed (``auto``,
    ``pyav``), else the seed's frame ranges (``opencv``, or ``auto`` on a file PyAV cannot index).

    With keyframes, the frame count is the number of frames the stream shows (exact, from the
    packets) rather than the container's announcement that OpenCV reports, which also counts
    frames an edit list hides; where the announcement exceeds even the packets (a truncated
    file), it is kept, and the missing frames are planned so that they are reported unreadable.
    """
    if decoder in ("auto", "pyav"):
        local = local_copy(info.path, cache_dir) if is_url(info.path) else info.path
        index = scan_keyframes(local)
        if index is not None:
            chunks = plan_keyframe_chunks(index, frame_step, chunk_size, min_chunks)
            if info.frame_count <= index.packets:
                return Plan("pyav", index.frame_count, chunks)
            # The container announces frames the file does not hold (truncated): plan them too,
            # so their sampled frames are counted as unreadable and the user hears of it.
            tail = sampled_frames(index.frame_count, info.frame_count, frame_step)
            if tail:
                last = Chunk(
                    seq=len(chunks),
                    start=tail[0],
                    stop=info.frame_count,
                    key=index.keys[-1],
                    key_pts=index.key_pts[-1],
                )
                chunks = [*chunks, last]
            return Plan("pyav", info.frame_count, chunks)
        if decoder == "pyav":
            raise FacepipeError(
                f"--decoder pyav cannot index the keyframes of {info.path} (no timestamps, or a format "
                "PyAV cannot read); use --decoder opencv"
            )
    return Plan("opencv", info.frame_count, plan_chunks(info.frame_count, frame_step, chunk_size))


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
        self, path: str, chunk: Chunk, step: int, decode_threads: int = 1, cache_dir: Path | None = None
    ) -> None:
        self.path = str(local_copy(path, cache_dir)) if is_url(path) else path
        self.chunk = chunk
        self.step = step
        self.decode_threads = decode_threads
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
        self, path: str, chunk: Chunk, step: int, decode_threads: int = 1, cache_dir: Path | None = None
    ) -> None:
        if chunk.key is None or chunk.key_pts is None:
            raise ValueError("a KeyframeReader needs a chunk planned on keyframes")
        super().__init__(path, chunk, step, decode_threads, cache_dir)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        chunk = self.chunk
        assert chunk.key is not None and chunk.key_pts is not None
        decoder = _open_decoder(self.path, self.decode_threads)
        before = decoder.grabbed
        try:
            yield from decoder.frames(chunk.key, chunk.key_pts, chunk.frames(self.step))
        except BaseException:  # an error or an abandoned iteration: never reuse that decoder
            _close_decoder()
            raise
        finally:
            self.grabbed = decoder.grabbed - before


_decoders = threading.local()


def _open_decoder(path: str, threads: int) -> KeyframeDecoder:
    """This thread's open decoder for ``path`` (the same file: same size and modification time)."""
    stat = os.stat(path)
    key = (path, threads, stat.st_size, stat.st_mtime_ns)
    held = getattr(_decoders, "held", None)
    if held is not None and held[0] == key:
        return held[1]
    _close_decoder()
    decoder = KeyframeDecoder(path, threads)
    _decoders.held = (key, decoder)
    return decoder


def _close_decoder() -> None:
    held = getattr(_decoders, "held", None)
    _decoders.held = None
    if held is not None:
        held[1].close()


def chunk_reader(
    path: str, chunk: Chunk, step: int, decode_threads: int = 1, cache_dir: Path | None = None
) -> ChunkReader | KeyframeReader:
    """The reader a chunk was planned for: keyframes (PyAV) or a frame range (OpenCV)."""
    if chunk.key is not None:
        return KeyframeReader(path, chunk, step, decode_threads, cache_dir)
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
