"""Submit a video as chunk tasks, then follow the run in Redis until the writer is done.

This module knows nothing of Celery: it is handed a ``send(stage, message)`` function
(:data:`facepipe.distributed.stages.Send`).
Following works the same for the embedded default and for remote workers, because all
progress lives in the run's Redis keys.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from tqdm import tqdm

from facepipe.distributed.messages import DetectMessage
from facepipe.distributed.stages import DETECT, Send
from facepipe.distributed.store import RunStore
from facepipe.errors import FacepipeError
from facepipe.media.plan import Plan, plan
from facepipe.media.readers import chunk_reader, encode_frame
from facepipe.records import Chunk, RunParams, ShippedFrame, VideoInfo
from facepipe.settings import Settings


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a few random hex digits."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass
class PlannedRun:
    """A run recorded in Redis, with the chunks it was planned into."""

    store: RunStore
    info: VideoInfo
    chunks: list[Chunk]
    params: RunParams


def create_run(
    store: RunStore, info: VideoInfo, settings: Settings, planned: Plan | None = None
) -> PlannedRun:
    """Record the run (its :class:`RunParams`, built once here) with its chunks. ``planned`` is
    the video's chunk plan for ``--decoder`` (made here when not given)."""
    if planned is None:
        planned = plan(info, settings.decoder, settings.frame_step, settings.chunk_size)
    info = replace(info, frame_count=planned.frame_count)
    params = RunParams.build(settings, info, planned.decoder)
    chunks = planned.chunks
    store.create(
        {
            "video": info.path,
            "params": params,
            "chunks": len(chunks),
            "sampled_frames": sum(len(c.frames(params.frame_step)) for c in chunks),
            "status": "running",
        }
    )
    return PlannedRun(store, info, chunks, params)


def send_chunks(runs: Sequence[PlannedRun], send: Send) -> None:
    """One detect task per chunk, each run in order, the runs interleaved (round robin) so
    that every run of a season is in flight at once and finishes about together."""
    for batch in itertools.zip_longest(*(run.chunks for run in runs)):
        for run, chunk in zip(runs, batch, strict=True):
            if chunk is not None:
                send(DETECT, DetectMessage(run_id=run.store.run_id, prefix=run.store.prefix, chunk=chunk))


def submit(
    store: RunStore, info: VideoInfo, settings: Settings, send: Send, planned: Plan | None = None
) -> list[Chunk]:
    """Record one run and queue its chunks (what tests and single-run callers need)."""
    run = create_run(store, info, settings, planned)
    if not settings.ship_frames:
        send_chunks([run], send)
    return run.chunks


class FrameShipper(threading.Thread):
    """``--ship-frames``: decode each chunk of a run here and send its frames inside the message.

    Runs beside :func:`follow`; keeps at most ``max_inflight`` chunks ahead of the writer
    so a long video does not pile up in the broker's memory. :meth:`check` re-raises an
    error from the thread in the caller.
    """

    def __init__(self, run: PlannedRun, settings: Settings, send: Send, max_inflight: int = 16) -> None:
        super().__init__(name=f"frame-shipper-{run.store.run_id}", daemon=True)
        self.store, self.info, self.chunks = run.store, run.info, run.chunks
        self.settings, self.send = settings, send
        self.max_inflight = max_inflight
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self._ship()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc

    def _ship(self) -> None:
        limit = self.settings.max_message_mb * 1e6
        for chunk in self.chunks:
            while chunk.seq - self.store.next_seq() >= self.max_inflight:
                if self.stopping.wait(0.1):
                    return
            frames = [
                ShippedFrame(index=i, jpeg=encode_frame(f, self.settings.ship_quality))
                for i, f in chunk_reader(self.info.path, chunk, self.settings.frame_step)
            ]
            size = sum(len(frame.jpeg) for frame in frames)
            if size > limit:
                raise FacepipeError(
                    f"chunk {chunk.seq} would be a {size / 1e6:.1f} MB message, over --max-message-mb "
                    f"{self.settings.max_message_mb:g}; lower --chunk-size or --ship-quality"
                )
            self.send(
                DETECT,
                DetectMessage(run_id=self.store.run_id, prefix=self.store.prefix, chunk=chunk, frames=frames),
            )

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def follow(
    runs: Sequence[PlannedRun],
    *,
    stall_timeout: float,
    show_progress: bool = True,
    check_alive: Callable[[], None] | None = None,
    poll_s: float = 0.2,
) -> None:
    """Block until every chunk of every run is applied, with one progress bar for them all;
    raise a clear error if the runs stall.

    ``check_alive`` (embedded mode) raises if a worker the command started has died.
    """
    total = sum(len(run.chunks) for run in runs)
    last_state: list[tuple[int, int]] | None = None
    last_change = time.monotonic()
    bar = tqdm(
        total=total,
        unit="chunk",
        desc="chunks" if len(runs) == 1 else f"{len(runs)} videos",
        disable=not show_progress,
        dynamic_ncols=True,
        leave=True,
    )
    try:
        while True:
            state = [run.store.progress() for run in runs]
            counters = [run.store.counters() for run in runs]
            applied = sum(a for _, a in state)
            done = sum(a >= len(run.chunks) for (_, a), run in zip(state, runs, strict=True))
            bar.n = min(sum(max(e, a) for e, a in state), total)
            postfix = {"applied": applied, "faces": sum(c.faces_embedded for c in counters)}
            if len(runs) > 1:
                postfix["videos_done"] = f"{done}/{len(runs)}"
            else:
                postfix["ids"] = counters[0].online_identities
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()
            if done == len(runs):
                _wait_for_crops(runs)
                break
            now = time.monotonic()
            if state != last_state:
                last_state, last_change = state, now
            elif now - last_change > stall_timeout:
                raise FacepipeError(_stalled(runs, state, stall_timeout))
            if check_alive is not None:
                check_alive()
            time.sleep(poll_s)
    finally:
        bar.close()


def _wait_for_crops(runs: Sequence[PlannedRun], timeout: float = 30.0) -> None:
    """With ``--save-images`` the writer writes a chunk's crops just after committing it: give
    the last ones a moment to reach the disk before the workers are stopped."""
    deadline = time.monotonic() + timeout
    for run in runs:
        if not run.params.save_images:
            continue
        while time.monotonic() < deadline:
            counters = run.store.counters()
            if counters.faces_saved + counters.faces_unsaved >= counters.faces_embedded:
                break
            time.sleep(0.05)


def _stalled(runs: Sequence[PlannedRun], state: list[tuple[int, int]], stall_timeout: float) -> str:
    run, (_, applied) = next((run, s) for run, s in zip(runs, state, strict=True) if s[1] < len(run.chunks))
    return (
        f"run {run.store.run_id} stalled: chunk {applied} of {len(run.chunks)} has not "
        f"arrived for {stall_timeout:.0f} s; check that detect, embed and writer "
        f"workers are running ('celery -A tasks inspect active_queues'), then "
        f"'facepipe status {run.store.run_id}'"
    )
