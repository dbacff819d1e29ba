"""detect: decode a chunk's frames, gate blur, find and align faces; hand the crops to embed, or
embed them here when this worker holds the embedder too."""

from __future__ import annotations

import numpy as np

from facepipe.distributed.messages import DetectMessage, EmbedMessage, WriteMessage
from facepipe.distributed.stages import DETECT, EMBED, WRITE
from facepipe.inference.chunk import detect_chunk, embed_record
from facepipe.inference.detector import Detection
from facepipe.media.images import thumbnail
from facepipe.records import face_key
from tasks.base import RunContext, StageTask, detector, embedder, worker_settings
from tasks.celery_app import app


@app.task(bind=True, base=StageTask, name=DETECT.task, stage=DETECT, message_type=DetectMessage)
def detect(self: StageTask, run: RunContext, message: DetectMessage) -> str:
    """Chunk ``message.chunk`` of the run's video (or the frames shipped in the message).

    A worker that preloads the embedder as well (``FACEPIPE_PRELOAD=detector,embedder``: every
    model worker of the embedded default) embeds the chunk's crops itself, as arrays, and stores
    the result for the writer: no PNG crops, no embed message (~400 KB a chunk, twice in Redis),
    one task fewer. The embeddings are the same as the embed stage's (lossless either way).
    """
    settings = worker_settings()
    params = run.params
    model = detector(params.det_model, params.backend, params.precision)
    thumbnails: dict[str, bytes] = {}  # each face's report thumbnail, cut while its frame is decoded

    def keep_thumbnail(index: int, frame: np.ndarray, face: Detection) -> None:
        box = [round(float(v), 2) for v in face.bbox]  # as faces.jsonl has it: the report finds it so
        thumbnails[face_key(index, box)] = thumbnail(frame, box)

    fused = "embedder" in settings.preloaded()
    pixels: list[np.ndarray] | None = [] if fused else None
    record = detect_chunk(
        message.chunk,
        params,
        model,
        message.frames,
        settings.decode_threads,
        settings.cache_dir,
        on_face=keep_thumbnail,
        pixels=pixels,
        hwaccel=settings.hwaccel or None,
    )
    if message.seq >= run.store.next_seq():  # a late duplicate would recreate an expired run's keys
        run.store.keep_thumbnails(thumbnails)
        run.store.note_runtime("detect", model.runtime.describe())
    if not fused:
        embed_message = EmbedMessage(
            run_id=message.run_id, prefix=message.prefix, chunk=message.chunk, record=record
        )
        self.hand_on(EMBED, embed_message)
        return f"{len(record.faces)} faces in {record.frames_sampled} frames"
    rec = embedder(params.rec_model, params.backend, params.precision)
    record = embed_record(record, rec, keep_crops=params.save_images, pixels=pixels)
    if run.store.put_chunk(record):  # (False: a late duplicate of an applied chunk)
        run.store.note_runtime("embed", rec.runtime.describe())
    self.hand_on(WRITE, WriteMessage(run_id=message.run_id, prefix=message.prefix, chunk=message.chunk))
    return f"{len(record.faces)} faces in {record.frames_sampled} frames, embedded here"
