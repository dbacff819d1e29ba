"""The one task base of the three stages: what every chunk task does around its work.

Around each stage's own work (``tasks/detect.py``, ``embed.py``, ``write.py``) the base:

1. **validates** the message with its pydantic model (:mod:`facepipe.records`); a
   malformed one is logged and dropped, never executed, retried or allowed to crash the
   worker (Celery's ``pydantic=True`` would fail the task instead, so we validate here);
2. **opens the run**: its store and its :class:`~facepipe.records.RunParams`, read
   from Redis (a message never decides how a run is processed);
3. **skips** a chunk the writer has already applied, or whose result is already stored (a
   redelivery, a duplicate, a chunk ``facepipe resume`` sent again; the writer is nudged
   anyway); the writer's own nudges always run, as applying is idempotent and a retried
   nudge must reach the chunk that failed;
4. runs the stage, which receives ``(run, message)`` typed;
5. on failure **retries** with Celery's exponential back-off (1, 2, 4 ... 30 s), at most
   the run's ``--task-retries`` times, then **gives up**: the chunk is recorded as lost
   so the writer moves past it (:meth:`StageTask.give_up`; the writer's own variant in
   ``tasks/write.py``);
6. stops the **worker** instead when its model cannot be loaded: the message goes back
   to the queue for a healthy worker, and the log says why in one line;
7. rides out a **broker outage**: the run store's client retries every command until the
   broker is back (:func:`facepipe.distributed.store.connect` with ``ride_out``), so an outage
   delays a chunk and never fails it; a **full broker** (its ``maxmemory`` reached, with
   ``noeviction``) drops the chunk with one log line instead of retrying into it: nothing can be
   recorded there, and ``facepipe resume`` sends the chunk again once memory is freed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import redis
from celery import Task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval
from pydantic import ValidationError

from facepipe.distributed.messages import TaskMessage, WriteMessage
from facepipe.distributed.stages import WRITE, Stage
from facepipe.distributed.store import (
    RESERVE_SHARE,
    BrokerMemory,
    RoomGuard,
    RunStore,
    UnknownRun,
    connect,
    is_full,
    redact,
)
from facepipe.errors import ModelLoadError
from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.inference.model import FaceModel
from facepipe.records import ChunkRecord, RunParams
from facepipe.settings import WorkerSettings, load_worker_settings

log = logging.getLogger("facepipe.tasks")

#: what a task returns when it did no work (the fault-injection hook skips these)
REJECTED, ALREADY_APPLIED, ALREADY_STORED, LOST, BROKER_FULL = (
    "rejected",
    "already applied",
    "already stored",
    "lost",
    "broker full",
)


@dataclass(frozen=True)
class RunContext:
    """The run a message belongs to: where it lives and how it is processed."""

    store: RunStore
    params: RunParams


@functools.lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    return load_worker_settings()


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    """The run store's client: every command waits out a broker outage."""
    return connect(url, timeout=30, ride_out=True, tls_ca_certs=worker_settings().tls_ca_certs)


@functools.lru_cache(maxsize=4)
def _room(url: str) -> RoomGuard:
    return RoomGuard(_client(url))


@functools.lru_cache(maxsize=4)
def _model(kind: type[FaceModel], explicit: str | None, backend: str, precision: str) -> FaceModel:
    """A model loaded once per process and runtime: the run's own file, else the worker's,
    else the default."""
    settings = worker_settings()
    fallback = settings.det_model if kind is FaceDetector else settings.rec_model
    return kind.from_settings(
        explicit or fallback, settings.ort_threads, settings.providers, backend, precision
    ).load()


def detector(explicit: str | None, backend: str = "auto", precision: str = "auto") -> FaceDetector:
    """This process's detector: the run's ``--det-model``, else the worker's."""
    return _model(FaceDetector, explicit, backend, precision)  # type: ignore[return-value]


def embedder(explicit: str | None, backend: str = "auto", precision: str = "auto") -> FaceEmbedder:
    """This process's embedder: the run's ``--rec-model``, else the worker's."""
    return _model(FaceEmbedder, explicit, backend, precision)  # type: ignore[return-value]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "message"
        return f"{where}: {err['msg']}"
    return str(exc)


