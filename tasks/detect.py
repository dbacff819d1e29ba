"""detect: decode a chunk's frames, gate blur, find and align faces, hand crops to embed."""

from __future__ import annotations

from facepipe.pipeline import detect_chunk
from facepipe.records import ChunkRecord
from facepipe.video import Chunk
from tasks.celery_app import app
from tasks.common import BadMessage, check_ids, detector, log, maybe_inject_fault, run_params, run_store
from tasks.failures import retry_or_give_up


@app.task(name="facepipe.detect", bind=True)
def detect(
    self, run_id: str, seq: int, start: int, stop: int, prefix: str = "facepipe", frames: list | None = None
) -> str:
    """Chunk ``seq`` = sampled frames in [start, stop) of run ``run_id``'s video.

    ``frames`` ([index, base64 JPEG] pairs) is set with ``--ship-frames``, for workers
    that cannot open the video themselves.
    """
    try:
        check_ids(run_id, seq, prefix)
        shipped = _check_shipped(frames, start, stop)
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
        record = detect_chunk(params["video"], chunk, params, detector(params.get("det_model")), shipped)
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
        retry_or_give_up(self, store, params, ChunkRecord(seq, start, stop, chunk.step), exc)
        return "failed"
    from tasks.embed import embed

    embed.apply_async((run_id, seq, prefix, record.to_dict()))
    maybe_inject_fault(store, "detect", seq)
    return f"{len(record.faces)} faces in {record.frames_sampled} frames"


def _check_shipped(frames: object, start: int, stop: int) -> list[tuple[int, str]] | None:
    if frames is None:
        return None
    if not isinstance(frames, list) or len(frames) > 10_000:
        raise BadMessage("frames must be a list of [index, base64 JPEG] pairs")
    shipped = []
    for item in frames:
        ok = (
            isinstance(item, list | tuple)
            and len(item) == 2
            and isinstance(item[0], int)
            and isinstance(item[1], str)
            and start <= item[0] < stop
        )
        if not ok:
            raise BadMessage("frames must be [index, base64 JPEG] pairs inside the chunk's range")
        shipped.append((item[0], item[1]))
    return shipped
