"""The commands that look after runs on a broker: ``status``, ``runs``, ``delete``, ``report RUN_ID``.

Each opens the run through :func:`open_run`, which says in one line what is wrong when
there is no broker, no such run, or the broker cannot be reached.
"""

from __future__ import annotations

import time

import redis

from facepipe.app.outputs import exit_status, finish_run, format_summary, prepare_out
from facepipe.app.summary import Summary
from facepipe.distributed.store import (
    BrokerFull,
    RunSize,
    RunStore,
    broker_memory,
    connect,
    full_message,
    holder_of,
    is_full,
    list_runs,
    ping,
    run_sizes,
)
from facepipe.errors import FacepipeError
from facepipe.settings import Settings


def client_for(settings: Settings) -> tuple[redis.Redis, str]:
    """A client of the settings' broker, checked; and the broker's URL."""
    broker = settings.broker_url()
    if not broker:
        raise FacepipeError("which broker? pass --broker redis://HOST:6379/0 (embedded runs keep no server)")
    client = connect(broker, tls_ca_certs=settings.tls_ca_certs)
    ping(client, broker)
    return client, broker


def _client(settings: Settings) -> redis.Redis:
    return client_for(settings)[0]


def open_run(settings: Settings, run_id: str | None) -> RunStore:
    """The store of run ``run_id`` (the newest run when None) on the settings' broker."""
    client = _client(settings)
    runs = list_runs(client, settings.redis_prefix)
    if run_id is None:
        if not runs:
            raise FacepipeError(f"no runs under prefix {settings.redis_prefix!r} on this broker")
        run_id = runs[-1]
    if run_id not in runs:
        raise FacepipeError(f"no run {run_id!r} under prefix {settings.redis_prefix!r} (see 'facepipe runs')")
    return RunStore(client, settings.redis_prefix, run_id)


def run_state(store: RunStore, meta: dict | None = None, applied: int | None = None) -> str:
    """What a run is doing, for ``facepipe runs`` and ``status``: ``running`` (a dispatcher
    follows it), ``orphaned`` (nobody does: ``facepipe resume``), ``done``, ``failed-chunks``
    (done, some chunks lost), ``expired`` (done; only its record is left)."""
    meta = store.meta() if meta is None else meta
    status = meta.get("status", "?")
    if status in ("done", "failed-chunks"):
        return "expired" if store.expired() else status
    return "running" if holder_of(store) is not None else "orphaned"


def show_status(settings: Settings, run_id: str | None) -> int:
    store = open_run(settings, run_id)
    meta, counters = store.meta(), store.counters()
    embedded, applied = store.progress()
    state = run_state(store, meta)
    print(f"run {store.run_id}: {state}  video {meta.get('video')}")
    holder = holder_of(store)
    if holder is not None:
        print(f"  dispatcher: {holder}")
    elif state == "orphaned":
        print(f"  no dispatcher follows it: 'facepipe resume {store.run_id}' finishes it")
    print(
        f"  chunks: {applied} applied, {embedded} embedded, {counters.chunks_failed} failed, "
        f"{store.sent()} sent, of {meta.get('chunks')}"
    )
    print(
        f"  faces {counters.faces_embedded}, online identities {counters.online_identities}, "
        f"frames sampled {counters.frames_sampled}, blurry {counters.frames_blurry}"
    )
    if meta.get("out"):
        print(f"  outputs: {meta['out']}")
    if meta.get("expires"):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta["expires"])))
        verb = "expired" if state == "expired" else "expire"
        print(f"  faces, embeddings and thumbnails {verb} {when} (then only this record is left)")
    for failure in store.failed():
        print(f"  lost frames {failure['frames'][0]}-{failure['frames'][1] - 1}: {failure['reason']}")
    return 0


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _age(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= scale:
            return f"{seconds / scale:.0f}{unit}"
    return f"{seconds:.0f}s"


def list_runs_cmd(settings: Settings) -> int:
    """``facepipe runs``: every run under the prefix, what it is doing, and how much of the
    broker's memory it takes (one scan of the prefix, ``MEMORY USAGE`` per key)."""
    client, broker = client_for(settings)
    ids = list_runs(client, settings.redis_prefix)
    sizes = run_sizes(client, settings.redis_prefix)
    now = time.time()
    rows, states = [], set()
    for run_id in ids:
        store = RunStore(client, settings.redis_prefix, run_id)
        meta = store.meta()
        _, applied = store.progress()
        state = run_state(store, meta)
        states.add(state)
        size = sizes.get(run_id, RunSize())
        note = ""
        holder = holder_of(store) if state == "running" else None
        if holder is not None:
            note = f"  (dispatcher {holder})"
        elif meta.get("expires") and state != "expired":
            note = f"  (faces expire in {_age(float(meta['expires']) - now)})"
        rows.append(
            f"{run_id}  {state:<13} {applied:>5}/{meta.get('chunks', '?'):<5} "
            f"{store.counters().faces_embedded:>7}  {_size(size.bytes):>9}  "
            f"{_age(now - float(meta.get('created') or now)):>4}  {meta.get('video')}{note}"
        )
    print(f"{'RUN':<22}  {'STATE':<13} {'CHUNKS':>11} {'FACES':>7}  {'SIZE':>9}  {'AGE':>4}  VIDEO")
    for row in rows:
        print(row)
    memory = broker_memory(client)
    total = sum(size.bytes for size in sizes.values())
    limit = f" of maxmemory {_size(memory.limit)}" if memory.limit else " (no maxmemory)"
    print(f"{len(ids)} runs, {_size(total)} in the broker; the broker uses {_size(memory.used)}{limit}")
    if "orphaned" in states:
        print("orphaned: no dispatcher follows the run; 'facepipe resume RUN_ID' finishes it")
    if memory.full:
        print(full_message(broker, client, "; runs wait until then"))
    return 0


def rebuild_outputs(settings: Settings, run_id: str) -> int:
    """``facepipe report RUN_ID --broker URL``: write a finished run's outputs again from Redis."""
    store = open_run(settings, run_id)
    meta = store.meta()
    if store.next_seq() < int(meta.get("chunks") or 0):
        raise FacepipeError(f"run {run_id} is not finished yet (see 'facepipe status {run_id}')")
    if store.expired():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta["expires"])))
        raise FacepipeError(
            f"run {run_id}'s faces expired {when} (--keep-hours after its outputs were written to "
            f"{meta.get('out')}); only its record is left in Redis"
        )
    out = prepare_out(settings.out, run_id)
    earlier = Summary.read(out / "summary.json").elapsed_s if (out / "summary.json").is_file() else 0.0
    try:
        summary, _ = finish_run(store, out, earlier, settings.keep_hours)
    except redis.ResponseError as exc:
        if is_full(exc):
            raise BrokerFull(full_message(settings.broker_url() or "", store.r)) from None
        raise
    print(format_summary(summary, out))
    return exit_status(summary)


def delete_run(settings: Settings, run_id: str) -> int:
    """``facepipe delete RUN_ID``: remove that run's keys, and nothing else."""
    store = open_run(settings, run_id)
    holder = holder_of(store)
    if holder is not None:
        raise FacepipeError(
            f"run {run_id} is being followed by a dispatcher ({holder}); stop it first, then delete"
        )
    removed = store.delete()
    print(f"deleted run {run_id} ({removed} keys)")
    return 0
