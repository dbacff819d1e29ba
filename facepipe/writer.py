"""The writer: applies chunk results to the identity bank in order, exactly once.

Chunks finish in any order, are retried and are sometimes delivered twice, yet online
clustering depends on arrival order. So the writer never applies "whatever arrived":
it applies chunk ``K:next`` and only that, then ``next + 1``, and so on, until the next
one is not in yet. Results wait in Redis (not in a worker's memory), so a writer can
crash and restart, or a second writer can appear by mistake, without losing anything.

Atomicity uses an optimistic Redis transaction (``WATCH K:next`` ... ``MULTI``/``EXEC``):
``K:next`` is a fencing token. Every commit changes it, so if two writers race on
the same chunk, the second ``EXEC`` aborts and that writer reloads and finds nothing
left to do. We chose WATCH over a Lua script because the match-or-add math stays in
tested Python/numpy (Lua has no fast vector maths), and over a lock with a fencing
token because the transaction *is* the fencing check: no lease to expire mid-write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from pydantic import ValidationError

from facepipe.contracts import ChunkRecord, FaceLine, RunParams
from facepipe.faces import decode_crop
from facepipe.identity import IdentityBank, Match
from facepipe.images import encode_jpeg
from facepipe.quality import is_suspect
from facepipe.shots import decode_signature
from facepipe.store import Commit, RunStore
from facepipe.tracks import Tracker

log = logging.getLogger(__name__)

#: JPEG quality of crops saved with --save-images
SAVED_CROP_QUALITY = 95


@dataclass
class RunState:
    """What the writer decides from: the run's online identities and, with tracks, its tracker."""

    bank: IdentityBank
    tracker: Tracker | None


@dataclass
class _Cached:
    next_seq: int
    state: RunState


@dataclass
class Writer:
    """Holds a per-run cache of the bank (and tracker) so each chunk costs one small transaction.

    The cache is only trusted when its ``next_seq`` equals the one in Redis (nobody
    else has written since); otherwise the state is reloaded from Redis. A season keeps
    several runs in flight, so the cache holds a few of them.
    """

    max_cached_runs: int = 16
    _cache: dict[str, _Cached] = field(default_factory=dict)

    def apply_ready(self, store: RunStore, params: RunParams) -> int:
        """Apply every chunk that is next in line. Returns the number of chunks applied."""
        applied = 0
        while self._apply_next(store, params):
            applied += 1
        return applied

    def _apply_next(self, store: RunStore, params: RunParams) -> bool:
        next_key = store.next_key
        while True:
            with store.r.pipeline() as pipe:
                try:
                    pipe.watch(next_key)
                    seq = int(pipe.get(next_key) or 0)
                    raw = pipe.get(store.chunk_key(seq))
                    if raw is None:
                        return False
                    cached = self._cache.get(store.base)
                    fresh = cached is not None and cached.next_seq == seq
                    state = cached.state if fresh else load_state(store, params, pipe)
                    self._cache.pop(store.base, None)  # the state is mutated below
                    commit, saves = decide(state, read_record(raw, seq), params)
                    pipe.multi()
                    store.queue_commit(pipe, commit)
                    pipe.execute()
                except redis.WatchError:
                    log.info("run %s chunk: another writer committed first; reloading", store.run_id)
                    continue
            self._remember(store.base, _Cached(seq + 1, state))
            if commit.lost:
                log.warning(
                    "run %s: chunk %d (frames %d-%d) lost: %s",
                    store.run_id,
                    seq,
                    commit.lost["frames"][0],
                    commit.lost["frames"][1] - 1,
                    commit.lost["reason"],
                )
            _save_crops(store, saves)
            return True

    def give_up_next(self, store: RunStore, reason: str) -> bool:
        """Replace the result of the chunk next in line, which cannot be applied, by a lost record.

        The task layer calls this once retries are exhausted, so one bad chunk cannot stall
        a run. Returns False when nothing is waiting.
        """
        seq = store.next_seq()
        raw = store.r.get(store.chunk_key(seq))
        if raw is None:
            return False
        stored = read_record(raw, seq)
        store.put_chunk(ChunkRecord.lost(seq, stored.start, stored.stop, stored.step, reason))
        self._cache.pop(store.base, None)
        return True

    def _remember(self, base: str, cached: _Cached) -> None:
        self._cache[base] = cached
        while len(self._cache) > self.max_cached_runs:
            self._cache.pop(next(iter(self._cache)))


def read_record(raw: bytes, seq: int) -> ChunkRecord:
    """The stored result of chunk ``seq``; one that cannot be read becomes a lost chunk.

    A stored result is written by our own workers, so this only happens with a damaged
    store or a foreign writer; the run moves past it instead of stalling.
    """
    try:
        return ChunkRecord.model_validate_json(raw)
    except ValidationError as exc:
        reason = f"stored result unreadable: {exc.errors()[0]['msg']}"
    try:  # keep the frame range when it is still legible, so the lost frames are counted
        data = orjson.loads(raw)
        start, stop, step = (int(data[k]) for k in ("start", "stop", "step"))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        start, stop, step = 0, 0, 1
    return ChunkRecord.lost(seq, start, stop, max(1, step), reason)


