"""Submit a video as chunk tasks, then follow the run in Redis until the writer is done.

This module knows nothing of Celery: it is handed a ``send(stage, message)`` function
(:data:`facepipe.distributed.stages.Send`).
Following works the same for the embedded default and for remote workers, because all
progress lives in the run's Redis keys.

The dispatcher is not a single point of failure:

* **a broker outage** (a Redis restart, a network cut) is ridden out: every call to the
  broker is retried with back-off (:class:`BrokerPatience`) for as long as ``--stall-timeout``
  allows since the last progress, and the progress bar says that it waits for the broker;
* **a dispatcher that dies** (killed, a laptop closed) leaves its run resumable: the run's plan
  and how many chunks were sent are in Redis, a lease (:class:`~facepipe.distributed.store.Lease`)
  tells ``facepipe runs`` that nobody follows it any more, and :func:`pending_chunks` is what
  ``facepipe resume`` sends again;
* **a full broker** (``maxmemory`` with ``noeviction``) is refused before a run starts when the
  run would not fit (:func:`check_room`), and stops the dispatcher with one line naming the
  remedy when workers meet it mid-run.
"""

from __future__ import annotations

import itertools
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import redis
from tqdm import tqdm

from facepipe.distributed.messages import DetectMessage, WriteMessage
from facepipe.distributed.stages import DETECT, WRITE, Send
from facepipe.distributed.store import (
    DOWN_ERRORS,
    FULL_REMEDY,
    RENEW_S,
    RESERVE_SHARE,
    RETRY_CAP_S,
    BrokerDown,
    BrokerFull,
    Lease,
    RunStore,
    broker_memory,
    full_message,
    is_full,
    redact,
)
from facepipe.errors import FacepipeError
from facepipe.media.plan import Plan, plan
from facepipe.media.readers import chunk_reader, encode_frame
from facepipe.records import Chunk, RunParams, ShippedFrame, VideoInfo
from facepipe.settings import Settings

T = TypeVar("T")

#: Redis memory a run takes per sampled frame while it is in flight and until it expires:
#: the kept thumbnails, face lines and embeddings, identities, chunk results waiting for the
#: writer and the queued messages. Measured on the shared clips (compose/README.md, "How much
#: memory Redis needs"); used to refuse a run that cannot fit before it starts.
BYTES_PER_SAMPLED_FRAME = 12_000
#: seconds without progress after a broker outage before the dispatcher sends again the chunks
#: whose messages the broker may have lost (see :func:`follow`)
RESEND_AFTER_S = 20.0


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
    #: the chunks still to send (all of them for a new run; what is missing for a resumed one)
    to_send: list[Chunk] = field(default_factory=list)
    #: the dispatcher's claim on the run while it follows it (with a broker)
    lease: Lease | None = None
    #: how the dispatcher waits out a broker outage (with a broker): while it follows the run,
    #: and while it writes the run's outputs from Redis
    patience: BrokerPatience | None = None


def create_run(
    store: RunStore,
    info: VideoInfo,
    settings: Settings,
    planned: Plan | None = None,
    **record: Any,
) -> PlannedRun:
    """Record the run (its :class:`RunParams`, built once here) with its chunks. ``planned`` is
    the video's chunk plan for ``--decoder`` (made here when not given); ``record`` goes into the
    run's meta too (its output folder, its season), for ``facepipe resume``."""
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
            **record,
        },
        chunks,
    )
    return PlannedRun(store, info, chunks, params, list(chunks))


def pending_chunks(store: RunStore) -> list[Chunk]:
    """The chunks of a recorded run that are neither applied nor stored: those never sent, and
    those whose message was lost (a broker that restarted without its data, or refused a worker's
    write when full). Sending one again is harmless: whichever copy comes second finds its chunk
    stored or applied and does nothing."""
    applied, stored = store.next_seq(), store.stored()
    return [chunk for chunk in store.plan() if chunk.seq >= applied and chunk.seq not in stored]


