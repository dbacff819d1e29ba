"""The commands behind the CLI: run a video end to end, show a run's status, list runs.

This is the composition root: the only place in ``facepipe/`` that touches Celery, and
only to obtain a ``send(task_name, args)`` function for :mod:`facepipe.dispatch`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from facepipe.bank import write_bank
from facepipe.dispatch import FrameShipper, Send, follow, new_run_id, submit
from facepipe.embedded import EmbeddedCluster, ort_threads_per_process
from facepipe.errors import FacepipeError
from facepipe.final import finalise
from facepipe.models import execution_providers, resolve_model
from facepipe.outputs import build_summary, format_summary, write_outputs
from facepipe.report import build_report
from facepipe.settings import Settings
from facepipe.store import RunStore, connect, list_runs, ping
from facepipe.video import VideoInfo, probe

log = logging.getLogger(__name__)

EXIT_LOST_CHUNKS = 3


def celery_sender(broker_url: str):
    """A ``send(name, args)`` that publishes to ``broker_url`` with the project's routes.

    Uses its own connection, so one process can talk to several brokers (tests do).
    """
    from tasks.celery_app import app

    connection = app.connection_for_write(broker_url)

    def send(name: str, args: tuple) -> None:
        app.send_task(name, args=args, connection=connection)

    return send


def _prepare_out(settings: Settings, run_id: str) -> Path:
    out = settings.out or Path("facepipe-runs") / run_id
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / ".facepipe-write-test"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise FacepipeError(
            f"cannot write to output folder {out}: {exc.strerror} (pass a writable --out)"
        ) from None
    return out


def run_video(video: str, settings: Settings) -> int:
    """``facepipe run``: validate everything first, then dispatch and follow to the end."""
    started = time.monotonic()
    info = probe(video)
    resolve_model("detector", settings.det_model)
    resolve_model("embedder", settings.rec_model)
    execution_providers(settings.providers)  # '--providers cuda' without CUDA fails here, in one line
    run_id = new_run_id()
    broker = settings.broker_url()
    if broker is None and settings.redis_port != 6379 and settings.redis_host is None:
        raise FacepipeError("--redis-port needs --redis-host (or pass --broker)")
    if broker is not None:
        client = connect(broker)
        ping(client, broker)
    out = _prepare_out(settings, run_id)
    if settings.save_images and settings.save_dir is None:
        settings = settings.model_copy(update={"save_dir": (out / "faces").resolve()})
    elif settings.save_dir is not None:
        settings = settings.model_copy(update={"save_dir": settings.save_dir.resolve()})
    show = settings.progress and sys.stderr.isatty()  # bars are for people, not log files
    print(
        f"facepipe: run {run_id}: {info.path} ({info.frame_count} frames, {info.fps:.2f} fps, "
        f"{info.width}x{info.height}); sampling 1 frame in {settings.frame_step}",
        file=sys.stderr,
    )

    if broker is not None:
        store = RunStore(client, settings.redis_prefix, run_id)
        _dispatch_and_follow(store, info, settings, celery_sender(broker), show)
        return _finish(store, out, time.monotonic() - started)

    with EmbeddedCluster(out / "logs", run_id) as cluster:
        threads = settings.ort_threads or ort_threads_per_process(settings.num_det + settings.num_emb)
        env = {
            "FACEPIPE_ORT_THREADS": str(threads),
            "FACEPIPE_PROVIDERS": settings.providers,
            "FACEPIPE_VISIBILITY_TIMEOUT": os.environ.get("FACEPIPE_VISIBILITY_TIMEOUT", "120"),
            # Nobody watches a private server with Flower: skip the event traffic.
            "FACEPIPE_TASK_EVENTS": os.environ.get("FACEPIPE_TASK_EVENTS", "0"),
            # numpy's BLAS threads would fight the model processes for the cores.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        cluster.start(
            {"detect": settings.num_det, "embed": settings.num_emb, "writer": 1}, env, debug=settings.debug
        )
        log.debug("server and workers started after %.2f s", time.monotonic() - started)
        client = connect(cluster.url)
        store = RunStore(client, settings.redis_prefix, run_id)
        _dispatch_and_follow(
            store, info, settings, celery_sender(cluster.url), show, cluster.workers.check_alive
        )
        log.debug("all chunks applied after %.2f s", time.monotonic() - started)
        cluster.workers.begin_stop(cold=True)  # nothing in flight: let them go while we write outputs
        return _finish(store, out, time.monotonic() - started)


def _dispatch_and_follow(
    store: RunStore,
    info: VideoInfo,
    settings: Settings,
    send: Send,
    show: bool,
    check_workers: Callable[[], None] | None = None,
) -> None:
    """Queue the chunks (or ship their frames from a thread) and follow the run to its end."""
    chunks = submit(store, info, settings, send)
    shipper = FrameShipper(store, info, chunks, settings, send) if settings.ship_frames else None

    def check_alive() -> None:
        if check_workers is not None:
            check_workers()
        if shipper is not None:
            shipper.check()

    if shipper is not None:
        shipper.start()
    try:
        follow(
            store,
            len(chunks),
            stall_timeout=settings.stall_timeout,
            show_progress=show,
            check_alive=check_alive,
        )
    finally:
        if shipper is not None:
            shipper.stopping.set()
            shipper.join(timeout=10)


def _finish(store: RunStore, out: Path, elapsed_s: float) -> int:
    t0 = time.monotonic()
    final = finalise(store, float(store.meta().get("params", {}).get("merge_thresh", 0.0)))
    summary = build_summary(store, elapsed_s, final)
    write_outputs(out, summary, final)
    write_bank(store, out / "bank.npz", final)
    build_report(out)
    log.debug("outputs written in %.2f s", time.monotonic() - t0)
    store.set_meta(status="failed-chunks" if summary["failed_chunks"] else "done")
    print(format_summary(summary, out))
    return EXIT_LOST_CHUNKS if summary["failed_chunks"] else 0


def _store_client(settings: Settings):
    broker = settings.broker_url()
    if not broker:
        raise FacepipeError("which broker? pass --broker redis://HOST:6379/0 (embedded runs keep no server)")
    client = connect(broker)
    ping(client, broker)
    return client


def show_status(settings: Settings, run_id: str | None) -> int:
    client = _store_client(settings)
    runs = list_runs(client, settings.redis_prefix)
    if not runs:
        raise FacepipeError(f"no runs under prefix {settings.redis_prefix!r} on this broker")
    run_id = run_id or runs[-1]
    if run_id not in runs:
        raise FacepipeError(f"no run {run_id!r} (see 'facepipe runs')")
    store = RunStore(client, settings.redis_prefix, run_id)
    meta, stats = store.meta(), store.stats()
    embedded, applied = store.progress()
    print(f"run {run_id}: {meta.get('status')}  video {meta.get('video')}")
    print(
        f"  chunks: {applied} applied, {embedded} embedded, {stats['chunks_failed']} failed, "
        f"of {meta.get('chunks')}"
    )
    print(
        f"  faces {stats['faces_embedded']}, identities {stats['identities']}, "
        f"frames sampled {stats['frames_sampled']}, blurry {stats['frames_blurry']}"
    )
    for failure in store.failed():
        print(f"  lost frames {failure['frames'][0]}-{failure['frames'][1] - 1}: {failure['reason']}")
    return 0


def list_runs_cmd(settings: Settings) -> int:
    client = _store_client(settings)
    for run_id in list_runs(client, settings.redis_prefix):
        store = RunStore(client, settings.redis_prefix, run_id)
        meta = store.meta()
        embedded, applied = store.progress()
        print(
            f"{run_id}  {meta.get('status', '?'):<13} {applied}/{meta.get('chunks')} chunks  "
            f"{meta.get('video')}"
        )
    return 0


def rebuild_outputs(settings: Settings, run_id: str) -> int:
    """``facepipe report RUN_ID --broker URL``: write a finished run's outputs again from Redis."""
    client = _store_client(settings)
    if run_id not in list_runs(client, settings.redis_prefix):
        raise FacepipeError(f"no run {run_id!r} under prefix {settings.redis_prefix!r} (see 'facepipe runs')")
    store = RunStore(client, settings.redis_prefix, run_id)
    meta = store.meta()
    if store.next_seq() < int(meta.get("chunks") or 0):
        raise FacepipeError(f"run {run_id} is not finished yet (see 'facepipe status {run_id}')")
    out = _prepare_out(settings, run_id)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    return _finish(store, out, float(summary.get("elapsed_s") or 0.0))


def delete_run(settings: Settings, run_id: str) -> int:
    """``facepipe delete RUN_ID``: remove that run's keys, and nothing else."""
    client = _store_client(settings)
    if run_id not in list_runs(client, settings.redis_prefix):
        raise FacepipeError(f"no run {run_id!r} under prefix {settings.redis_prefix!r} (see 'facepipe runs')")
    removed = RunStore(client, settings.redis_prefix, run_id).delete()
    print(f"deleted run {run_id} ({removed} keys)")
    return 0
