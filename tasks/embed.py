"""embed: batched ArcFace over a chunk's crops; store the result for the writer."""

from __future__ import annotations

from typing import Any

from facepipe.pipeline import embed_record
from facepipe.records import ChunkRecord
from tasks.celery_app import app
from tasks.common import BadMessage, check_ids, embedder, log, maybe_inject_fault, run_params, run_store
from tasks.failures import retry_or_give_up


def _parse(seq: int, record: Any) -> ChunkRecord:
    if not isinstance(record, dict):
        raise BadMessage("record must be an object")
    try:
        parsed = ChunkRecord.from_dict(record)
    except TypeError as exc:
        raise BadMessage(f"malformed record: {exc}") from None
    if parsed.seq != seq or len(parsed.faces) != len(parsed.crops):
        raise BadMessage("record does not match its chunk (seq or crop count)")
    return parsed


@app.task(name="facepipe.embed", bind=True)
def embed(self, run_id: str, seq: int, prefix: str, record: dict[str, Any]) -> str:
    try:
        check_ids(run_id, seq, prefix)
        parsed = _parse(seq, record)
        store = run_store(prefix, run_id)
        params = run_params(store)
    except BadMessage as exc:
        log.error("rejected embed message: %s", exc)
        return f"rejected: {exc}"
    if seq < store.next_seq():
        return "already applied"
    try:
        result = embed_record(parsed, embedder(params.get("rec_model")), bool(params.get("save_images")))
    except Exception as exc:  # noqa: BLE001 - corrupt crops, model errors: retried, then recorded
        stub = ChunkRecord(parsed.seq, parsed.start, parsed.stop, parsed.step)
        retry_or_give_up(self, store, params, stub, exc)
        return "failed"
    store.put_chunk(seq, result.to_dict())
    from tasks.write import write

    write.apply_async((run_id, seq, prefix))
    maybe_inject_fault(store, "embed", seq)
    return f"{len(result.faces)} faces embedded"
