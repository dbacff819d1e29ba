"""``facepipe run``: validate everything, dispatch a video's chunks, follow the run, write outputs.

With a broker the chunks go to workers that are already running; without one this
module starts the embedded default (a private server and local workers) and stops it
again. Either way the same :func:`facepipe.dispatch.submit` and
:func:`facepipe.dispatch.follow` do the work, through a Celery sender from
:mod:`facepipe.bridge`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from facepipe.bridge import CelerySender
from facepipe.dispatch import FrameShipper, follow, new_run_id, submit
from facepipe.embedded import EmbeddedCluster, ort_threads_per_process, size_workers
from facepipe.errors import FacepipeError
from facepipe.models import ModelLoadError, execution_providers, resolve_model, resolve_runtime
from facepipe.outputs import exit_status, finish_run, prepare_out
from facepipe.settings import Settings, WorkerSettings, load_worker_settings
from facepipe.stages import Send
from facepipe.store import RunStore, connect, ping
from facepipe.video import Plan, VideoInfo, plan, probe

log = logging.getLogger(__name__)

#: with fewer keyframe chunks than this many per model process, the embedded default splits
#: GOPs (the later parts decode the GOP's start again) rather than leave processes waiting;
#: measured on the shared clips (bench/README.md, "Decoding twice or waiting")
SPLIT_CHUNKS_PER_PROCESS = 2


def run_video(video: str, settings: Settings) -> int:
    """``facepipe run``: validate everything first, then dispatch and follow to the end."""
    started = time.monotonic()
    cache_dir = load_worker_settings().cache_dir
    info = probe(video, cache_dir)
    resolve_model("detector", settings.det_model)
    resolve_model("embedder", settings.rec_model)
    execution_providers(settings.providers)  # '--providers cuda' without CUDA fails here, in one line
    broker = settings.broker_url()
    _check_runtime(settings, embedded=broker is None)
    run_id = new_run_id()
    if broker is None and settings.redis_port != 6379 and settings.redis_host is None:
        raise FacepipeError("--redis-port needs --redis-host (or pass --broker)")
    if broker is not None:
        client = connect(broker)
        ping(client, broker)
    out = prepare_out(settings.out, run_id)
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
        planned = plan(info, settings.decoder, settings.frame_step, settings.chunk_size, cache_dir=cache_dir)
        _dispatch_and_follow(store, info, settings, CelerySender(broker), show, planned)
        return exit_status(finish_run(store, out, time.monotonic() - started))

    num_det, num_emb = size_workers(settings.num_det, settings.num_emb)
    settings = settings.model_copy(update={"num_det": num_det, "num_emb": num_emb})
    with EmbeddedCluster(out / "logs", run_id) as cluster:
        cluster.start(
            {"detect": num_det, "embed": num_emb},
            _embedded_worker_env(settings),
            debug=settings.debug,
        )
        log.debug("server and workers started after %.2f s", time.monotonic() - started)
        # Planned while the workers import and load their models (the keyframe scan of a long
        # video takes a second). A short clip is often one or two GOPs: split them so every
        # process has work (bench/README.md).
        min_chunks = SPLIT_CHUNKS_PER_PROCESS * (num_det + num_emb)
        planned = plan(info, settings.decoder, settings.frame_step, settings.chunk_size, min_chunks)
        log.debug(
            "%d chunks planned (%s) after %.2f s",
            len(planned.chunks),
            planned.decoder,
            time.monotonic() - started,
        )
        store = RunStore(connect(cluster.url), settings.redis_prefix, run_id)
        _dispatch_and_follow(
            store, info, settings, CelerySender(cluster.url), show, planned, cluster.workers.check_alive
        )
        log.debug("all chunks applied after %.2f s", time.monotonic() - started)
        cluster.workers.begin_stop(cold=True)  # nothing in flight: let them go while we write outputs
        summary = finish_run(store, out, time.monotonic() - started)
        cluster.workers.kill()  # whatever of their shutdown is left
        return exit_status(summary)


def _check_runtime(settings: Settings, embedded: bool) -> None:
    """Refuse a backend/precision request that cannot run, in one line, before anything starts.

    Embedded workers run on this host, so its CPU decides (bf16 where the CPU has none is an
    error). Remote workers decide on their own hosts; only what no host could run fails here,
    and a worker without bf16 runs fp32 and the summary says so.
    """
    if embedded:
        resolve_runtime(settings.backend, settings.precision, settings.providers, strict=True)
    elif settings.precision == "bf16" and settings.backend == "onnxruntime":
        raise ModelLoadError("--precision bf16 needs --backend openvino (or auto); use --precision fp32")


def _embedded_worker_env(settings: Settings) -> dict[str, str]:
    """The embedded workers' settings: the cores split between the model processes, the run's
    runtime (so the models they preload are the ones the run uses), and no task events
    (nobody watches a private server with Flower)."""
    threads = settings.ort_threads or ort_threads_per_process(int(settings.num_det) + int(settings.num_emb))
    worker = WorkerSettings(
        ort_threads=threads,
        providers=settings.providers,
        backend=settings.backend,
        precision=settings.precision,
        task_events=False,
    )
    return {
        **worker.as_env(),
        # numpy's BLAS threads would fight the model processes for the cores.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def _dispatch_and_follow(
    store: RunStore,
    info: VideoInfo,
    settings: Settings,
    send: Send,
    show: bool,
    planned: Plan,
    check_workers: Callable[[], None] | None = None,
) -> None:
    """Queue the chunks (or ship their frames from a thread) and follow the run to its end."""
    chunks = submit(store, info, settings, send, planned)
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
