"""detect: decode a chunk's frames, gate blur, find and align faces, hand crops to embed."""

from __future__ import annotations

import numpy as np

from facepipe.distributed.messages import DetectMessage, EmbedMessage
from facepipe.distributed.stages import DETECT, EMBED
from facepipe.inference.chunk import detect_chunk
from facepipe.inference.detector import Detection
from facepipe.media.images import thumbnail
from facepipe.records import face_key
from tasks.base import RunContext, StageTask, detector, worker_settings
from tasks.celery_app import app


@app.task(bind=True, base=StageTask, name=DETECT.task, stage=DETECT, message_type=DetectMessage)
def detect(self: StageTask, run: RunContext, message: DetectMessage) -> str:
    """Chunk ``message.chunk`` of the run's video (or the frames shipped in the message)."""
    settings = worker_settings()
    params = run.params
    model = detector(params.det_model, params.backend, params.precision)
    thumbnails: dict[str, bytes] = {}  # each face's report thumbnail, cut while its frame is decoded

    def keep_thumbnail(index: int, frame: np.ndarray, face: Detection) -> None:
        box = [round(float(v), 2) for v in face.bbox]  # as faces.jsonl has it: the report finds it so
        thumbnails[face_key(index, box)] = thumbnail(frame, box)

    record = detect_chunk(
        message.chunk,
        params,
        model,
        message.frames,
        settings.decode_threads,
        settings.cache_dir,
        on_face=keep_thumbnail,
    )
    run.store.keep_thumbnails(thumbnails)
    run.store.note_runtime("detect", model.runtime.describe())
    self.hand_on(
        EMBED, EmbedMessage(run_id=message.run_id, prefix=message.prefix, chunk=message.chunk, record=record)
    )
    return f"{len(record.faces)} faces in {record.frames_sampled} frames"
