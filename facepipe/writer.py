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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from facepipe.identity import IdentityBank
from facepipe.records import ChunkRecord
from facepipe.store import RunStore

log = logging.getLogger(__name__)


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

    def apply_ready(self, store: RunStore, params: dict[str, Any]) -> int:
        """Apply every chunk that is next in line. Returns the number of chunks applied."""
        applied = 0
        while self._apply_next(store, params):
            applied += 1
        return applied

    def _apply_next(self, store: RunStore, params: dict[str, Any]) -> bool:
        next_key = store.key("next")
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
                    record = ChunkRecord.from_json(raw)
                    pipe.multi()
                    saves = _queue_chunk(pipe, store, bank, record, params)
                    pipe.set(next_key, seq + 1)
                    pipe.delete(store.chunk_key(seq))
                    pipe.execute()
                except redis.WatchError:
                    log.info("run %s chunk: another writer committed first; reloading", store.run_id)
                    continue
            self._remember(store.base, _CachedBank(seq + 1, bank))
            _save_crops(store, saves)
            return True

    def _remember(self, base: str, cached: _CachedBank) -> None:
        self._cache[base] = cached
        while len(self._cache) > self.max_cached_runs:
            self._cache.pop(next(iter(self._cache)))


def _queue_chunk(
    pipe: Any, store: RunStore, bank: IdentityBank, record: ChunkRecord, params: dict[str, Any]
) -> list[tuple[Path, bytes]]:
    """Match-or-add every face of the chunk and queue all writes on the MULTI pipeline."""
    stats_key = store.key("stats")
    if record.failed:
        lost = len(range(record.start, record.stop, record.step))
        pipe.rpush(
            store.key("failed"),
            orjson.dumps({"seq": record.seq, "frames": [record.start, record.stop], "reason": record.failed}),
        )
        pipe.hincrby(stats_key, "chunks_failed", 1)
        pipe.hincrby(stats_key, "frames_lost", lost)
        log.warning(
            "run %s: chunk %d (frames %d-%d) lost: %s",
            store.run_id,
            record.seq,
            record.start,
            record.stop - 1,
            record.failed,
        )
        return []

    before = len(bank)
    touched: set[int] = set()
    fps = float(params.get("fps") or 25.0)
    embeddings = record.embedding_matrix()
    saves: list[tuple[Path, bytes]] = []
    save_dir = params.get("save_dir") if params.get("save_images") else None
    for i, face in enumerate(record.faces):
        match = bank.match_or_add(embeddings[i], params["sim_thresh"], params["refine_limit"])
        touched.add(match.identity)
        line = {
            "frame": face["frame"],
            "time_s": round(face["frame"] / fps, 3),
            "bbox": face["bbox"],
            "det_score": face["det_score"],
            "identity": match.identity,
            "similarity": None if match.similarity is None else round(match.similarity, 6),
        }
        pipe.rpush(store.key("faces"), orjson.dumps(line))
        pipe.rpush(store.key("face_emb"), embeddings[i].astype(np.float32).tobytes())
        if save_dir and record.crops:
            name = f"frame_{face['frame']}_{face['index']}.jpg"
            saves.append((Path(save_dir) / str(match.identity) / name, record.crop_jpeg(i)))
    for identity in sorted(touched):
        pipe.hset(
            store.ident_key(identity),
            mapping={
                "embedding": bank.embeddings[identity].tobytes(),
                "centroid": bank.centroids[identity].tobytes(),
                "refine_count": bank.refine_counts[identity],
                "count": bank.counts[identity],
            },
        )
    for name, value in (
        ("frames_read", record.frames_read),
        ("frames_sampled", record.frames_sampled),
        ("frames_blurry", record.frames_blurry),
        ("frames_unreadable", record.frames_unreadable),
        ("frames_lost", record.frames_unreadable),
        ("faces_detected", len(record.faces)),
        ("faces_embedded", len(record.faces)),
        ("faces_saved", len(saves)),
        ("identities", len(bank) - before),
        ("chunks_applied", 1),
    ):
        if value:
            pipe.hincrby(stats_key, name, value)
    for stage, seconds in record.timings.items():  # the workers' own timers, summed per run
        pipe.hincrbyfloat(store.key("timings"), stage, seconds)
    pipe.hset(stats_key, "last_applied_at", int(time.time()))
    return saves


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
            unsaved = len(saves) - i
            store.r.hincrby(store.key("stats"), "faces_saved", -unsaved)
            store.r.hincrby(store.key("stats"), "faces_unsaved", unsaved)
            store.warn(
                f"could not save face crops under {path.parent}: {exc.strerror or exc} "
                "(free disk space or pick another --save-dir)"
            )
            log.error("run %s: cannot save crop %s: %s", store.run_id, path, exc)
            return
