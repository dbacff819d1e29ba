"""Where a run lives in Redis: one key layout, read and written only through this module.

Every key of a run sits under ``PREFIX:run:RUN_ID:``, so runs never see or touch each
other's data, and cleaning up a run is a scan of its own prefix. Nothing here (or
anywhere in facepipe) flushes a database.

Layout (``K = PREFIX:run:RUN_ID``):

==========================  ======  ===========================================================
``PREFIX:runs``             zset    run ids by creation time (``facepipe runs``)
``K:meta``                  hash    video, parameters, chunk count, status, output folder,
                                    season, when outputs were written and when the rest expires
``K:plan``                  string  the run's chunks (JSON), for ``facepipe resume``
``K:sent``                  string  how many chunks (in seq order) the dispatcher handed to the broker
``K:dispatcher``            string  the dispatcher's lease, "HOST MACHINE PID TOKEN", renewed every
                                    few seconds (:data:`LEASE_S` to live): a run whose lease is
                                    gone has no dispatcher
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

**Retention.** Once a run's outputs are written (:meth:`RunStore.retain`), every key but the
small record (:data:`KEPT`: meta, next, stats, failed; about 2 KB) gets a time to live of
``--keep-hours``; ``PREFIX:runs`` keeps the id. A late duplicate message then finds ``K:next``
past its chunk and does nothing. ``facepipe delete`` removes the record too.

The writer decides *what* a chunk changes (a :class:`~facepipe.clustering.decide.Commit`);
this module decides where it goes (:meth:`RunStore.queue_commit`), so no other module spells
a key.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from facepipe.clustering.identity import IdentityTable
from facepipe.errors import FacepipeError
from facepipe.records import DIM, Chunk, ChunkRecord, Counters, FaceLine, RunParams, TrackStateRecord

if TYPE_CHECKING:
    from facepipe.clustering.decide import Commit

#: what stays of a finished run after its retention time: a small record (see "Retention")
KEPT = ("meta", "next", "stats", "failed")
#: the dispatcher's lease: seconds it lives unless renewed, and how often it is renewed
LEASE_S = 20.0
RENEW_S = 5.0
#: the longest pause between two tries to reach a broker that went away
RETRY_CAP_S = 5.0
#: the share of a broker's ``maxmemory`` that facepipe's own data never takes: it stays for
#: Celery's queues and their delivery bookkeeping, so that a full broker pauses the fleet
#: (:class:`RoomGuard`) instead of refusing Celery a write, which kills the worker and loses the
#: message it had just taken
RESERVE_SHARE = 0.1
#: SET KEYS[1] to ARGV[1] unless it already holds a larger number (one round trip, atomic)
_RAISE_TO = """
local now = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > now then redis.call('SET', KEYS[1], ARGV[1]) end
"""


class UnknownRun(FacepipeError):
    """The run a message or command names has no record under that prefix."""


class BrokerDown(FacepipeError):
    """The broker cannot be reached (restarting, network gone)."""


class BrokerFull(FacepipeError):
    """The broker refuses writes: it reached its ``maxmemory`` (with ``noeviction``)."""


#: what a broker outage looks like from redis-py (Celery's own errors are turned into
#: :class:`BrokerDown` by :mod:`facepipe.distributed.bridge`)
DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError, BrokerDown, ConnectionError, TimeoutError)


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is Redis refusing a write for want of memory."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (BrokerFull, redis.exceptions.OutOfMemoryError)) or (
            isinstance(exc, redis.ResponseError) and str(exc).startswith("OOM ")
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # type: ignore[assignment]
    return False


#: what to do about a full broker, for every message that says so
FULL_REMEDY = (
    "free memory with 'facepipe runs' and 'facepipe delete RUN_ID', keep finished runs for less "
    "(--keep-hours), or raise Redis's maxmemory (REDIS_MAXMEMORY in compose/.env)"
)


def full_message(url: str, client: redis.Redis | None = None, then: str = "") -> str:
    """The one line that says the broker is full, how full, and what to do about it (``then``:
    what to do next)."""
    used = ""
    if client is not None:
        try:
            memory = broker_memory(client)
            if memory.limit:
                used = (
                    f" ({memory.used / 1e6:.0f} MB used of maxmemory {memory.limit / 1e6:.0f} MB, the last "
                    f"{RESERVE_SHARE:.0%} of it left to the queues)"
                )
        except (redis.RedisError, OSError):
            pass
    then = then or "; then 'facepipe resume RUN_ID' finishes a run"
    return f"the broker {redact(url)} is full{used}: {FULL_REMEDY}{then}"


def connect(
    url: str, timeout: float = 5.0, ride_out: bool = False, tls_ca_certs: Path | str | None = None
) -> redis.Redis:
    """A redis-py client for a Celery-style broker URL (``redis://``, ``rediss://``, ``redis+socket://``).

    ``ride_out``: every command waits for a broker that went away (a restart, a network cut)
    until it is back, retrying with back-off capped at :data:`RETRY_CAP_S`, instead of failing
    (what workers need: their chunk is done once the broker takes it). Otherwise a command
    fails after redis-py's few quick retries and the caller decides (the dispatcher shows that
    it waits, and for how long it may).

    ``rediss://`` verifies the server's certificate against ``tls_ca_certs`` (a CA bundle,
    ``FACEPIPE_TLS_CA_CERTS``), or the system's CAs.
    """
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if ride_out:
        options["retry"] = Retry(EqualJitterBackoff(cap=RETRY_CAP_S, base=0.25), retries=-1)
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required"
        if tls_ca_certs:
            options["ssl_ca_certs"] = str(tls_ca_certs)
    try:
        return redis.Redis.from_url(url, **options)
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
        hint = "is Redis running there? omit --broker to use the embedded one"
        if url.startswith("rediss://") and ("SSL" in str(exc) or "certificate" in str(exc)):
            hint = "is FACEPIPE_TLS_CA_CERTS (--tls-ca-certs) the CA that signed the server's certificate?"
        elif url.startswith("redis://") and ("reset" in str(exc) or "closed by server" in str(exc)):
            hint = "does the server speak TLS? then use rediss://"
        raise FacepipeError(f"cannot reach broker {shown}: {exc} ({hint})") from None


@dataclass(frozen=True)
class BrokerMemory:
    """``INFO``'s view of the broker's memory; ``limit`` 0 means no ``maxmemory``."""

    used: int
    limit: int
    policy: str
    #: how many writes the server has refused for want of memory since it started
    refused: int

    def headroom(self) -> int | None:
        """Bytes facepipe may still add (None: no ``maxmemory``): up to :data:`RESERVE_SHARE` short
        of the limit."""
        return None if not self.limit else int(self.limit * (1 - RESERVE_SHARE)) - self.used

    @property
    def full(self) -> bool:
        """Whether facepipe's data has reached its share of ``maxmemory``."""
        headroom = self.headroom()
        return headroom is not None and headroom <= 0


