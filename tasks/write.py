"""write: the single writer. Applies every chunk that is next in line, in order, once."""

from __future__ import annotations

from facepipe.distributed.messages import TaskMessage, WriteMessage
from facepipe.distributed.stages import WRITE
from facepipe.distributed.writer import Writer
from tasks.base import RunContext, StageTask
from tasks.celery_app import app

_writer = Writer()


class WriterTask(StageTask):
    skip_applied = False  # a nudge applies whatever is next in line, whichever chunk sent it
    waits_for_room = False

    def give_up(self, run: RunContext, message: TaskMessage, reason: str) -> None:
        """The writer is stuck on the chunk next in line, whichever chunk nudged it: record that
        one as lost, then carry on with the rest."""
        if _writer.give_up_next(run.store, reason):
            _writer.apply_ready(run.store, run.params)


@app.task(bind=True, base=WriterTask, name=WRITE.task, stage=WRITE, message_type=WriteMessage)
def write(self: StageTask, run: RunContext, message: WriteMessage) -> str:
    """Nudge the writer: chunk ``message.seq`` is in. Applies it and any later chunks already waiting."""
    return f"applied {_writer.apply_ready(run.store, run.params)} chunks"
