"""The writer: applies chunk results to the run's identities in order, exactly once.

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

*What* a chunk changes is decided by :func:`facepipe.clustering.decide.decide` (the same
decision :func:`facepipe.clustering.run.cluster_records` makes in memory); this module
orders, commits and saves the faces' crops (``--save-images``) once committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from pydantic import ValidationError

from facepipe.clustering.decide import Commit, RunState, decide, new_tracker
from facepipe.clustering.final import FinalIdentities, final_identities
from facepipe.distributed.store import RunStore
from facepipe.inference.align import decode_crop
from facepipe.media.images import encode_jpeg
from facepipe.records import ChunkRecord, RunParams

log = logging.getLogger(__name__)

#: JPEG quality of crops saved with --save-images
SAVED_CROP_QUALITY = 95


@dataclass
class _Cached:
    next_seq: int
    state: RunState


@dataclass
class Writer:
    """Holds a per-run cache of the identity table (and tracker) so each chunk costs one small
    transaction.

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
                    record = read_record(raw, seq)
                    commit = decide(state, record, params)
                    # encoded before the commit: a crop that cannot be encoded fails the attempt
                    # (retried, then the chunk is lost), never a committed chunk's crops
                    saves = crops_to_save(record, commit, params)
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
    tracker = new_tracker(params, store.load_tracker(client))
    return RunState(store.load_identities(client), tracker)


def crops_to_save(record: ChunkRecord, commit: Commit, params: RunParams) -> list[tuple[Path, bytes]]:
    """``--save-images``: each face's crop as JPEG, under its provisional identity's folder
    (``unplaced`` while its track has none); the final pass re-files them
    (:func:`facepipe.app.outputs.sort_saved_crops`)."""
    if not (params.save_images and params.save_dir and record.crops):
        return []
    saves = []
    for face, line, crop in zip(record.faces, commit.lines, record.crops, strict=True):
        folder = str(line.identity) if line.identity >= 0 else "unplaced"
        name = f"frame_{face.frame}_{face.index}.jpg"
        jpeg = encode_jpeg(decode_crop(crop), SAVED_CROP_QUALITY)
        saves.append((Path(params.save_dir) / folder / name, jpeg))
    return saves


def finalise(store: RunStore, params: RunParams | None = None) -> FinalIdentities:
    """The final identities of a finished run in ``store``, by the run's own parameters: what the
    writer persisted, through :func:`facepipe.clustering.final.final_identities`. Changes
    nothing in Redis, so it can run again at any time."""
    params = params or store.params()
    return final_identities(store.faces(), store.face_embeddings(), store.load_identities(), params)


def _save_crops(store: RunStore, saves: list[tuple[Path, bytes]]) -> None:
    """Write crops after the commit, into the faces' provisional identity folders (the final
    pass re-files them, :func:`facepipe.app.outputs.sort_saved_crops`); then count them, so the
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
