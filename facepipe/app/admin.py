"""The commands that look after runs on a broker: ``status``, ``runs``, ``delete``, ``report RUN_ID``.

Each opens the run through :func:`open_run`, which says in one line what is wrong when
there is no broker, no such run, or the broker cannot be reached.
"""

from __future__ import annotations

import redis

from facepipe.app.outputs import exit_status, finish_run, format_summary, prepare_out
from facepipe.app.summary import Summary
from facepipe.distributed.store import RunStore, connect, list_runs, ping
from facepipe.errors import FacepipeError
from facepipe.settings import Settings


def _client(settings: Settings) -> redis.Redis:
    broker = settings.broker_url()
    if not broker:
        raise FacepipeError("which broker? pass --broker redis://HOST:6379/0 (embedded runs keep no server)")
    client = connect(broker)
    ping(client, broker)
    return client


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


def show_status(settings: Settings, run_id: str | None) -> int:
    store = open_run(settings, run_id)
    meta, counters = store.meta(), store.counters()
    embedded, applied = store.progress()
    print(f"run {store.run_id}: {meta.get('status')}  video {meta.get('video')}")
    print(
        f"  chunks: {applied} applied, {embedded} embedded, {counters.chunks_failed} failed, "
        f"of {meta.get('chunks')}"
    )
    print(
        f"  faces {counters.faces_embedded}, online identities {counters.online_identities}, "
        f"frames sampled {counters.frames_sampled}, blurry {counters.frames_blurry}"
    )
    for failure in store.failed():
        print(f"  lost frames {failure['frames'][0]}-{failure['frames'][1] - 1}: {failure['reason']}")
    return 0


def list_runs_cmd(settings: Settings) -> int:
    client = _client(settings)
    for run_id in list_runs(client, settings.redis_prefix):
        store = RunStore(client, settings.redis_prefix, run_id)
        meta = store.meta()
        _, applied = store.progress()
        print(
            f"{run_id}  {meta.get('status', '?'):<13} {applied}/{meta.get('chunks')} chunks  "
            f"{meta.get('video')}"
        )
    return 0


def rebuild_outputs(settings: Settings, run_id: str) -> int:
    """``facepipe report RUN_ID --broker URL``: write a finished run's outputs again from Redis."""
    store = open_run(settings, run_id)
    if store.next_seq() < int(store.meta().get("chunks") or 0):
        raise FacepipeError(f"run {run_id} is not finished yet (see 'facepipe status {run_id}')")
    out = prepare_out(settings.out, run_id)
    earlier = Summary.read(out / "summary.json").elapsed_s if (out / "summary.json").is_file() else 0.0
    summary, _ = finish_run(store, out, earlier)
    print(format_summary(summary, out))
    return exit_status(summary)


def delete_run(settings: Settings, run_id: str) -> int:
    """``facepipe delete RUN_ID``: remove that run's keys, and nothing else."""
    store = open_run(settings, run_id)
    removed = store.delete()
    print(f"deleted run {run_id} ({removed} keys)")
    return 0
