"""Where a run lives in Redis: one key layout, read and written only through this module.

Every key of a run sits under ``PREFIX:run:RUN_ID:``, so runs never see or touch each
other's data, and cleaning up a run is a scan of its own prefix. Nothing here (or
anywhere in facepipe) flushes a database.

Layout (``K = PREFIX:run:RUN_ID``):

==========================  ======  ===========================================================
``PREFIX:runs``             zset    run ids by creation time (``facepipe runs``)
``K:meta``                  hash    video, fps, total chunks, parameters, status
``K:chunk:SEQ``             string  a chunk's result (JSON), waiting for the writer
``K:embedded``              set     chunk seqs whose result is stored (progress)
``K:next``                  string  next chunk seq to apply: the writer's fencing token
``K:stats``                 hash    counters, updated in the same transaction as identities
``K:ident:ID``              hash    ``embedding, centroid, refine_count, count``
``K:faces``                 list    one JSON line per applied face (``faces.jsonl``)
``K:face_emb``              list    float32 bytes of each applied face's embedding
``K:failed``                list    JSON of each chunk given up on, with the reason
``K:timings``               hash    seconds per stage (decode, blur, detect, align, embed), summed
``K:tracks``                string  the writer's tracking state after the last applied chunk (JSON)
``K:warnings``              list    problems to report (unsaved crops, unreadable frames)
``K:runtimes``              set     what ran the models, per stage ("detect: openvino fp32 on CPU")
``K:thumbnails``            hash    every face's thumbnail for the report (JPEG, ~6 KB) by "frame:box"
``K:fault:STAGE:SEQ``       string  test hook only: marks a fault injection as done
==========================  ======  ===========================================================

The writer decides *what* a chunk changes (a :class:`~facepipe.clustering.decide.Commit`);
this module decides where it goes (:meth:`RunStore.queue_commit`), so no other module spells
a key.
"""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis

from facepipe.clustering.identity import IdentityTable
from facepipe.errors import FacepipeError
from facepipe.records import DIM, ChunkRecord, Counters, FaceLine, RunParams, TrackStateRecord

if TYPE_CHECKING:
    from facepipe.clustering.decide import Commit

class UnknownRun(FacepipeError):
    """The run a message or command names has no record under that prefix."""