def broker_memory(client: redis.Redis) -> BrokerMemory:
    """Read-only (works on a full broker too). A server that does not let us read ``INFO`` (an
    ACL) reads as one without a limit."""
    try:
        info = client.info("memory")
    except redis.ResponseError:
        return BrokerMemory(used=0, limit=0, policy="", refused=0)
    try:
        errors = client.info("errorstats")
    except redis.ResponseError:  # a server without INFO errorstats (before Redis 6.2)
        errors = {}
    refused = errors.get("errorstat_OOM", {})
    return BrokerMemory(
        used=int(info.get("used_memory", 0)),
        limit=int(info.get("maxmemory", 0)),
        policy=str(info.get("maxmemory_policy", "")),
        refused=int(refused.get("count", 0)) if isinstance(refused, dict) else 0,
    )


class RoomGuard:
    """Pauses a worker before a chunk while the broker is full (:attr:`BrokerMemory.full`), until
    memory is freed: the fleet waits for the remedy instead of losing work or dying. Reads
    ``INFO memory`` at most five times a second; a broker without ``maxmemory`` costs nothing more."""

    def __init__(self, client: redis.Redis, every_s: float = 0.2) -> None:
        self.client = client
        self.every_s = every_s
        self._memory: BrokerMemory | None = None
        self._read_at = 0.0

    def memory(self) -> BrokerMemory:
        now = time.monotonic()
        if self._memory is None or now - self._read_at >= self.every_s:
            self._memory, self._read_at = broker_memory(self.client), now
        return self._memory

    def wait(self, on_full: Callable[[BrokerMemory], None] | None = None) -> float:
        """Return at once when there is room; else call ``on_full`` once and wait for room.
        Returns the seconds waited."""
        started, delay, told = time.monotonic(), 0.5, False
        while (memory := self.memory()).full:
            if not told and on_full is not None:
                on_full(memory)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_S)
        return time.monotonic() - started


