"""Keyframes and decoding from them, with PyAV: the one place facepipe drives FFmpeg directly.

* :func:`scan_keyframes` lists a video's keyframes from its packet headers, without decoding,
  and numbers frames as the decoder shows them (timestamp order, edit lists applied);
* :class:`KeyframeDecoder` decodes chosen frames starting from a keyframe, feeding the decoder
  only what those frames depend on;
* :func:`read_frames` gets any sorted list of frames that way (the report's thumbnails).

The chunk planning and the readers the workers use are in :mod:`facepipe.media.plan` and
:mod:`facepipe.media.readers`. This module needs nothing else of facepipe, so the report can
use it too.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyframeIndex:
    """Where a video's keyframes are, from its packet headers: display index and timestamp."""

    frame_count: int  # frames the stream shows
    keys: tuple[int, ...]  # display index of each keyframe, ascending; keys[0] == 0
    key_pts: tuple[int, ...]  # its timestamp, in the stream's time base
    packets: int = 0  # every packet, shown or discarded (what a container's frame count counts)


def scan_keyframes(path: str | os.PathLike[str]) -> KeyframeIndex | None:
    """List the video stream's keyframes by demuxing packet headers (no decoding).

    A frame's display index is the rank of its timestamp among the packets the decoder
    shows: packets the container marks as discarded (outside an MP4 edit list, such as the
    frames an encoder's B-frame delay puts before time 0) are decoded as references but never
    shown, exactly as OpenCV and the plain loop count them. A keyframe's index is the first
    shown frame at or after it. Returns None where this numbering cannot be trusted, so the
    caller falls back to frame ranges: no PyAV, a file PyAV cannot open, packets without
    timestamps or with duplicate ones, or no keyframe at or before the first shown frame.
    """
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            shown: list[int] = []
            keys: list[int] = []
            stamps: list[int] = []
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.pts is None:
                    return None
                stamps.append(packet.pts)
                if not packet.is_discard:
                    shown.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        log.info("cannot index keyframes of %s: %s", path, exc)
        return None
    shown.sort()
    if not shown or len(set(shown)) != len(shown) or not keys or min(keys) > shown[0]:
        return None
    # One keyframe per display index: the latest one, which needs the least decoding.
    by_index = {bisect.bisect_left(shown, pts): pts for pts in sorted(set(keys))}
    by_index = {n: pts for n, pts in sorted(by_index.items()) if n < len(shown)}
    return KeyframeIndex(len(shown), tuple(by_index), tuple(by_index.values()), len(stamps))


