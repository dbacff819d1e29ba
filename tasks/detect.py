"""detect: decode a chunk's frames, gate blur, find and align faces, hand crops to embed."""

from __future__ import annotations

from facepipe.pipeline import detect_chunk
from facepipe.records import ChunkRecord
from facepipe.video import Chunk
from tasks.celery_app import app
from tasks.common import BadMessage, check_ids, detector, log, maybe_inject_fault, run_params, run_store
from tasks.failures import retry_or_give_up


@app.task(name="facepipe.detect", bind=True)
def detect(self, run_id: str, seq: int, start: int, stop: int, prefix: str = "facepipe") -> str:
    """Chunk ``seq`` = sampled frames in [start, stop) of run ``run_id``'s video."""
    try:
        check_ids(run_id, seq, prefix)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)):
            raise BadMessage(f"frame range must be integers, got {start!r}, {stop!r}")
        store = run_store(prefix, run_id)
        params = run_params(store)
        if not 0 <= start < stop <= int(params["frame_count"]):
            raise BadMessage(f"frame range [{start}, {stop}) outside the video")
    except BadMessage as exc:
        log.error("rejected detect message: %s", exc)
        return f"rejected: {exc}"
    if seq < store.next_seq():
        return "already applied"
    chunk = Chunk(seq, start, stop, int(params["frame_step"]))
    try:
        record = detect_chunk(params["video"], chunk, params, detector(params.get("det_model")))
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
        retry_or_give_up(self, store, params, ChunkRecord(seq, start, stop, chunk.step), exc)
        return "failed"
    from tasks.embed import embed

    embed.apply_async((run_id, seq, prefix, record.to_dict()))
    maybe_inject_fault(store, "detect", seq)
    return f"{len(record.faces)} faces in {record.frames_sampled} frames"