class StageTask(Task):
    """Base of the stage tasks. The decorated function is the stage's work: ``(run, message)``."""

    #: the pydantic model of this stage's message (set by the task decorator)
    message_type: ClassVar[type[TaskMessage]]
    #: the stage this task implements (set by the task decorator)
    stage: ClassVar[Stage]
    #: the call is validated by :attr:`message_type`, not by Celery's signature check
    typing = False
    #: drop the message when the writer is already past its chunk (a redelivery, a duplicate)
    skip_applied: ClassVar[bool] = True
    #: wait while the broker is full before adding a chunk's data (the writer does not: applying a
    #: stored chunk adds about what it frees, and lets runs finish)
    waits_for_room: ClassVar[bool] = True
    #: retry policy: exponential back-off in seconds, capped; the count is the run's
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = False

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        try:
            if len(args) != 1 or kwargs:
                raise ValueError(f"expected one message object, got {len(args)} arguments")
            message = self.message_type.model_validate(args[0])
            store = RunStore(_client(self.app.conf.broker_url), message.prefix, message.run_id)
            run = RunContext(store, store.params())
        except (ValidationError, UnknownRun, ValueError) as exc:
            log.error("rejected %s message: %s", self.stage.name, _reason(exc))
            return f"{REJECTED}: {_reason(exc)}"
        if self.skip_applied and message.seq < run.store.next_seq():
            return ALREADY_APPLIED
        if self.skip_applied and run.store.is_stored(message.seq):
            # whoever stored it nudged the writer; one more nudge is cheap, and a resumed run's
            # last nudge may have been lost
            nudge = WriteMessage(run_id=message.run_id, prefix=message.prefix, chunk=message.chunk)
            self.hand_on(WRITE, nudge)
            return ALREADY_STORED
        waited = self.waits_for_room and _room(self.app.conf.broker_url).wait(
            lambda m: self._say_full(run, m)
        )
        if waited and not run.store.exists():  # deleted to make room while we waited
            log.warning(
                "run %s was deleted while chunk %d waited for room; dropped", run.store.run_id, message.seq
            )
            return f"{REJECTED}: run deleted"
        try:
            # The tracer has pushed this delivery's request already (Task.__call__ would
            # push a second, emptier one), so call the stage's function directly.
            return self.run(run, message)
        except ModelLoadError as exc:
            self._stop_worker(exc)
        except Exception as exc:  # noqa: BLE001 - any other failure: retried, then given up
            if is_full(exc):
                log.error(
                    "run %s chunk %d dropped: the broker %s is full (maxmemory, noeviction); free memory "
                    "('facepipe runs', 'facepipe delete RUN_ID'), then 'facepipe resume %s' sends it again",
                    run.store.run_id,
                    message.seq,
                    redact(self.app.conf.broker_url),
                    run.store.run_id,
                )
                return BROKER_FULL
            retries = self.request.retries
            if retries < run.params.task_retries:
                log.warning("run %s chunk %d: %s; retry %d", run.store.run_id, message.seq, exc, retries + 1)
                countdown = get_exponential_backoff_interval(
                    self.retry_backoff, retries, self.retry_backoff_max, self.retry_jitter
                )
                raise self.retry(exc=exc, countdown=countdown, max_retries=run.params.task_retries) from None
            log.error(
                "run %s chunk %d: %s; giving up after %d retries", run.store.run_id, message.seq, exc, retries
            )
            self.give_up(run, message, f"{type(exc).__name__}: {exc}")
            return LOST
        raise AssertionError("unreachable")

    def _say_full(self, run: RunContext, memory: BrokerMemory) -> None:
        log.error(
            "the broker %s is full (%d MB used of maxmemory %d MB; facepipe leaves the last %d%% to the "
            "queues): run %s waits until memory is freed ('facepipe runs', 'facepipe delete RUN_ID')",
            redact(self.app.conf.broker_url),
            memory.used // 1_000_000,
            memory.limit // 1_000_000,
            round(RESERVE_SHARE * 100),
            run.store.run_id,
        )

    def give_up(self, run: RunContext, message: TaskMessage, reason: str) -> None:
        """Record the message's chunk as lost (replacing any result) and nudge the writer."""
        chunk = message.chunk
        run.store.put_chunk(
            ChunkRecord.lost(chunk.seq, chunk.start, chunk.stop, run.params.frame_step, reason)
        )
        self.hand_on(WRITE, WriteMessage(run_id=message.run_id, prefix=message.prefix, chunk=chunk))

    def hand_on(self, stage: Stage, message: TaskMessage) -> None:
        """Send ``message`` to the next stage, by task name (stages never import each other)."""
        self.app.send_task(stage.task, args=(message.payload(),))

    def _stop_worker(self, exc: ModelLoadError) -> None:
        log.critical("%s; this worker stops, and the chunk goes back to the queue for another", exc)
        self.app.control.shutdown(destination=[self.request.hostname])
        raise Reject(str(exc), requeue=True) from None
