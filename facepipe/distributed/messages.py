"""The three task messages, one JSON object each: detect -> embed -> write.

Every message names its run (id and key prefix) and its chunk; the rest of what a worker
needs comes from the run's :class:`~facepipe.records.RunParams` in Redis, never from a
message. A malformed message fails ``model_validate`` with a readable reason, and the task
layer (``tasks/base.py``) logs and drops it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from facepipe.records import Chunk, ChunkRecord, Contract, ShippedFrame

#: ids and prefixes end up inside Redis key names and file paths: keep them tame
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]


class TaskMessage(Contract):
    """What every stage's message starts with: which run, under which key prefix, which chunk."""

    run_id: RunId
    prefix: Prefix
    chunk: Chunk

    @property
    def seq(self) -> int:
        return self.chunk.seq


class DetectMessage(TaskMessage):
    """detect: decode the chunk's sampled frames (or take the shipped ones), find faces."""

    frames: list[ShippedFrame] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _frames_inside(self) -> DetectMessage:
        for frame in self.frames or ():
            if not self.chunk.start <= frame.index < self.chunk.stop:
                raise ValueError(f"shipped frame {frame.index} is outside the chunk's range")
        return self


class EmbedMessage(TaskMessage):
    """embed: the detected chunk, crops included; embed them and store the result."""

    record: ChunkRecord

    @model_validator(mode="after")
    def _matches_chunk(self) -> EmbedMessage:
        record, chunk = self.record, self.chunk
        if (record.seq, record.start, record.stop) != (chunk.seq, chunk.start, chunk.stop):
            raise ValueError("record does not belong to the message's chunk")
        if len(self.record.crops) != len(self.record.faces):
            raise ValueError("record does not carry one crop per face")
        return self


class WriteMessage(TaskMessage):
    """write: chunk ``seq``'s result is stored; apply it and whatever follows it in order."""
