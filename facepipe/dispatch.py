"""Submit a video as chunk tasks, then follow the run in Redis until the writer is done.

This module knows nothing of Celery: it is handed a ``send(stage, message)`` function
(:data:`facepipe.stages.Send`).
Following works the same for the embedded default and for remote workers, because all
progress lives in the run's Redis keys.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from tqdm import tqdm

from facepipe.contracts import Chunk, DetectMessage, RunParams, ShippedFrame
from facepipe.errors import FacepipeError
from facepipe.settings import Settings
from facepipe.stages import DETECT, Send
from facepipe.store import RunStore
from facepipe.video import Plan, VideoInfo, chunk_reader, encode_frame, plan


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a few random hex digits."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def submit(
    store: RunStore, info: VideoInfo, settings: Settings, send: Send, planned: Plan | None = None
) -> list[Chunk]:
    """Record the run (its :class:`RunParams`, built once here) and queue one detect task per
    chunk, in order. ``planned`` is the video's chunk plan (made here when not given)."""
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
    if not settings.ship_frames:
        for chunk in chunks:
            send(DETECT, DetectMessage(run_id=store.run_id, prefix=store.prefix, chunk=chunk))
    return chunks


class FrameShipper(threading.Thread):
    """``--ship-frames``: decode each chunk here and send its frames inside the message.

    Runs beside :func:`follow`; keeps at most ``max_inflight`` chunks ahead of the writer
    so a long video does not pile up in the broker's memory. :meth:`check` re-raises an
    error from the thread in the caller.
    """

    def __init__(
        self,
        store: RunStore,
        info: VideoInfo,
        chunks: list[Chunk],
        settings: Settings,
        send: Send,
        max_inflight: int = 16,
    ) -> None:
        super().__init__(name="frame-shipper", daemon=True)
        self.store, self.info, self.chunks, self.settings, self.send = store, info, chunks, settings, send
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
    store: RunStore,
    total_chunks: int,
    *,
    stall_timeout: float,
    show_progress: bool = True,
    check_alive: Callable[[], None] | None = None,
    poll_s: float = 0.2,
) -> None:
    """Block until every chunk is applied; raise a clear error if the run stalls.

    ``check_alive`` (embedded mode) raises if a worker the command started has died.
    """
    last_state: tuple[int, int] | None = None
    last_change = time.monotonic()
    bar = tqdm(
        total=total_chunks,
        unit="chunk",
        desc="chunks",
        disable=not show_progress,
        dynamic_ncols=True,
        leave=True,
    )
    try:
        while True:
            embedded, applied = store.progress()
            stats = store.stats()
            bar.n = min(max(embedded, applied), total_chunks)
            bar.set_postfix(
                applied=applied, faces=stats["faces_embedded"], ids=stats["identities"], refresh=False
            )
            bar.refresh()
            if applied >= total_chunks:
                break
            now = time.monotonic()
            if (embedded, applied) != last_state:
                last_state, last_change = (embedded, applied), now
            elif now - last_change > stall_timeout:
                raise FacepipeError(
                    f"run {store.run_id} stalled: chunk {applied} of {total_chunks} has not "
                    f"arrived for {stall_timeout:.0f} s; check that detect, embed and writer "
                    f"workers are running ('celery -A tasks inspect active_queues'), then "
                    f"'facepipe status {store.run_id}'"
                )
            if check_alive is not None:
                check_alive()
            time.sleep(poll_s)
    finally:
        bar.close()