def connect(url: str, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client for a Celery-style broker URL (``redis://``, ``rediss://``, ``redis+socket://``)."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as exc:
        raise FacepipeError(f"bad broker URL {redact(url)!r}: {exc} (use redis://HOST:PORT/DB)") from None


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def ping(client: redis.Redis, url: str) -> None:
    """Fail fast, in one line, when the broker cannot be reached or refuses us."""
    shown = redact(url)
    has_password = bool(client.connection_pool.connection_kwargs.get("password"))
    try:
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        if not isinstance(exc, redis.AuthenticationError) and "AUTH" not in str(exc).upper():
            raise FacepipeError(f"broker {shown} answered with an error: {exc}") from None
        if has_password:
            raise FacepipeError(
                f"broker {shown} refused the password (put the right one in the URL: "
                "redis://:PASSWORD@HOST:PORT/0)"
            ) from None
        raise FacepipeError(f"broker {shown} needs a password (use redis://:PASSWORD@HOST:PORT/0)") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise FacepipeError(
            f"cannot reach broker {shown}: {exc} "
            "(is Redis running there? omit --broker to use the embedded one)"
        ) from None


class RunStore:
    """Typed access to one run's keys."""

    def __init__(self, client: redis.Redis, prefix: str, run_id: str) -> None:
        self.r = client
        self.prefix = prefix
        self.run_id = run_id
        self.base = f"{prefix}:run:{run_id}"

    # -- key names -------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.base}:{name}"

    @property
    def next_key(self) -> str:
        """The writer's fencing token: the seq of the next chunk to apply."""
        return self.key("next")

    def chunk_key(self, seq: int) -> str:
        return self.key(f"chunk:{seq}")

    def ident_key(self, identity: int) -> str:
        return self.key(f"ident:{identity}")

    # -- run metadata ----------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.r.exists(self.key("meta")))

    def create(self, meta: dict[str, Any]) -> None:
        """Record a new run; refuses to reuse an existing run id.

        ``meta["params"]`` is the run's :class:`RunParams`, which workers read back with
        :meth:`params`.
        """
        if self.r.exists(self.key("meta")):
            raise FacepipeError(f"run {self.run_id} already exists under prefix {self.prefix}")
        fields = {k: v.to_json() if isinstance(v, RunParams) else orjson.dumps(v) for k, v in meta.items()}
        fields["created"] = orjson.dumps(time.time())
        with self.r.pipeline() as pipe:
            pipe.hset(self.key("meta"), mapping=fields)
            pipe.set(self.key("next"), 0)
            pipe.zadd(f"{self.prefix}:runs", {self.run_id: time.time()})
            pipe.execute()

    def meta(self) -> dict[str, Any]:
        raw = self.r.hgetall(self.key("meta"))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def set_meta(self, **values: Any) -> None:
        self.r.hset(self.key("meta"), mapping={k: orjson.dumps(v) for k, v in values.items()})

    def params(self) -> RunParams:
        """The run's parameters as the dispatcher recorded them (not as a message claims)."""
        raw = self.r.hget(self.key("meta"), "params")
        if raw is None:
            raise UnknownRun(f"run {self.run_id} does not exist under prefix {self.prefix}")
        return _parse_params(raw)

    # -- chunk results waiting for the writer ------------------------------------------
    def put_chunk(self, record: ChunkRecord) -> bool:
        """Store a chunk's result for the writer. Idempotent; a result already applied is dropped.

        A later result for the same chunk replaces an earlier one (a give-up record
        replaces a result the writer could not apply).
        """
        if record.seq < self.next_seq():
            return False
        with self.r.pipeline() as pipe:
            pipe.set(self.chunk_key(record.seq), record.to_json())
            pipe.sadd(self.key("embedded"), record.seq)
            pipe.execute()
        return True

    def queue_commit(self, pipe: Any, commit: Commit) -> None:
        """Queue one chunk's changes on a MULTI pipeline, ending with the fencing token's move."""
        stats_key = self.key("stats")
        if commit.lost is not None:
            pipe.rpush(self.key("failed"), orjson.dumps(commit.lost))
        for line, embedding in zip(commit.lines, commit.embeddings, strict=True):
            pipe.rpush(self.key("faces"), line.to_json())
            pipe.rpush(self.key("face_emb"), np.asarray(embedding, dtype=np.float32).tobytes())
        for identity in sorted(commit.identities):
            embedding, centroid, refine_count, count = commit.identities[identity]
            pipe.hset(
                self.ident_key(identity),
                mapping={
                    "embedding": embedding.tobytes(),
                    "centroid": centroid.tobytes(),
                    "refine_count": refine_count,
                    "count": count,
                },
            )
        for name, value in commit.counters.nonzero().items():
            pipe.hincrby(stats_key, name, value)
        for stage, seconds in commit.timings.items():  # the workers' own timers, summed per run
            pipe.hincrbyfloat(self.key("timings"), stage, seconds)
        if commit.tracker is not None:
            pipe.set(self.key("tracks"), commit.tracker.to_json())
        pipe.hset(stats_key, "last_applied_at", int(time.time()))
        pipe.set(self.key("next"), commit.seq + 1)
        pipe.delete(self.chunk_key(commit.seq))

    def count_crops(self, saved: int, unsaved: int) -> None:
        """Crops the writer wrote to disk (or could not) after a commit."""
        with self.r.pipeline() as pipe:
            pipe.hincrby(self.key("stats"), "faces_saved", saved)
            pipe.hincrby(self.key("stats"), "faces_unsaved", unsaved)
            pipe.execute()

    def mark_once(self, name: str) -> bool:
        """True the first time ``name`` is marked for this run (test hooks fire once per run)."""
        return bool(self.r.set(self.key(f"fault:{name}"), 1, nx=True))

    def next_seq(self) -> int:
        return int(self.r.get(self.key("next")) or 0)

    # -- reading results -------------------------------------------------------------
    def counters(self) -> Counters:
        """The run's counters as the writer's commits left them."""
        raw = self.r.hgetall(self.key("stats"))
        return Counters(**{k.decode(): int(v) for k, v in raw.items() if k.decode() in Counters.model_fields})

    def progress(self) -> tuple[int, int]:
        """(chunks whose result is in, chunks applied by the writer)."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.scard(self.key("embedded"))
            pipe.get(self.key("next"))
            embedded, applied = pipe.execute()
        return int(embedded), int(applied or 0)

    def faces(self) -> list[FaceLine]:
        return [FaceLine.model_validate_json(x) for x in self.r.lrange(self.key("faces"), 0, -1)]

    def face_embeddings(self) -> np.ndarray:
        rows = self.r.lrange(self.key("face_emb"), 0, -1)
        if not rows:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([np.frombuffer(x, dtype=np.float32) for x in rows])

    def timings(self) -> dict[str, float]:
        """Worker seconds per stage over the applied chunks (stages run in parallel processes)."""
        return {k.decode(): round(float(v), 3) for k, v in self.r.hgetall(self.key("timings")).items()}

    def warnings(self) -> list[str]:
        return [x.decode() for x in self.r.lrange(self.key("warnings"), 0, -1)]

    def warn(self, text: str, keep: int = 20) -> None:
        """Record a problem the user must hear about (shown in the summary); keeps the first few."""
        if self.r.llen(self.key("warnings")) < keep:
            self.r.rpush(self.key("warnings"), text)

    def failed(self) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in self.r.lrange(self.key("failed"), 0, -1)]

    def load_tracker(self, client: Any | None = None) -> TrackStateRecord | None:
        """The writer's tracking state (None before the first chunk); ``client`` may be a
        WATCHing pipeline."""
        raw = (client or self.r).get(self.key("tracks"))
        return None if raw is None else TrackStateRecord.model_validate_json(raw)

    def keep_thumbnails(self, thumbnails: dict[str, bytes]) -> None:
        """Keep faces' thumbnails for the report (by :func:`facepipe.records.face_key`); idempotent."""
        if thumbnails:
            self.r.hset(self.key("thumbnails"), mapping=thumbnails)

    def thumbnails(self, keys: list[str]) -> dict[str, bytes]:
        """The kept thumbnails of these faces (missing ones are left out)."""
        if not keys:
            return {}
        found = self.r.hmget(self.key("thumbnails"), keys)
        return {k: v for k, v in zip(keys, found, strict=True) if v}

    def note_runtime(self, stage: str, runtime: str) -> None:
        """Record what ran a stage's model (a worker's resolved backend and precision)."""
        self.r.sadd(self.key("runtimes"), f"{stage}: {runtime}")

    def runtimes(self) -> list[str]:
        """Every stage/runtime pair a worker of this run recorded, sorted."""
        return sorted(x.decode() for x in self.r.smembers(self.key("runtimes")))

    def load_identities(self, client: Any | None = None) -> IdentityTable:
        """Rebuild the writer's identity table from its hashes, in one round trip.

        ``client`` may be a WATCHing pipeline: the identity count is read through it, the
        hashes through a plain pipeline (a concurrent writer would also move ``K:next``,
        which the WATCH catches).
        """
        client = client or self.r
        count = int(client.hget(self.key("stats"), "online_identities") or 0)
        table = IdentityTable(capacity=max(64, count))
        with self.r.pipeline(transaction=False) as pipe:
            for identity in range(count):
                pipe.hmget(self.ident_key(identity), "embedding", "centroid", "refine_count", "count")
            rows = pipe.execute()
        for embedding, centroid, refine_count, n in rows:
            table.add(
                np.frombuffer(embedding, dtype=np.float32),
                np.frombuffer(centroid, dtype=np.float32),
                int(refine_count),
                int(n),
            )
        return table

    def delete(self) -> int:
        """Remove every key of this run (never anything else). Returns keys removed."""
        removed = 0
        for key in self.r.scan_iter(match=f"{self.base}:*", count=500):
            removed += self.r.delete(key)
        self.r.zrem(f"{self.prefix}:runs", self.run_id)
        return removed


def list_runs(client: redis.Redis, prefix: str) -> list[str]:
    return [x.decode() for x in client.zrange(f"{prefix}:runs", 0, -1)]


@functools.lru_cache(maxsize=64)
def _parse_params(raw: bytes) -> RunParams:
    """Parsed once per distinct record: every task of a run reads the same bytes."""
    return RunParams.model_validate_json(raw)