def load_state(store: RunStore, params: RunParams, client: Any | None = None) -> RunState:
    """The run's state from Redis (``client`` may be the WATCHing pipeline)."""
    tracker = None
    if params.clustering == "tracks":
        record = store.load_tracker(client)
        tracker = (
            Tracker(params.frame_step, params.shot_cuts)
            if record is None
            else Tracker.from_record(record, params.frame_step, params.shot_cuts)
        )
    return RunState(store.load_bank(client), tracker)


def decide(
    state: RunState, record: ChunkRecord, params: RunParams
) -> tuple[Commit, list[tuple[Path, bytes]]]:
    """Place every face of the chunk (mutating ``state``); return what to commit and the crops
    to save once it is committed.

    Without tracks every face is matched or added by itself (the seed's rule). With tracks
    the chunk's sampled frames are stepped through in order: a face that continues a track
    takes its track's identity; the first non-suspect face of a track is matched or added;
    suspect faces of a track without an identity wait (identity -1) for the final pass.
    """
    bank, tracker = state.bank, state.tracker
    commit = Commit(seq=record.seq)
    if record.failed:
        commit.lost = {"seq": record.seq, "frames": [record.start, record.stop], "reason": record.failed}
        commit.stats = {"chunks_failed": 1, "frames_lost": len(record.frames())}
        if tracker is not None:
            tracker.break_tracks()
            commit.tracker = tracker.to_record()
        return commit, []

    before = len(bank)
    embeddings = record.embedding_matrix()
    if tracker is None:
        placed = [(bank.match_or_add(e, params.sim_thresh, params.refine_limit), None) for e in embeddings]
        cuts = suspects = 0
    else:
        placed, cuts, suspects = _place_along_tracks(tracker, bank, record, embeddings, params)
        commit.tracker = tracker.to_record()
    saves: list[tuple[Path, bytes]] = []
    save_dir = params.save_dir if params.save_images and record.crops else None
    for i, (face, (match, track)) in enumerate(zip(record.faces, placed, strict=True)):
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
            )
        )
        if save_dir:
            name = f"frame_{face.frame}_{face.index}.jpg"
            jpeg = encode_jpeg(decode_crop(record.crops[i]), SAVED_CROP_QUALITY)
            folder = str(match.identity) if match.identity >= 0 else "unplaced"
            saves.append((Path(save_dir) / folder / name, jpeg))
    touched = {match.identity for match, _ in placed if match.identity >= 0}
    commit.embeddings = embeddings
    commit.identities = {identity: bank.row(identity) for identity in touched}
    commit.stats = {
        "cuts": cuts,
        "faces_suspect": suspects,
        "frames_read": record.frames_read,
        "frames_sampled": record.frames_sampled,
        "frames_blurry": record.frames_blurry,
        "frames_unreadable": record.frames_unreadable,
        "frames_lost": record.frames_unreadable,
        "faces_detected": len(record.faces),
        "faces_embedded": len(record.faces),
        "identities": len(bank) - before,
        "chunks_applied": 1,
    }
    commit.timings = record.timings
    return commit, saves


def _place_along_tracks(
    tracker: Tracker, bank: IdentityBank, record: ChunkRecord, embeddings: np.ndarray, params: RunParams
) -> tuple[list[tuple[Match, tuple[int, int, bool]]], int, int]:
    """Step the tracker through the chunk's sampled frames and give each face its provisional
    identity; returns (match and (track, shot, suspect) per face, cuts, suspect faces)."""
    placed: list[tuple[Match, tuple[int, int, bool]] | None] = [None] * len(record.faces)
    by_frame: dict[int, list[int]] = {}
    for i, face in enumerate(record.faces):
        by_frame.setdefault(face.frame, []).append(i)
    cuts = suspects = 0
    for signature in record.signatures:
        hist, thumb = decode_signature(signature.hist, signature.thumb)
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
                match = bank.join(int(inherited[k]), embeddings[i], params.refine_limit, refine=not suspect)
            elif suspect:
                match = Match(-1, None)  # waits for a good face of its track, or the final pass
            else:
                match = bank.match_or_add(embeddings[i], params.sim_thresh, params.refine_limit)
            tracker.set_identity(k, match.identity)
            placed[i] = (match, (int(tracks[k]), tracker.shot, bool(suspect)))
    if any(p is None for p in placed):
        raise ValueError("a face's frame has no signature in the chunk record")
    return placed, cuts, suspects  # type: ignore[return-value]


def _save_crops(store: RunStore, saves: list[tuple[Path, bytes]]) -> None:
    """Write crops after the commit, into the faces' provisional identity folders (the final
    pass re-files them, :func:`facepipe.outputs.sort_saved_crops`); then count them, so the
    dispatcher knows when every crop is on disk. File names are deterministic, so a replay
    overwrites.

    A full or unwritable disk does not stop the run (the identities are already safe in
    Redis): the crops that could not be written are counted and the reason reported.
    """
    if not saves:
        return
    for i, (path, data) in enumerate(saves):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)
            store.count_crops(saved=i, unsaved=len(saves) - i)
            store.warn(
                f"could not save face crops under {path.parent}: {exc.strerror or exc} "
                "(free disk space or pick another --save-dir)"
            )
            log.error("run %s: cannot save crop %s: %s", store.run_id, path, exc)
            return
    store.count_crops(saved=len(saves), unsaved=0)