def resend_waiting(store: RunStore, send: Send) -> int:
    """Send again the chunk the writer waits for, unless its result is stored, and nudge the
    writer (in case it is the nudge that was lost): what a run that stopped moving needs when
    a message was lost. Returns how many chunks were sent (0 or 1)."""
    seq, plan = store.next_seq(), store.plan()
    if seq >= len(plan):
        return 0
    sent = 0
    if not store.is_stored(seq):
        send(DETECT, DetectMessage(run_id=store.run_id, prefix=store.prefix, chunk=plan[seq]))
        sent = 1
    nudge_writer(store, plan, send)
    return sent


def nudge_writer(store: RunStore, chunks: Sequence[Chunk], send: Send) -> None:
    """Have the writer apply whatever is stored and next in line (a resumed run whose last
    nudge was lost would otherwise wait for one)."""
    seq = store.next_seq()
    if seq < len(chunks):
        send(WRITE, WriteMessage(run_id=store.run_id, prefix=store.prefix, chunk=chunks[seq]))


def check_room(client: redis.Redis, broker: str, sampled_frames: int) -> str | None:
    """Refuse (one line, :class:`BrokerFull`) a run that cannot fit in the broker's ``maxmemory``;
    returns a warning when the broker would evict keys when full (a run could lose data)."""
    memory = broker_memory(client)
    needed = sampled_frames * BYTES_PER_SAMPLED_FRAME
    headroom = memory.headroom()
    if headroom is not None and needed > headroom:
        free, used, limit = max(0, headroom) / 1e6, memory.used / 1e6, memory.limit / 1e6
        raise BrokerFull(
            f"the broker {redact(broker)} has {free:.1f} MB free for runs ({used:.1f} MB used of maxmemory "
            f"{limit:.1f} MB, the last {RESERVE_SHARE:.0%} left to the queues) and this run needs about "
            f"{needed / 1e6:.1f} MB: {FULL_REMEDY}; nothing was started"
        )
    if memory.limit and memory.policy != "noeviction":
        return (
            f"the broker {redact(broker)} evicts keys when full (maxmemory-policy {memory.policy}): a run "
            "could silently lose data; set 'maxmemory-policy noeviction'"
        )
    return None


class BrokerPatience:
    """Calls to the broker that wait out an outage: each is retried with back-off (0.25 s
    doubling to :data:`~facepipe.distributed.store.RETRY_CAP_S`) until it works, or until
    ``limit_s`` have passed since ``since`` (the last progress; by default the start of the
    outage), when it raises :class:`~facepipe.distributed.store.BrokerDown` with what to do.

    The user hears about an outage once when it begins and once when it ends (a line on
    stderr), and the progress bar, when there is one, says that it waits for the broker.
    """

    def __init__(self, broker: str, limit_s: float, resume_hint: str = "") -> None:
        self.shown = redact(broker)
        self.limit_s = limit_s
        self.resume_hint = resume_hint
        self.bar: tqdm | None = None
        self.down_since: float | None = None
        self.outages = 0
        #: when the last outage ended (monotonic; 0 before any)
        self.back_at = 0.0
        self._delay = 0.25
        self._desc = ""

    def call(self, fn: Callable[[], T], since: float | None = None) -> T:
        while True:
            try:
                result = fn()
            except DOWN_ERRORS as exc:
                if is_full(exc):
                    raise
                self._wait(exc, since)
                continue
            self._back()
            return result

    def _wait(self, exc: BaseException, since: float | None) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since, self._delay = now, 0.25
            self.outages += 1
            self.say(f"facepipe: lost the broker {self.shown} ({_reason(exc)}); waiting for it")
            if self.bar is not None:
                self._desc = self.bar.desc
        waited = now - self.down_since
        start = min(self.down_since, since) if since is not None else self.down_since
        if now - start > self.limit_s:
            raise BrokerDown(
                f"the broker {self.shown} has not answered for {waited:.0f} s ({_reason(exc)}), "
                f"and nothing progressed for {now - start:.0f} s (--stall-timeout {self.limit_s:g}); "
                f"the run stays in Redis{self.resume_hint}"
            ) from None
        if self.bar is not None:
            self.bar.set_description_str(f"waiting for the broker ({waited:.0f} s)", refresh=True)
        time.sleep(self._delay)
        self._delay = min(self._delay * 2, RETRY_CAP_S)

    def _back(self) -> None:
        if self.down_since is None:
            return
        self.back_at = time.monotonic()
        waited = self.back_at - self.down_since
        self.down_since = None
        if self.bar is not None:
            self.bar.set_description_str(self._desc, refresh=False)
        self.say(f"facepipe: the broker {self.shown} is back after {waited:.1f} s; carrying on")

    def say(self, text: str) -> None:
        """A line for the user, above the progress bar when there is one."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


def _say_above(bar: tqdm) -> Callable[[str], None]:
    return lambda text: bar.write(text, file=sys.stderr)


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__


def send_chunks(runs: Sequence[PlannedRun], send: Send, patience: BrokerPatience | None = None) -> None:
    """One detect task per chunk still to send, each run in order, the runs interleaved (round
    robin) so that every run of a season is in flight at once and finishes about together.
    Each run's ``K:sent`` counts what the broker took, for ``facepipe resume``."""
    call = patience.call if patience is not None else _now
    for batch in itertools.zip_longest(*(run.to_send for run in runs)):
        for run, chunk in zip(runs, batch, strict=True):
            if chunk is None:
                continue
            message = DetectMessage(run_id=run.store.run_id, prefix=run.store.prefix, chunk=chunk)
            call(lambda message=message: send(DETECT, message))
            call(lambda run=run, chunk=chunk: run.store.mark_sent(chunk.seq + 1))
    for run in runs:
        run.to_send = []