def this_machine() -> str:
    """This host's name and kernel boot, so that a lease can tell a dead local dispatcher."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "-"
    return f"{socket.gethostname()} {boot}"


@dataclass(frozen=True)
class Holder:
    """Who holds a run's dispatcher lease."""

    host: str
    machine: str
    pid: int

    @classmethod
    def parse(cls, raw: bytes | str | None) -> Holder | None:
        if raw is None:
            return None
        parts = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).split()
        if len(parts) < 4 or not parts[2].isdigit():
            return Holder("?", "?", 0)
        return cls(parts[0], f"{parts[0]} {parts[1]}", int(parts[2]))

    def gone(self) -> bool:
        """True when the holder was a process of this machine that no longer exists (a killed
        dispatcher, seen from the same host before its lease runs out)."""
        if self.machine != this_machine():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"


class TakenOver(FacepipeError):
    """Another dispatcher holds the run's lease."""


class Lease:
    """The dispatcher's claim on a run, through redis-py's :class:`~redis.lock.Lock` (``K:dispatcher``):
    at most one dispatcher follows a run, and ``facepipe runs`` tells a run whose dispatcher is
    gone (its lease expired, or its process is gone from this machine) from one being followed."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.lock = store.r.lock(store.key("dispatcher"), timeout=LEASE_S, thread_local=False)
        self.token = f"{this_machine()} {os.getpid()} {secrets.token_hex(4)}"

    def take(self) -> None:
        """Claim the run; a lease of a dispatcher that is gone from this machine is taken over."""
        if self.lock.acquire(blocking=False, token=self.token):
            return
        raw = self.store.r.get(self.lock.name)
        holder = Holder.parse(raw)
        if holder is not None and holder.gone():
            with self.store.r.pipeline() as pipe:  # delete exactly that lease, then claim it
                try:
                    pipe.watch(self.lock.name)
                    if pipe.get(self.lock.name) == raw:
                        pipe.multi()
                        pipe.delete(self.lock.name)
                        pipe.execute()
                except redis.WatchError:
                    pass
            if self.lock.acquire(blocking=False, token=self.token):
                return
            holder = Holder.parse(self.store.r.get(self.lock.name))
        if holder is None and self.lock.acquire(blocking=False, token=self.token):  # it expired meanwhile
            return
        raise TakenOver(
            f"run {self.store.run_id} is followed by another dispatcher ({holder}); "
            f"wait for it, or stop it and run this again"
        )

    def renew(self) -> None:
        """Keep the claim for :data:`LEASE_S` more; claim it again if it lapsed (an outage
        longer than the lease), unless another dispatcher took it meanwhile."""
        try:
            self.lock.reacquire()
        except redis.exceptions.LockError:
            self.take()

    def release(self) -> None:
        try:
            self.lock.release()
        except (redis.exceptions.LockError, *DOWN_ERRORS):
            pass


def holder_of(store: RunStore) -> Holder | None:
    """Who follows the run now (None: nobody, or a process of this machine that is gone)."""
    holder = Holder.parse(store.r.get(store.key("dispatcher")))
    return None if holder is None or holder.gone() else holder


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

    def create(self, meta: dict[str, Any], chunks: list[Chunk] | None = None) -> None:
        """Record a new run (with its planned ``chunks``, for ``facepipe resume``); refuses to
        reuse an existing run id.

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
            if chunks is not None:
                pipe.set(self.key("plan"), orjson.dumps([c.model_dump(exclude_none=True) for c in chunks]))
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

    # -- what the dispatcher planned and sent (``facepipe resume``) -----------------------
    def plan(self) -> list[Chunk]:
        """The chunks the run was planned into (empty for a run recorded without its plan)."""
        raw = self.r.get(self.key("plan"))
        return [] if raw is None else [Chunk.model_validate(c) for c in orjson.loads(raw)]

    def mark_sent(self, count: int) -> None:
        """The first ``count`` chunks (in seq order) are with the broker. Never lowered: a chunk
        sent again does not make those after it unsent."""
        self.r.eval(_RAISE_TO, 1, self.key("sent"), count)

    def sent(self) -> int:
        return int(self.r.get(self.key("sent")) or 0)

    def stored(self) -> set[int]:
        """Seqs of the chunks whose result is stored (applied or waiting for the writer)."""
        return {int(x) for x in self.r.smembers(self.key("embedded"))}

    def is_stored(self, seq: int) -> bool:
        return bool(self.r.sismember(self.key("embedded"), seq))

    # -- retention -------------------------------------------------------------------
    def retain(self, keep_s: float, **record: Any) -> float | None:
        """The outputs are written: every key but the small record (:data:`KEPT`) expires in
        ``keep_s`` seconds (0: kept until ``facepipe delete``). ``record`` goes into the meta
        (where the outputs are, ...). Returns when the keys expire (epoch seconds), or None."""
        kept = {self.key(name).encode() for name in KEPT}
        expires = time.time() + keep_s if keep_s > 0 else None
        with self.r.pipeline(transaction=False) as pipe:
            if expires is not None:
                ms = max(1, int(keep_s * 1000))
                for key in self.r.scan_iter(match=f"{self.base}:*", count=1000):
                    if key not in kept:
                        pipe.pexpire(key, ms)
            pipe.hset(
                self.key("meta"),
                mapping={k: orjson.dumps(v) for k, v in {**record, "expires": expires}.items()},
            )
            pipe.execute()
        return expires

    def expired(self) -> bool:
        """Whether the run's faces are gone after its retention time (only the record is left)."""
        expires = self.meta().get("expires")
        return expires is not None and time.time() >= float(expires)

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


