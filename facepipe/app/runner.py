"""``facepipe run VIDEO...``: validate everything, dispatch the chunks, follow the runs, write outputs.

With a broker the chunks go to workers that are already running; without one this
module starts the embedded default (a private server and local workers) and stops it
again. Either way :func:`~facepipe.distributed.dispatch.create_run`,
:func:`~facepipe.distributed.dispatch.send_chunks` and :func:`~facepipe.distributed.dispatch.follow`
do the work, through a Celery sender from :mod:`facepipe.distributed.bridge`. One video or a
season of them is the same machinery: every video is a run of its own, all in flight at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facepipe.app.banks import read_series_bank
from facepipe.app.episodes import SERIES_DIR, Episode, plan_episodes
from facepipe.app.outputs import EXIT_LOST_CHUNKS, exit_status, finish_run, format_summary, prepare_out
from facepipe.app.report.series import build_series_report
from facepipe.app.series_outputs import format_series, write_series
from facepipe.clustering.series import EpisodeResult, SeriesBank, series_pass, series_thresh
from facepipe.distributed.bridge import CelerySender
from facepipe.distributed.dispatch import (
    BrokerPatience,
    FrameShipper,
    PlannedRun,
    check_room,
    create_run,
    follow,
    new_run_id,
    nudge_writer,
    pending_chunks,
    resend_waiting,
    send_chunks,
)
from facepipe.distributed.embedded import EmbeddedCluster, ort_threads_per_process, size_workers
from facepipe.distributed.messages import TaskMessage
from facepipe.distributed.stages import DETECT, Send, Stage
from facepipe.distributed.store import Lease, RunStore, connect, ping
from facepipe.errors import FacepipeError, ModelLoadError
from facepipe.inference.files import resolve_model
from facepipe.inference.int8 import int8_model
from facepipe.inference.runtimes import execution_providers, resolve_runtime
from facepipe.media.plan import plan
from facepipe.media.probe import probe
from facepipe.records import VideoInfo
from facepipe.settings import Settings, WorkerSettings, load_worker_settings

log = logging.getLogger(__name__)

#: with fewer keyframe chunks than this many per model process, the embedded default splits
#: GOPs (the later parts decode the GOP's start again) rather than leave processes waiting;
#: measured on the shared clips (bench/README.md, "Decoding twice or waiting")
SPLIT_CHUNKS_PER_PROCESS = 2

T = TypeVar("T")


def run_videos(videos: list[str], settings: Settings) -> int:
    """``facepipe run VIDEO...``: validate everything first, then dispatch every video at once,
    follow them to the end and write each one's outputs (and, for several, the series')."""
    started = time.monotonic()
    cache_dir = load_worker_settings().cache_dir
    infos = [_probe(video, cache_dir, len(videos)) for video in videos]  # every video, before anything starts
    # a bad bank (or one another face model made) also stops us now
    prior = read_series_bank(settings.bank, expect_model=settings.rec_model) if settings.bank else None
    resolve_model("detector", settings.det_model)
    resolve_model("embedder", settings.rec_model)
    execution_providers(settings.providers)  # '--providers cuda' without CUDA fails here, in one line
    broker = settings.broker_url()
    _check_runtime(settings, embedded=broker is None)
    if broker is None and settings.redis_port != 6379 and settings.redis_host is None:
        raise FacepipeError("--redis-port needs --redis-host (or pass --broker)")
    if broker is not None:
        client = connect(broker, tls_ca_certs=settings.tls_ca_certs)
        ping(client, broker)
    season_id = new_run_id()
    out = prepare_out(settings.out, season_id)
    episodes = plan_episodes(infos, out, season=len(infos) > 1 or prior is not None)
    if settings.save_images and settings.save_dir is None:
        settings = settings.model_copy(update={"save_dir": (out / "faces").resolve()})
    elif settings.save_dir is not None:
        settings = settings.model_copy(update={"save_dir": settings.save_dir.resolve()})
    show = settings.progress and sys.stderr.isatty()  # bars are for people, not log files
    for episode in episodes:
        info = episode.info
        print(
            f"facepipe: {episode.label}run {episode.run_id}: {info.path} ({info.frame_count} frames, "
            f"{info.fps:.2f} fps, "
            f"{info.width}x{info.height}); sampling 1 frame in {settings.frame_step}",
            file=sys.stderr,
        )

    if broker is not None:
        plans = [
            plan(e.info, settings.decoder, settings.frame_step, settings.chunk_size, cache_dir=cache_dir)
            for e in episodes
        ]
        sampled = sum(len(c.frames(settings.frame_step)) for p in plans for c in p.chunks)
        warning = check_room(client, broker, sampled)  # a run that cannot fit is refused now
        if warning:
            print(f"facepipe: WARNING: {warning}", file=sys.stderr)
        record = _season_record(episodes, out, season_id, settings)
        runs = [
            create_run(RunStore(client, settings.redis_prefix, e.run_id), e.info, settings, p, **record(e))
            for e, p in zip(episodes, plans, strict=True)
        ]
        send = dispatcher_fault_hook(CelerySender(broker, tls_ca_certs=settings.tls_ca_certs))
        follow_runs(runs, settings, send, show, broker=broker)
        return finish(runs, episodes, out, prior, time.monotonic() - started, settings.keep_hours)

    num_det, num_emb = size_workers(settings.num_det, settings.num_emb)
    settings = settings.model_copy(update={"num_det": num_det, "num_emb": num_emb})
    with EmbeddedCluster(out / "logs", season_id) as cluster:
        cluster.start(
            {"detect": num_det, "embed": num_emb},
            _embedded_worker_env(settings),
            debug=settings.debug,
        )
        log.debug("server and workers started after %.2f s", time.monotonic() - started)
        # Planned while the workers import and load their models (the keyframe scan of a long
        # video takes a second). A short clip is often one or two GOPs: split them so every
        # process has work (bench/README.md); a season's videos share that minimum.
        min_chunks = -(-SPLIT_CHUNKS_PER_PROCESS * (num_det + num_emb) // len(episodes))
        plans = [
            plan(e.info, settings.decoder, settings.frame_step, settings.chunk_size, min_chunks)
            for e in episodes
        ]
        log.debug(
            "%d chunks planned (%s) after %.2f s",
            sum(len(p.chunks) for p in plans),
            ", ".join(sorted({p.decoder for p in plans})),
            time.monotonic() - started,
        )
        client = connect(cluster.url)
        runs = [
            create_run(RunStore(client, settings.redis_prefix, e.run_id), e.info, settings, p)
            for e, p in zip(episodes, plans, strict=True)
        ]
        follow_runs(runs, settings, CelerySender(cluster.url), show, cluster.workers.check_alive)
        log.debug("all chunks applied after %.2f s", time.monotonic() - started)
        cluster.workers.begin_stop(cold=True)  # nothing in flight: let them go while we write outputs
        status = finish(runs, episodes, out, prior, time.monotonic() - started)
        cluster.workers.kill()  # whatever of their shutdown is left
        return status


def _probe(video: str, cache_dir: Path, count: int) -> VideoInfo:
    """Probe one video; with several, the one-line error says which video is wrong."""
    try:
        return probe(video, cache_dir)
    except FacepipeError as exc:
        if count == 1:
            raise
        raise FacepipeError(f"{exc} (nothing was started: fix or drop that video)") from None


def _check_runtime(settings: Settings, embedded: bool) -> None:
    """Refuse a backend/precision request that cannot run, in one line, before anything starts.

    Embedded workers run on this host, so its CPU decides (bf16 where the CPU has none is an
    error, and an int8 ArcFace that cannot be built here). Remote workers decide on their own
    hosts; only what no host could run fails here, and a worker without bf16 runs fp32 and the
    summary says so.
    """
    if embedded:
        for kind in ("detector", "embedder"):
            runtime = resolve_runtime(
                settings.backend, settings.precision, settings.providers, strict=True, kind=kind
            )
            if runtime.precision == "int8":
                int8_model(resolve_model(kind, settings.rec_model))  # built now, once, or a one-line error
    elif settings.precision in ("bf16", "int8") and settings.backend == "onnxruntime":
        raise ModelLoadError(
            f"--precision {settings.precision} needs --backend openvino (or auto); use --precision auto"
        )


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


def dispatcher_fault_hook(send: Send) -> Send:
    """Test hook (``FACEPIPE_FAULT_INJECT=dispatch:N``): the dispatcher SIGKILLs itself once it
    has handed N detect tasks to the broker, as a killed or closed laptop would stop it."""
    points = [p.strip() for p in load_worker_settings().fault_inject.split(",") if p.strip()]
    limit = next((int(p.split(":", 1)[1]) for p in points if p.startswith("dispatch:")), None)
    if limit is None:
        return send
    sent = 0

    def send_then_die(stage: Stage, message: TaskMessage) -> None:
        nonlocal sent
        if stage is DETECT and sent >= limit:
            log.warning("fault injection: SIGKILL of the dispatcher after %d chunks", sent)
            os.kill(os.getpid(), signal.SIGKILL)
        send(stage, message)
        sent += stage is DETECT

    return send_then_die


def _season_record(
    episodes: list[Episode], out: Path, season_id: str, settings: Settings
) -> Callable[[Episode], dict[str, object]]:
    """What each run records besides its parameters, so that ``facepipe resume`` can finish it
    (and its season) from any host: where its outputs go, how its frames travel, its season."""

    def record(episode: Episode) -> dict[str, object]:
        fields: dict[str, object] = {"out": str(episode.out.resolve()), "episode": episode.name}
        if settings.ship_frames:
            fields["ship_frames"] = {
                "quality": settings.ship_quality,
                "max_message_mb": settings.max_message_mb,
            }
        if len(episodes) > 1 or settings.bank is not None:
            fields.update(
                season=season_id,
                season_out=str(out.resolve()),
                episodes=len(episodes),
                index=episode.index,
                bank=str(Path(settings.bank).resolve()) if settings.bank else None,
            )
        return fields

    return record


def follow_runs(
    runs: list[PlannedRun],
    settings: Settings,
    send: Send,
    show: bool,
    check_workers: Callable[[], None] | None = None,
    broker: str | None = None,
    resumed: bool = False,
) -> None:
    """Queue the runs' chunks still to send, interleaved (or ship their frames from threads), and
    follow them all to the end.

    With a ``broker`` (not the embedded default) the command holds each run's lease while it
    follows it, and rides out broker outages for up to ``--stall-timeout``; ``resumed`` runs
    get a nudge to their writer first."""
    patience = leases = None
    if broker is not None:
        ids = " ".join(run.store.run_id for run in runs)
        patience = BrokerPatience(
            broker, settings.stall_timeout, f": when the broker is back, 'facepipe resume {ids}' finishes it"
        )
        leases = [Lease(run.store) for run in runs]
        for lease in leases:
            patience.call(lease.take)
    shippers = (
        [FrameShipper(run, settings, send, patience=patience) for run in runs] if settings.ship_frames else []
    )
    try:
        if resumed and patience is not None:  # a resumed run whose last nudge was lost would wait for one
            for run in runs:
                patience.call(lambda run=run: nudge_writer(run.store, run.chunks, send))
        if not shippers:
            send_chunks(runs, send, patience)

        def check_alive() -> None:
            if check_workers is not None:
                check_workers()
            for shipper in shippers:
                shipper.check()

        def resend(everything: bool) -> int:
            if not everything:
                return sum(resend_waiting(run.store, send) for run in runs)
            for run in runs:
                run.to_send = pending_chunks(run.store)
            count = sum(len(run.to_send) for run in runs)
            send_chunks(runs, send, patience)
            for run in runs:
                nudge_writer(run.store, run.chunks, send)
            return count

        for shipper in shippers:
            shipper.start()
        try:
            follow(
                runs,
                stall_timeout=settings.stall_timeout,
                show_progress=show,
                check_alive=check_alive,
                patience=patience,
                leases=leases or (),
                broker=broker,
                resend=resend if broker is not None and not shippers else None,
                resend_after=settings.resend_after,
            )
        finally:
            for shipper in shippers:
                shipper.stopping.set()
                shipper.join(timeout=10)
    except BaseException as exc:
        for lease in leases or ():  # a run left behind by an error has no dispatcher: resumable now
            lease.release()
        if broker is not None and isinstance(exc, KeyboardInterrupt):
            ids = " ".join(run.store.run_id for run in runs)
            print(
                f"facepipe: the workers carry on with run {ids}; 'facepipe resume {ids} --broker URL' "
                "follows it again and writes its outputs",
                file=sys.stderr,
            )
        raise
    for run, lease in zip(runs, leases or [None] * len(runs), strict=True):
        run.lease = lease  # released once its outputs are written
        run.patience = patience  # the outputs are read from Redis too


def finish(
    runs: list[PlannedRun],
    episodes: list[Episode],
    out: Path,
    prior: SeriesBank | None,
    elapsed_s: float,
    keep_hours: float | None = None,
) -> int:
    """Every episode's outputs and summary, then (for a season) the series pass; the exit
    status of the whole command. An episode that cannot be finished does not stop the others:
    the series is built from what finished and says what is missing (exit 3). With
    ``keep_hours`` (a broker's runs) each run's bulky keys expire that long after its outputs
    are written, and its lease is let go."""
    try:
        return _finish(runs, episodes, out, prior, elapsed_s, keep_hours)
    finally:
        for run in runs:
            if run.lease is not None:
                run.lease.release()


def _now(fn: Callable[[], T]) -> T:
    return fn()


def _finish(
    runs: list[PlannedRun],
    episodes: list[Episode],
    out: Path,
    prior: SeriesBank | None,
    elapsed_s: float,
    keep_hours: float | None,
) -> int:
    results, status = [], 0
    for run, episode in zip(runs, episodes, strict=True):
        params = run.params
        video = {"frame_count": params.frame_count}
        call = run.patience.call if run.patience is not None else _now
        try:
            if run.lease is not None:
                call(run.lease.renew)  # a long season's outputs take a while; the run is still followed
            summary, final = call(
                lambda run=run, episode=episode: finish_run(run.store, episode.out, elapsed_s, keep_hours)
            )
        except (FacepipeError, OSError, ValueError) as exc:
            if len(episodes) == 1 and prior is None:
                raise
            log.error("episode %s could not be finished: %s", episode.name, exc)
            print(f"facepipe: episode {episode.name} FAILED: {exc}", file=sys.stderr)
            results.append(
                EpisodeResult(
                    episode.name, params.video, params.fps, params.frame_step, None, str(exc), **video
                )
            )
            status = EXIT_LOST_CHUNKS
            continue
        print(format_summary(summary, episode.out))
        status = max(status, exit_status(summary))
        problem = f"lost frames {summary.lost_ranges}" if summary.failed_chunks else None
        results.append(
            EpisodeResult(episode.name, params.video, params.fps, params.frame_step, final, problem, **video)
        )
    if len(episodes) > 1 or prior is not None:  # a season: the series pass
        params = runs[0].params
        thresh = series_thresh(params)
        series = series_pass(results, prior, thresh)
        series_dir = out / SERIES_DIR
        models = params.model_dump(mode="json", include={"det_model", "rec_model", "backend", "precision"})
        summary = write_series(
            series_dir, series, results, {"thresh": float(thresh), "clustering": params.clustering, **models}
        )
        build_series_report(series_dir)
        print(format_series(summary, series_dir))
    return status