def _now(fn: Callable[[], T], since: float | None = None) -> T:
    return fn()


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

    def __init__(
        self,
        run: PlannedRun,
        settings: Settings,
        send: Send,
        max_inflight: int = 16,
        patience: BrokerPatience | None = None,
    ) -> None:
        super().__init__(name=f"frame-shipper-{run.store.run_id}", daemon=True)
        self.store, self.info, self.chunks = run.store, run.info, run.to_send
        self.settings, self.send = settings, send
        self.max_inflight = max_inflight
        self.call = patience.call if patience is not None else _now
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
            while chunk.seq - self.call(self.store.next_seq) >= self.max_inflight:
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
            message = DetectMessage(
                run_id=self.store.run_id, prefix=self.store.prefix, chunk=chunk, frames=frames
            )
            self.call(lambda message=message: self.send(DETECT, message))
            self.call(lambda chunk=chunk: self.store.mark_sent(chunk.seq + 1))

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
    patience: BrokerPatience | None = None,
    leases: Sequence[Lease] = (),
    broker: str | None = None,
    resend: Callable[[bool], int] | None = None,
    resend_after: float = 0.0,
) -> None:
    """Block until every chunk of every run is applied, with one progress bar for them all;
    raise a clear error if the runs stall.

    ``resend(everything)`` sends chunks again and nudges the writers (returns how many chunks),
    because a worker that took a message just as its connection dropped, or just as it was
    killed, can lose it (Celery's Redis transport records a delivery after taking it from the
    queue): every chunk neither stored nor applied, once after a broker outage when nothing has
    progressed for :data:`RESEND_AFTER_S` since; only the chunk each writer waits for, once
    whenever nothing has progressed for ``resend_after`` seconds (0: never).

    ``check_alive`` (embedded mode) raises if a worker the command started has died.
    ``patience`` rides out broker outages (counted against ``stall_timeout``); every
    :data:`~facepipe.distributed.store.RENEW_S` seconds the ``leases`` are renewed and, with
    ``broker``, its memory is watched (:class:`MemoryWatch`).
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
    if patience is not None and show_progress:
        patience.bar = bar
    call = patience.call if patience is not None else _now
    memory = MemoryWatch(runs[0].store.r, broker, bar if show_progress else None) if broker and runs else None
    if memory is not None:
        call(memory.start)
    next_renewal, next_look = time.monotonic() + RENEW_S, time.monotonic()
    outages_handled = patience.outages if patience is not None else 0
    resent_since: float | None = None  # the stall (its last change) already answered with a resend
    try:
        while True:
            state, counters = call(lambda: _poll(runs), since=last_change)
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
                call(lambda: _wait_for_crops(runs))
                break
            now = time.monotonic()
            if state != last_state:
                last_state, last_change = state, now
            elif now - last_change > stall_timeout:
                if memory is not None and memory.full:
                    raise BrokerFull(memory.message(runs))
                raise FacepipeError(_stalled(runs, state, stall_timeout))
            elif (
                resend is not None
                and patience is not None
                and patience.outages > outages_handled
                and patience.down_since is None
                and now - max(last_change, patience.back_at) > RESEND_AFTER_S
            ):
                outages_handled = patience.outages
                count = call(lambda: resend(True), since=last_change)
                patience.say(
                    f"facepipe: nothing moved for {RESEND_AFTER_S:.0f} s after the broker came back: sent "
                    f"{count} chunks again whose messages it may have lost (a second copy does nothing)"
                )
            elif (
                resend is not None
                and resend_after > 0
                and now - last_change > resend_after
                and resent_since != last_change
                and (patience is None or patience.outages == outages_handled)  # that case is above
                and not (memory is not None and memory.full)  # a full broker pauses; nothing is lost
            ):
                resent_since = last_change
                count = call(lambda: resend(False), since=last_change)
                if count:
                    (patience.say if patience is not None else _say_above(bar))(
                        f"facepipe: no chunk completed for {resend_after:.0f} s: sent again the "
                        f"{count} chunk(s) the writer waits for, in case a message was lost "
                        "(a second copy does nothing; --resend-after)"
                    )
            if now >= next_renewal:
                for lease in leases:
                    call(lease.renew, since=last_change)
                next_renewal = now + RENEW_S
            if memory is not None and now >= next_look:
                call(lambda: memory.check(runs), since=last_change)  # type: ignore[union-attr]
                next_look = now + MemoryWatch.every_s
            if check_alive is not None:
                check_alive()
            time.sleep(poll_s)
    except redis.ResponseError as exc:
        if broker and is_full(exc):
            raise BrokerFull(full_message(broker, runs[0].store.r)) from None
        raise
    finally:
        bar.close()
        if patience is not None:
            patience.bar = None


class MemoryWatch:
    """The dispatcher's eye on the broker's memory while it follows runs.

    * The broker full (:attr:`~facepipe.distributed.store.BrokerMemory.full`): the workers wait
      for memory (:class:`~facepipe.distributed.store.RoomGuard`), so does the dispatcher, for up
      to ``--stall-timeout``; the user is told at once what to do, and again when it is done.
    * Writes refused for want of memory since the runs began (``INFO errorstats``): a worker
      met the hard limit after all (its Celery delivery bookkeeping was refused, which stops it
      and loses the message it took), so the runs cannot finish by themselves: stop now and say
      how to resume.
    """

    #: how often the broker's memory is read (``INFO``, a fraction of a millisecond)
    every_s = 1.0

    def __init__(self, client: redis.Redis, broker: str, bar: tqdm | None) -> None:
        self.client, self.broker, self.bar = client, broker, bar
        self.refused = 0
        self.full = False

    def start(self) -> None:
        self.refused = broker_memory(self.client).refused

    def check(self, runs: Sequence[PlannedRun]) -> None:
        memory = broker_memory(self.client)
        if memory.refused > self.refused:
            raise BrokerFull(self.message(runs))
        self.refused = memory.refused  # (a restarted broker counts from zero again)
        if memory.full and not self.full:
            self._say(
                "facepipe: "
                + full_message(
                    self.broker, self.client, "; the workers wait for memory, and so does this command"
                )
            )
        elif self.full and not memory.full:
            self._say("facepipe: the broker has room again; carrying on")
        self.full = memory.full

    def message(self, runs: Sequence[PlannedRun]) -> str:
        ids = " ".join(run.store.run_id for run in runs)
        return full_message(self.broker, self.client, f"; then 'facepipe resume {ids}' finishes it")

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


def _poll(runs: Sequence[PlannedRun]) -> tuple[list[tuple[int, int]], list]:
    return [run.store.progress() for run in runs], [run.store.counters() for run in runs]


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
        f"'facepipe status {run.store.run_id}' (a chunk whose message was lost is sent again by "
        f"'facepipe resume {run.store.run_id}')"
    )
