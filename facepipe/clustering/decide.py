"""The writer's decision for one chunk: where each face goes, and what the chunk changes.

:func:`decide` is the match-or-add of the seed (``--clustering seed``/``online``: every face
on its own, :meth:`~facepipe.clustering.identity.IdentityTable.match_or_add`) or, with
``--clustering tracks``, the same along face tracks: the chunk's sampled frames are stepped
through in order (:class:`~facepipe.clustering.tracks.Tracker`), a face that continues a track
takes its track's identity, and suspect faces (:func:`~facepipe.clustering.gate.is_suspect`)
wait for a good face of their track. It mutates the run's :class:`RunState` and returns a
:class:`Commit`, everything the chunk changes, which the distributed writer applies in one
Redis transaction (:meth:`facepipe.distributed.store.RunStore.queue_commit`) and
:func:`facepipe.clustering.run.cluster_records` applies in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepipe.clustering.gate import is_suspect
from facepipe.clustering.identity import IdentityTable, Match
from facepipe.clustering.tracks import Tracker
from facepipe.records import DIM, ChunkRecord, Counters, FaceLine, RunParams, TrackStateRecord
from facepipe.settings import Clustering


@dataclass
class RunState:
    """What the writer decides from: the run's online identities and, with tracks, its tracker."""

    table: IdentityTable
    tracker: Tracker | None

    @classmethod
    def start(cls, params: RunParams) -> RunState:
        """The state before a run's first chunk."""
        return cls(IdentityTable(), new_tracker(params))


def new_tracker(params: RunParams, record: TrackStateRecord | None = None) -> Tracker | None:
    """The run's tracker (``--clustering tracks``), fresh or from its stored state; else None."""
    if params.clustering != Clustering.tracks:
        return None
    if record is None:
        return Tracker(params.frame_step, params.shot_cuts)
    return Tracker.from_record(record, params.frame_step, params.shot_cuts)


@dataclass
class Commit:
    """Everything one writer transaction changes for chunk ``seq``, decided by the writer."""

    seq: int
    lines: list[FaceLine] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), dtype=np.float32))
    #: identity id -> the identity's full row after this chunk
    identities: dict[int, tuple[np.ndarray, np.ndarray, int, int]] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    timings: dict[str, float] = field(default_factory=dict)
    #: set when the chunk was given up on: {"seq", "frames": [start, stop], "reason"}
    lost: dict[str, Any] | None = None
    #: the tracking state after this chunk (``--clustering tracks``)
    tracker: TrackStateRecord | None = None


def decide(state: RunState, record: ChunkRecord, params: RunParams) -> Commit:
    """Place every face of the chunk (mutating ``state``); return what to commit.

    Without tracks every face is matched or added by itself (the seed's rule). With tracks
    the chunk's sampled frames are stepped through in order: a face that continues a track
    takes its track's identity; the first non-suspect face of a track is matched or added;
    suspect faces of a track without an identity wait (identity -1) for the final pass.
    """
    table, tracker = state.table, state.tracker
    commit = Commit(seq=record.seq)
    if record.failed:
        commit.lost = {"seq": record.seq, "frames": [record.start, record.stop], "reason": record.failed}
        commit.counters = Counters(chunks_failed=1, frames_lost=len(record.frames()))
        if tracker is not None:
            tracker.break_tracks()
            commit.tracker = tracker.to_record()
        return commit

    before = len(table)
    embeddings = record.embedding_matrix()
    if tracker is None:
        placed = [(table.match_or_add(e, params.sim_thresh, params.refine_limit), None) for e in embeddings]
        cuts = suspects = 0
    else:
        placed, cuts, suspects = _place_along_tracks(tracker, table, record, embeddings, params)
        commit.tracker = tracker.to_record()
    for face, (match, track) in zip(record.faces, placed, strict=True):
        commit.lines.append(
            FaceLine(
                frame=face.frame,
                time_s=round(face.frame / params.fps, 3),
                bbox=face.bbox,
                det_score=face.det_score,
                identity=match.identity,
                similarity=None if match.similarity is None else round(match.similarity, 6),
                track=None if track is None else track[0],
                shot=None if track is None else track[1],
                suspect=None if track is None else track[2],
                emb_norm=None if track is None else face.emb_norm,
            )
        )
    touched = {match.identity for match, _ in placed if match.identity >= 0}
    commit.embeddings = embeddings
    commit.identities = {identity: table.row(identity) for identity in touched}
    commit.counters = Counters(
        cuts=cuts,
        faces_suspect=suspects,
        frames_read=record.frames_read,
        frames_sampled=record.frames_sampled,
        frames_blurry=record.frames_blurry,
        frames_unreadable=record.frames_unreadable,
        frames_lost=record.frames_unreadable,
        faces_detected=len(record.faces),
        faces_embedded=len(record.faces),
        online_identities=len(table) - before,
        chunks_applied=1,
    )
    commit.timings = record.timings
    return commit


def _place_along_tracks(
    tracker: Tracker, table: IdentityTable, record: ChunkRecord, embeddings: np.ndarray, params: RunParams
) -> tuple[list[tuple[Match, tuple[int, int, bool]]], int, int]:
    """Step the tracker through the chunk's sampled frames and give each face its provisional
    identity; returns (match and (track, shot, suspect) per face, cuts, suspect faces)."""
    placed: list[tuple[Match, tuple[int, int, bool]] | None] = [None] * len(record.faces)
    by_frame: dict[int, list[int]] = {}
    for i, face in enumerate(record.faces):
        by_frame.setdefault(face.frame, []).append(i)
    cuts = suspects = 0
    for signature in record.signatures:
        hist, thumb = signature.arrays()
        faces = by_frame.get(signature.frame, [])
        boxes = np.array([record.faces[i].bbox for i in faces], np.float32).reshape(-1, 4)
        norms = np.array(
            [np.nan if record.faces[i].emb_norm is None else record.faces[i].emb_norm for i in faces],
            np.float32,
        )
        tracks, inherited, cut = tracker.step(
            signature.frame, hist, thumb, boxes, embeddings[faces], skipped=signature.skipped, norms=norms
        )
        cuts += cut
        for k, i in enumerate(faces):
            face = record.faces[i]
            suspect = params.face_gate and is_suspect(face.crop_mean, face.emb_norm)
            suspects += suspect
            if inherited[k] >= 0:
                match = table.join(int(inherited[k]), embeddings[i], params.refine_limit, refine=not suspect)
            elif suspect:
                match = Match(-1, None)  # waits for a good face of its track, or the final pass
            else:
                match = table.match_or_add(embeddings[i], params.sim_thresh, params.refine_limit)
            tracker.set_identity(k, match.identity)
            placed[i] = (match, (int(tracks[k]), tracker.shot, bool(suspect)))
    if any(p is None for p in placed):
        raise ValueError("a face's frame has no signature in the chunk record")
    return placed, cuts, suspects  # type: ignore[return-value]