@dataclass
class RunSize:
    """How much of the broker's memory a run's keys take (``MEMORY USAGE``, sampled)."""

    keys: int = 0
    bytes: int = 0


def run_sizes(client: redis.Redis, prefix: str, batch: int = 500) -> dict[str, RunSize]:
    """Every run's keys and bytes under ``prefix``, from one scan of ``PREFIX:run:*``."""
    sizes: dict[str, RunSize] = {}
    start = len(f"{prefix}:run:")

    def measure(keys: list[bytes]) -> None:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.memory_usage(key)
            used = pipe.execute(raise_on_error=False)  # (MEMORY USAGE may be denied: 0)
        used = [0 if isinstance(size, Exception) else size for size in used]
        for key, size in zip(keys, used, strict=True):
            run_id = key[start:].split(b":", 1)[0].decode(errors="replace")
            entry = sizes.setdefault(run_id, RunSize())
            entry.keys += 1
            entry.bytes += int(size or 0)

    keys: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:run:*", count=1000):
        keys.append(key)
        if len(keys) >= batch:
            measure(keys)
            keys = []
    if keys:
        measure(keys)
    return sizes


@functools.lru_cache(maxsize=64)
def _parse_params(raw: bytes) -> RunParams:
    """Parsed once per distinct record: every task of a run reads the same bytes."""
    return RunParams.model_validate_json(raw)
