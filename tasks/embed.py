"""embed: batched ArcFace over a chunk's crops; store the result for the writer."""

from __future__ import annotations

from facepipe.distributed.messages import EmbedMessage, WriteMessage
from facepipe.distributed.stages import EMBED, WRITE
from facepipe.inference.chunk import embed_record
from tasks.base import RunContext, StageTask, embedder
from tasks.celery_app import app


@app.task(bind=True, base=StageTask, name=EMBED.task, stage=EMBED, message_type=EmbedMessage)
def embed(self: StageTask, run: RunContext, message: EmbedMessage) -> str:
    params = run.params
    model = embedder(params.rec_model, params.backend, params.precision)
    record = embed_record(message.record, model, keep_crops=params.save_images)
    run.store.note_runtime("embed", model.runtime.describe())
    run.store.put_chunk(record)
    self.hand_on(WRITE, WriteMessage(run_id=message.run_id, prefix=message.prefix, chunk=message.chunk))
    return f"{len(record.faces)} faces embedded"
