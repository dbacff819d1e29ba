"""detect: decode a chunk's frames, gate blur, find and align faces, hand crops to embed."""

from __future__ import annotations

import numpy as np

from facepipe.contracts import DetectMessage, EmbedMessage
from facepipe.models import Detection
from facepipe.pipeline import detect_chunk
from facepipe.report.crops import face_crop, face_key
from facepipe.stages import DETECT, EMBED
from tasks.base import RunContext, StageTask, detector, worker_settings
from tasks.celery_app import app


@app.task(bind=True, base=StageTask, name=DETECT.task, stage=DETECT, message_type=DetectMessage)
def detect(self: StageTask, run: RunContext, message: DetectMessage) -> str:
    """Chunk ``message.chunk`` of the run's video (or the frames shipped in the message)."""
    settings = worker_settings()
    params = run.params
    model = detector(params.det_model, params.backend, params.precision)
    crops: dict[str, bytes] = {}  # the report's crop of each face, cut while the frame is decoded

    def keep_crop(index: int, frame: np.ndarray, face: Detection) -> None:
        box = [
            round(float(v), 2) for v in face.bbox
        ]  # as faces.jsonl has it: the same crop as from the video
        crops[face_key(index, box)] = face_crop(frame, box)

    record = detect_chunk(
        message.chunk, params, model, message.frames, settings.decode_threads, settings.cache_dir, keep_crop
    )
    run.store.keep_crops(crops)
    run.store.note_runtime("detect", model.runtime.describe())
    self.hand_on(
        EMBED, EmbedMessage(run_id=message.run_id, prefix=message.prefix, chunk=message.chunk, record=record)
    )
    return f"{len(record.faces)} faces in {record.frames_sampled} frames"
