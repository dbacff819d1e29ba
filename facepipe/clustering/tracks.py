"""Face tracks within shots: each face continues a face of the previous sampled frame, or starts
a track. Online, in the writer's video order; the final pass then clusters tracks, not faces.

A track is one person's face through consecutive sampled frames of one shot, so its faces
share one identity (must-link) even where a single face is too turned, dark or blurred for
its embedding to say who it is. The rule (each constant swept offline on every label set and
chosen on a plateau where every clean set is perfect; ``bench/accuracy.py`` scores it):

* a cut (:func:`facepipe.clustering.shots.is_cut`), a gap in the sampled frames (a lost or unreadable
  chunk) or the start of the run ends every track;
* otherwise a face may continue a track whose last face is in the previous processed sampled
  frame, when their boxes overlap (IoU) by at least :data:`IOU_MIN` and their embeddings agree
  by at least :data:`SIM_MIN` (strict tier: above every different-person cosine measured), or
  when the boxes overlap strongly (:data:`IOU_STRONG`) and the embeddings agree at least a
  little (:data:`SIM_WEAK`: the second tier, which keeps a profile, a blurred or a dark face
  in its track). The second tier needs both frames lit (thumbnail mean >= :data:`LUMA_MIN`):
  between near-black frames the cut test is blind;
* pairs are taken greedily, highest IoU first (ties: higher cosine, lower face index, lower
  track), each face and each track at most once; other faces start new tracks.

Track ids are consecutive in founding order, and everything depends only on the ordered
frames, boxes, embeddings and signatures: the same for any number of workers and any timing.
The writer keeps a :class:`Tracker` per run and stores it in Redis with each chunk, in the
same transaction (:meth:`Tracker.to_record`).
"""

from __future__ import annotations

import base64

import numpy as np

from facepipe.clustering.boxes import iou_matrix
from facepipe.clustering.shots import is_cut
from facepipe.records import DIM, TrackStateRecord, encode_array

IOU_MIN = 0.3
SIM_MIN = 0.4
IOU_STRONG = 0.5
SIM_WEAK = 0.15
LUMA_MIN = 12.0
#: the second tier needs one of the two faces poorly seen (raw ArcFace norm below this): two
#: clearly seen faces that disagree are two people, whatever their boxes say
WEAK_NORM = 21.0


