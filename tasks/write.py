"""write: the single writer. Applies every chunk that is next in line, in order, once."""

from __future__ import annotations

from facepipe.writer import Writer
from tasks.celery_app import app
from tasks.common import BadMessage, check_ids, log, maybe_inject_fault, run_params, run_store

_writer = Writer()


@app.task(name="facepipe.write")
def write(run_id: str, seq: int, prefix: str = "facepipe") -> str:
    """Nudge the writer: chunk ``seq`` is in. Applies it and any later chunks already waiting."""
    try:
        check_ids(run_id, seq, prefix)
        store = run_store(prefix, run_id)
        params = run_params(store)
    except BadMessage as exc:
        log.error("rejected write message: %s", exc)
        return f"rejected: {exc}"
    applied = _writer.apply_ready(store, params)
    maybe_inject_fault(store, "write", seq)
    return f"applied {applied} chunks"
