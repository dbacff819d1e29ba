"""Plan a run's video into chunks of sampled frames: whole GOPs, or the seed's frame ranges.

Two ways to plan (``--decoder``), each matched by a reader in :mod:`facepipe.media.readers`:

* **keyframes** (``pyav``, the default where PyAV can index the file): the dispatcher lists
  the keyframes from packet headers (:func:`~facepipe.media.keyframes.scan_keyframes`, no
  decoding) and plans chunks of whole GOPs (:func:`plan_keyframe_chunks`), so a chunk's
  decoding starts at its own keyframe and no frame is decoded by two workers;
* **frame ranges** (``opencv``, the seed's): fixed ranges of ``chunk_size`` sampled frames
  (:func:`plan_chunks`), one OpenCV seek to each range's start. On H.264 with long GOPs each
  seek decodes up to a GOP of frames that the previous chunk's worker decodes too.

Every sampled frame lands in exactly one chunk, in order; a chunk's ``seq`` is the order in
which the writer applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facepipe.errors import FacepipeError
from facepipe.media.fetch import is_url, local_copy
from facepipe.media.keyframes import KeyframeIndex, scan_keyframes
from facepipe.records import Chunk, VideoInfo, sampled_frames


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