class KeyframeDecoder:
    """Decodes chosen frames of one video starting from keyframes (PyAV), as little as they need.

    For each request (a keyframe and the wanted frames after it, :meth:`frames`) it seeks to
    the keyframe and buffers the packets the wanted frames can depend on (compressed, a few
    hundred KB), numbers them by timestamp, then feeds the decoder only what they need:

    * GOPs with no wanted frame are not fed at all (with all-intra video, that is every
      frame but the wanted ones), and a GOP's frames after its last wanted one are not fed;
    * a packet that is not wanted is decoded with ``skip_frame = NONREF``: a frame no other
      frame refers to is dropped by the decoder before any work, a reference frame is
      decoded as usual (so the wanted frames' pixels do not change);
    * only wanted frames are converted to BGR;
    * after the last wanted frame's packet, the decoder is drained rather than fed more.

    ``grabbed`` counts the frames the decoder produced (decoded frames; skipped ones are not).
    """

    #: packets demuxed past the last wanted frame's display position: a frame can be coded up
    #: to 16 frames after frames it is displayed before (H.264/HEVC's deepest reordering)
    LOOKAHEAD = 32

    def __init__(self, path: str, threads: int = 1, hwaccel: str | None = None) -> None:
        self.path = path
        self.container = open_container(path, hwaccel)
        self.stream = self.container.streams.video[0]
        self.context = self.stream.codec_context
        # PyAV's default is FFmpeg's thread count (one per core): a worker process decodes on
        # one thread unless told otherwise, since the parallelism comes from processes.
        self.context.thread_type = "AUTO" if threads != 1 else "NONE"
        self.context.thread_count = threads
        self.grabbed = 0
        self._used = False

    def __enter__(self) -> KeyframeDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def frames(self, key: int, key_pts: int, wanted: range | list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, bgr)`` for each of the sorted ``wanted`` frames, decoding from the keyframe
        shown as frame ``key`` (timestamp ``key_pts``). Stops early at the end of the stream."""
        if not wanted:
            return
        if self._used:
            self.context.flush_buffers()  # a drained decoder takes no new packets until flushed
        self._used = True
        packets = self._packets(key_pts, wanted[-1] - key + 1 + self.LOOKAHEAD)
        if not packets:
            return
        index = self._numbers(packets, key, key_pts)
        keep = set(wanted)
        for packet, decode in self._feed_plan(packets, index, keep):
            self.context.skip_frame = "DEFAULT" if decode else "NONREF"
            for frame in self._decode(packet):
                yield from self._keep(frame, index, keep)
        self.context.skip_frame = "DEFAULT"
        for frame in self._decode(None):  # drain the frames still held for reordering
            yield from self._keep(frame, index, keep)

    #: where to seek when the demuxer overshoots the keyframe, in seconds before it; ``None``
    #: is the start of the file. MP4 and Matroska seek exactly through their index, MPEG-TS
    #: (broadcast recordings) by bisecting the file for timestamps, which can land after it.
    SEEK_BACK_S = (0.0, 2.0, 20.0, None)

    def _packets(self, key_pts: int, limit: int) -> list[Any]:
        """Up to ``limit`` packets from the keyframe on, in decode order."""
        for back in self.SEEK_BACK_S:
            if back is None:
                self.container.seek(0, backward=True, any_frame=False)  # the file's start
            else:
                target = key_pts - round(back / float(self.stream.time_base))
                self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
            packets = self._walk_to(key_pts, limit)
            if packets is not None:
                return packets
            log.debug("seeking %s %s s before timestamp %d overshot its keyframe", self.path, back, key_pts)
        raise OSError(f"cannot seek {self.path} to the keyframe at timestamp {key_pts}")

    def _walk_to(self, key_pts: int, limit: int) -> list[Any] | None:
        """Demux forward from where a seek landed to the keyframe at ``key_pts`` and take up to
        ``limit`` packets from it; None when the seek landed after it."""
        packets = []
        for packet in self.container.demux(self.stream):
            if packet.size == 0 or packet.pts is None:
                continue
            if not packets and not (packet.is_keyframe and packet.pts == key_pts):
                if packet.pts > key_pts and packet.is_keyframe:
                    return None  # a later GOP: the seek overshot
                continue  # before our keyframe (or a leading picture of it): walk on
            packets.append(packet)
            if len(packets) >= limit:
                break
        return packets or None  # the end of the file without reaching it: the seek overshot

    @staticmethod
    def _numbers(packets: list[Any], key: int, key_pts: int) -> dict[int, int]:
        """Display index of every buffered packet's frame: the keyframe's index plus its rank.

        Frames shown before the keyframe (an open GOP's leading pictures) get no number: they
        belong to the GOP before. Nor do discarded ones (see :func:`scan_keyframes`).
        """
        stamps = sorted(p.pts for p in packets if p.pts >= key_pts and not p.is_discard)
        return {pts: key + i for i, pts in enumerate(stamps)}

    @staticmethod
    def _feed_plan(packets: list[Any], index: dict[int, int], wanted: set[int]) -> list[tuple[Any, bool]]:
        """``(packet, decode it fully?)`` in decode order: what the wanted frames need.

        GOPs are keyframe to keyframe, in decode order. A GOP is fed up to its last wanted
        packet (in decode order: every frame a wanted one refers to comes before it, and the
        next GOP's keyframe refers to nothing), or whole when the next GOP's leading pictures
        (shown before its keyframe, an open GOP) are wanted, since they refer back into it; a
        GOP with neither is not fed at all.
        """
        gops: list[list[int]] = []
        for n, packet in enumerate(packets):
            if packet.is_keyframe or not gops:
                gops.append([])
            gops[-1].append(n)
        plan = []
        for g, gop in enumerate(gops):
            hits = [k for k, n in enumerate(gop) if index.get(packets[n].pts) in wanted]
            upto = hits[-1] if hits else -1
            if g + 1 < len(gops):
                key_pts = packets[gops[g + 1][0]].pts
                if any(index.get(packets[n].pts) in wanted and packets[n].pts < key_pts for n in gops[g + 1]):
                    upto = len(gop) - 1
            plan += [(packets[n], index.get(packets[n].pts) in wanted) for n in gop[: upto + 1]]
        return plan

    def _decode(self, packet: Any) -> list[Any]:
        import av

        try:
            frames = self.context.decode(packet)
        except av.error.InvalidDataError:  # a damaged packet: the frames it held are unreadable
            return []
        self.grabbed += len(frames)
        return frames

    @staticmethod
    def _keep(frame: Any, index: dict[int, int], wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        number = index.get(frame.pts)
        if number in wanted:
            yield number, frame.to_ndarray(format="bgr24")


def open_container(path: str, hwaccel: str | None = None) -> Any:
    """``av.open(path)``, its video decoded on ``hwaccel`` (``cuda``: NVDEC, through FFmpeg's
    hwaccel in PyAV) where such a device can be created, else in software with one log line.

    H.264 and HEVC decoding is bit-exact by the standard, so the frames are the software
    decoder's; their BGR conversion starts from NV12 instead of YUV420P, which
    ``scripts/gpu-check.sh`` compares frame by frame on a machine with a GPU. ``skip_frame``
    still applies (before the hardware sees a slice)."""
    import av

    if hwaccel:
        from av.codec.hwaccel import HWAccel

        try:
            container = av.open(path, hwaccel=HWAccel(hwaccel, allow_software_fallback=True))
            container.streams.video[0].codec_context.open(strict=False)  # creates the device now
            return container
        except Exception as exc:  # noqa: BLE001 - no driver, no device, a codec it cannot do
            log.warning("hardware decoding (%s) unavailable, decoding on the CPU: %s", hwaccel, exc)
    return av.open(path)


def read_frames(path: str, indices: list[int], threads: int = 0) -> Iterator[tuple[int, np.ndarray]] | None:
    """``(index, bgr)`` for the sorted frame ``indices`` of a video, each GOP decoded as far as its
    wanted frames need (:class:`KeyframeDecoder`, ``threads`` decoder threads: 0 = FFmpeg's
    choice, for a caller that has the cores to itself); None when the file cannot be indexed."""
    index = scan_keyframes(path)
    if index is None:
        return None

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        groups: dict[int, list[int]] = {}
        for frame in indices:
            groups.setdefault(bisect.bisect_right(index.keys, frame) - 1, []).append(frame)
        with KeyframeDecoder(path, threads) as decoder:
            for gop, wanted in sorted(groups.items()):
                yield from decoder.frames(index.keys[gop], index.key_pts[gop], wanted)

    return frames()
