"""Bounded retries, then an explicit 'lost' record so the writer can move past the chunk."""

from __future__ import annotations

from typing import Any

from celery import Task

from facepipe.records import ChunkRecord
from facepipe.store import RunStore
from tasks.common import log


def retry_or_give_up(
    task: Task, store: RunStore, params: dict[str, Any], stub: ChunkRecord, exc: Exception
) -> None:
    """Retry the task with back-off; after ``task_retries`` retries record the chunk as failed."""
    retries = task.request.retries
    if retries < int(params.get("task_retries", 2)):
        log.warning("run %s chunk %d: %s; retry %d", store.run_id, stub.seq, exc, retries + 1)
        raise task.retry(exc=exc, countdown=min(2**retries, 30))
    stub.failed = f"{type(exc).__name__}: {exc}"[:500]
    store.put_chunk(stub.seq, stub.to_dict())
    from tasks.write import write

    write.apply_async((store.run_id, stub.seq, store.prefix))