def link(
    boxes: np.ndarray,
    embeddings: np.ndarray,
    prev_boxes: np.ndarray,
    prev_embeddings: np.ndarray,
    second_tier: bool = True,
    norms: np.ndarray | None = None,
    prev_norms: np.ndarray | None = None,
) -> np.ndarray:
    """For each face, the index of the previous face it continues, or -1 (see the module rule).

    ``norms``/``prev_norms`` (raw ArcFace norms) limit the second tier to pairs where one face
    is poorly seen; without them every pair may use it.
    """
    out = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) == 0 or len(prev_boxes) == 0:
        return out
    ious = iou_matrix(boxes, prev_boxes)
    sims = np.asarray(embeddings, np.float32) @ np.asarray(prev_embeddings, np.float32).T
    ok = (ious >= IOU_MIN) & (sims >= SIM_MIN)
    if second_tier:
        weak = (ious >= IOU_STRONG) & (sims >= SIM_WEAK)
        if norms is not None and prev_norms is not None:
            weak &= np.minimum(np.asarray(norms)[:, None], np.asarray(prev_norms)[None, :]) < WEAK_NORM
        ok |= weak
    candidates = sorted(
        (-float(ious[i, j]), -float(sims[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(ok), strict=True)
    )
    used: set[int] = set()
    for _, _, i, j in candidates:
        if out[i] < 0 and j not in used:
            out[i] = j
            used.add(j)
    return out


class Tracker:
    """The writer's per-run tracking state: the previous sampled frame and its faces' tracks."""

    def __init__(self, frame_step: int, use_cuts: bool = True) -> None:
        self.frame_step = frame_step
        self.use_cuts = use_cuts
        self.last_frame = -1
        self.hist: np.ndarray | None = None
        self.thumb: np.ndarray | None = None
        self.shot = 0
        self.next_track = 0
        self._clear()

    def _clear(self) -> None:
        """No active track (the run's start, after a cut or a gap)."""
        self.boxes = np.zeros((0, 4), np.float32)
        self.embeddings = np.zeros((0, DIM), np.float32)
        self.tracks = np.zeros(0, np.int64)
        #: raw ArcFace norms of the active tracks' last faces (how well each was seen)
        self.norms = np.zeros(0, np.float32)
        #: each active track's provisional online identity (-1: none yet)
        self.identities = np.zeros(0, np.int64)

    def step(
        self,
        frame: int,
        hist: np.ndarray | None,
        thumb: np.ndarray | None,
        boxes: np.ndarray,
        embeddings: np.ndarray,
        skipped: bool = False,
        norms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Apply one sampled frame with its faces (unit embeddings), in video order.

        ``hist``/``thumb`` None means the frame could not be read: it counts as a cut. A
        ``skipped`` frame (the blur gate's: no detection ran) only takes part in the cut
        test; the tracks of the frame before it stay open across it. ``norms`` are the faces'
        raw ArcFace norms (None: unknown, the second tier is then unrestricted). Returns (track per
        face, the continued track's provisional identity per face or -1, whether a shot
        boundary precedes the frame).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        embeddings = np.asarray(embeddings, np.float32).reshape(len(boxes), DIM)
        gap = self.last_frame >= 0 and frame - self.last_frame > self.frame_step
        unreadable = hist is None or thumb is None
        cut = self.last_frame >= 0 and (
            gap
            or unreadable
            or self.hist is None
            or (self.use_cuts and is_cut(self.hist, self.thumb, hist, thumb))  # type: ignore[arg-type]
        )
        if cut:
            self.shot += 1
            self._clear()
        if skipped:
            self.last_frame = frame
            self.hist, self.thumb = (self.hist, self.thumb) if unreadable else (hist, thumb)
            return np.zeros(0, np.int64), np.zeros(0, np.int64), bool(cut)
        lit = (
            not unreadable
            and self.thumb is not None
            and min(float(np.mean(self.thumb)), float(np.mean(thumb))) >= LUMA_MIN  # type: ignore[arg-type]
        )
        norms = np.full(len(boxes), np.nan, np.float32) if norms is None else np.asarray(norms, np.float32)
        known = not (np.isnan(norms).any() or np.isnan(self.norms).any())
        links = link(
            boxes,
            embeddings,
            self.boxes,
            self.embeddings,
            second_tier=lit,
            norms=norms if known else None,
            prev_norms=self.norms if known else None,
        )
        tracks = np.empty(len(boxes), np.int64)
        inherited = np.full(len(boxes), -1, np.int64)
        for i, j in enumerate(links):
            if j >= 0:
                tracks[i], inherited[i] = self.tracks[j], self.identities[j]
            else:
                tracks[i] = self.next_track
                self.next_track += 1
        self.boxes, self.embeddings, self.tracks, self.norms = boxes, embeddings, tracks, norms
        self.identities = inherited.copy()
        self.last_frame = frame
        self.hist, self.thumb = hist, thumb
        return tracks, inherited, bool(cut)

    def set_identity(self, face: int, identity: int) -> None:
        """The provisional identity the writer gave face ``face`` of the last frame (and its track)."""
        self.identities[face] = identity

    def break_tracks(self) -> None:
        """A lost chunk: nothing continues across it (the next frame also sees a gap)."""
        self._clear()
        self.hist = self.thumb = None

    # -- persistence ------------------------------------------------------------------
    def to_record(self) -> TrackStateRecord:
        return TrackStateRecord(
            last_frame=self.last_frame,
            hist=None if self.hist is None else encode_array(self.hist, "<f4"),
            thumb=None if self.thumb is None else encode_array(self.thumb, np.uint8),
            shot=self.shot,
            next_track=self.next_track,
            boxes=self.boxes.astype(float).round(2).tolist(),
            embeddings=encode_array(self.embeddings, "<f4"),
            tracks=self.tracks.tolist(),
            identities=self.identities.tolist(),
            norms=[None if np.isnan(v) else round(float(v), 4) for v in self.norms],
        )

    @classmethod
    def from_record(cls, record: TrackStateRecord, frame_step: int, use_cuts: bool = True) -> Tracker:
        tracker = cls(frame_step, use_cuts)
        tracker.last_frame = record.last_frame
        tracker.shot, tracker.next_track = record.shot, record.next_track
        if record.hist is not None and record.thumb is not None:
            tracker.hist = np.frombuffer(base64.b64decode(record.hist), dtype="<f4").astype(np.float32)
            tracker.thumb = np.frombuffer(base64.b64decode(record.thumb), dtype=np.uint8).reshape(18, 32)
        n = len(record.tracks)
        tracker.boxes = np.array(record.boxes, dtype=np.float32).reshape(n, 4)
        tracker.embeddings = (
            np.frombuffer(base64.b64decode(record.embeddings), dtype="<f4").reshape(n, DIM).astype(np.float32)
            if n
            else np.zeros((0, DIM), np.float32)
        )
        tracker.tracks = np.array(record.tracks, dtype=np.int64)
        tracker.identities = np.array(record.identities, dtype=np.int64)
        tracker.norms = np.array(
            [np.nan if v is None else v for v in record.norms], dtype=np.float32
        ).reshape(n)
        return tracker
