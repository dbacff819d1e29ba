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

import orjson
import redis
from pydantic import ValidationError

from facepipe.contracts import ChunkRecord, FaceLine, RunParams
from facepipe.faces import decode_crop
from facepipe.identity import IdentityBank
from facepipe.images import encode_jpeg
from facepipe.store import Commit, RunStore

log = logging.getLogger(__name__)

#: JPEG quality of crops saved with --save-images
SAVED_CROP_QUALITY = 95


@dataclass
class _CachedBank:
    next_seq: int
    bank: IdentityBank


@dataclass
class Writer:
    """Holds a per-run cache of the bank so each chunk costs one small transaction.

    The cache is only trusted when its ``next_seq`` equals the one in Redis (nobody
    else has written since); otherwise the bank is reloaded from Redis.
    """

    max_cached_runs: int = 4
    _cache: dict[str, _CachedBank] = field(default_factory=dict)

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
                    bank = cached.bank if fresh else store.load_bank(pipe)
                    self._cache.pop(store.base, None)  # the bank is mutated below
                    commit, saves = decide(bank, read_record(raw, seq), params)
                    pipe.multi()
                    store.queue_commit(pipe, commit)
                    pipe.execute()
                except redis.WatchError:
                    log.info("run %s chunk: another writer committed first; reloading", store.run_id)
                    continue
            self._remember(store.base, _CachedBank(seq + 1, bank))
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

    def _remember(self, base: str, cached: _CachedBank) -> None:
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


def decide(
    bank: IdentityBank, record: ChunkRecord, params: RunParams
) -> tuple[Commit, list[tuple[Path, bytes]]]:
    """Match-or-add every face of the chunk (mutating ``bank``); return what to commit and
    the crops to save once it is committed."""
    commit = Commit(seq=record.seq)
    if record.failed:
        commit.lost = {"seq": record.seq, "frames": [record.start, record.stop], "reason": record.failed}
        commit.stats = {"chunks_failed": 1, "frames_lost": len(record.frames())}
        return commit, []

    before = len(bank)
    touched: set[int] = set()
    embeddings = record.embedding_matrix()
    saves: list[tuple[Path, bytes]] = []
    save_dir = params.save_dir if params.save_images and record.crops else None
    for i, face in enumerate(record.faces):
        match = bank.match_or_add(embeddings[i], params.sim_thresh, params.refine_limit)
        touched.add(match.identity)
        commit.lines.append(
            FaceLine(
                frame=face.frame,
                time_s=round(face.frame / params.fps, 3),
                bbox=face.bbox,
                det_score=face.det_score,
                identity=match.identity,
                similarity=None if match.similarity is None else round(match.similarity, 6),
            )
        )
        if save_dir:
            name = f"frame_{face.frame}_{face.index}.jpg"
            jpeg = encode_jpeg(decode_crop(record.crops[i]), SAVED_CROP_QUALITY)
            saves.append((Path(save_dir) / str(match.identity) / name, jpeg))
    commit.embeddings = embeddings
    commit.identities = {identity: bank.row(identity) for identity in touched}
    commit.stats = {
        "frames_read": record.frames_read,
        "frames_sampled": record.frames_sampled,
        "frames_blurry": record.frames_blurry,
        "frames_unreadable": record.frames_unreadable,
        "frames_lost": record.frames_unreadable,
        "faces_detected": len(record.faces),
        "faces_embedded": len(record.faces),
        "faces_saved": len(saves),
        "identities": len(bank) - before,
        "chunks_applied": 1,
    }
    commit.timings = record.timings
    return commit, saves


def _save_crops(store: RunStore, saves: list[tuple[Path, bytes]]) -> None:
    """Write crops after the commit; file names are deterministic, so a replay overwrites.

    A full or unwritable disk does not stop the run (the identities are already safe in
    Redis): the crops that could not be written are counted and the reason reported.
    """
    for i, (path, data) in enumerate(saves):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)
            store.count_unsaved(len(saves) - i)
            store.warn(
                f"could not save face crops under {path.parent}: {exc.strerror or exc} "
                "(free disk space or pick another --save-dir)"
            )
            log.error("run %s: cannot save crop %s: %s", store.run_id, path, exc)
            return
