"""Typed contracts for everything that crosses the broker or is stored in Redis.

One pydantic model per thing that leaves a process:

* :class:`RunParams`: what every worker needs to process a run, built once from
  :class:`~facepipe.settings.Settings` and the probed video, stored in the run's meta;
* :class:`DetectMessage`, :class:`EmbedMessage`, :class:`WriteMessage`: the three task
  messages (detect -> embed -> write);
* :class:`ChunkRecord` and its :class:`DetectedFace` list: a chunk's result as it moves
  detect -> embed -> Redis -> writer;
* :class:`FaceLine`: one line of ``faces.jsonl``.

Validation comes from the models: a malformed message or record fails
``model_validate`` with a readable reason, and the task layer logs and drops it.
Everything is plain JSON: embeddings as base64 float32, crops as base64 PNG.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facepipe.identity import DIM

#: ids and prefixes end up inside Redis key names and file paths: keep them tame
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Seq = Annotated[int, Field(ge=0, lt=10_000_000, strict=True)]
FrameIndex = Annotated[int, Field(ge=0, strict=True)]
#: a base64 payload is bounded so one hostile message cannot exhaust a worker's memory
Base64Text = Annotated[str, Field(max_length=64_000_000)]


class Contract(BaseModel):
    """Strict-ish base: unknown fields are refused, values are not silently coerced from text."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    def payload(self) -> dict[str, Any]:
        """The message as the JSON-safe dict a Celery task receives."""
        return self.model_dump(mode="json")


class RunParams(Contract):
    """Everything a worker needs to process one run, recorded once in the run's meta.

    Workers read these from Redis, never from a message, so a message cannot change how
    a run is processed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    video: str
    fps: float
    frame_count: int
    width: int
    height: int
    frame_step: int
    blur_enable: bool
    blur_var_thresh: float
    blur_grid: int
    blur_grid_min_keep: float
    blur_resize: int
    det_input: tuple[int, int]
    det_thresh: float
    nms_thresh: float
    min_face: int
    det_model: str | None
    rec_model: str | None
    clustering: Literal["tracks", "online", "seed"] = "tracks"
    shot_cuts: bool = True
    face_gate: bool = True
    sim_thresh: float
    merge_thresh: float
    refine_limit: int
    min_faces: int = 1
    save_images: bool
    save_dir: str | None
    task_retries: int

    # Speed (issue #11): the runtime a worker loads the models with (as requested: each
    # worker resolves 'auto' on its own host), and how frames are read.
    backend: str = "onnxruntime"
    precision: str = "fp32"
    decoder: str = "opencv"

    @classmethod
    def build(cls, settings: Any, info: Any, decoder: str | None = None) -> RunParams:
        """From :class:`~facepipe.settings.Settings` and :class:`~facepipe.video.VideoInfo`.

        ``--det-input auto`` is resolved here, from the video's size, so every worker uses
        the same input; ``decoder`` is what the planner chose for ``--decoder auto``.
        """
        from facepipe.settings import auto_det_input

        det_input = settings.det_input
        if det_input == "auto":
            det_input = auto_det_input(info.width, info.height)
        return cls(
            video=info.path,
            fps=info.fps,
            frame_count=info.frame_count,
            width=info.width,
            height=info.height,
            frame_step=settings.frame_step,
            blur_enable=settings.blur_enable,
            blur_var_thresh=settings.blur_var_thresh,
            blur_grid=settings.blur_grid,
            blur_grid_min_keep=settings.blur_grid_min_keep,
            blur_resize=settings.blur_resize,
            det_input=det_input,
            det_thresh=settings.det_thresh,
            nms_thresh=settings.nms_thresh,
            min_face=settings.min_face,
            det_model=str(settings.det_model) if settings.det_model else None,
            rec_model=str(settings.rec_model) if settings.rec_model else None,
            clustering=settings.clustering,
            shot_cuts=settings.shot_cuts,
            face_gate=settings.face_gate,
            sim_thresh=settings.online_sim_thresh(),
            merge_thresh=settings.merge_thresh,
            refine_limit=settings.refine_limit,
            min_faces=settings.min_faces,
            save_images=settings.save_images,
            save_dir=str(settings.save_dir) if settings.save_dir else None,
            task_retries=settings.task_retries,
            backend=settings.backend,
            precision=settings.precision,
            decoder=decoder or settings.decoder,
        )


# -- task messages -----------------------------------------------------------------------


def sampled_frames(start: int, stop: int, step: int) -> range:
    """The sampled frames (multiples of ``step``) in ``[start, stop)``."""
    return range(-(-start // step) * step, stop, step)


class Chunk(Contract):
    """Chunk ``seq``: the run's sampled frames (multiples of ``frame_step``) in ``[start, stop)``.

    The frame step is a run parameter, not part of the chunk: a message never decides it.
    A chunk planned on keyframes (``--decoder pyav``) also says where decoding starts: the
    keyframe ``key`` (display index, at or before ``start``) and its timestamp ``key_pts``
    in the stream's time base. Without them the reader seeks to ``start`` by frame number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: Seq
    start: FrameIndex
    stop: FrameIndex
    key: FrameIndex | None = None
    key_pts: int | None = None

    def frames(self, step: int) -> range:
        return sampled_frames(self.start, self.stop, step)

    @model_validator(mode="after")
    def _ordered(self) -> Chunk:
        if self.start >= self.stop:
            raise ValueError(f"empty frame range [{self.start}, {self.stop})")
        if (self.key is None) != (self.key_pts is None):
            raise ValueError("key and key_pts come together")
        if self.key is not None and self.key > self.start:
            raise ValueError(f"keyframe {self.key} is after the chunk's start {self.start}")
        return self


class TaskMessage(Contract):
    """What every stage's message starts with: which run, under which key prefix, which chunk."""

    run_id: RunId
    prefix: Prefix
    chunk: Chunk

    @property
    def seq(self) -> int:
        return self.chunk.seq


class ShippedFrame(Contract):
    """A sampled frame sent inside a detect message (``--ship-frames``)."""

    index: FrameIndex
    jpeg: Base64Text


class DetectMessage(TaskMessage):
    """detect: decode the chunk's sampled frames (or take the shipped ones), find faces."""

    frames: list[ShippedFrame] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _frames_inside(self) -> DetectMessage:
        for frame in self.frames or ():
            if not self.chunk.start <= frame.index < self.chunk.stop:
                raise ValueError(f"shipped frame {frame.index} is outside the chunk's range")
        return self


class WriteMessage(TaskMessage):
    """write: chunk ``seq``'s result is stored; apply it and whatever follows it in order."""


# -- chunk results ------------------------------------------------------------------------


class DetectedFace(Contract):
    """One face as the detector found it; ``index`` is its position within its frame."""

    frame: FrameIndex
    index: Annotated[int, Field(ge=0)]
    bbox: Annotated[list[float], Field(min_length=4, max_length=4)]
    det_score: float
    aligned: bool
    #: mean grey level of the aligned crop (the false-face gate's darkness test)
    crop_mean: float | None = None
    #: norm of the recogniser's raw output before normalising (its certainty), set by embed
    emb_norm: float | None = None


class FrameSignature(Contract):
    """A sampled frame's shot signature (:mod:`facepipe.shots`): HSV histogram and grey thumbnail."""

    frame: FrameIndex
    #: base64 of 256 little-endian float32
    hist: Annotated[str, Field(max_length=4096)]
    #: base64 of 18 x 32 uint8
    thumb: Annotated[str, Field(max_length=4096)]
    #: the blur gate skipped the frame (no detection ran)
    skipped: bool = False


class ChunkRecord(Contract):
    """The one record a chunk becomes as it moves detect -> embed -> writer.

    Detect fills in the frame counters, the faces and their crops; embed adds the
    embeddings (and drops the crops unless they are to be saved); the writer reads it
    back from Redis. A chunk that could not be processed becomes the same record with
    ``failed`` set, so the writer can skip past it in order.
    """

    seq: Seq
    start: FrameIndex
    stop: FrameIndex
    step: Annotated[int, Field(ge=1)]
    frames_read: int = 0
    frames_sampled: int = 0
    frames_blurry: int = 0
    #: sampled frames the stream ended before (a truncated file, or a short frame count)
    frames_unreadable: int = 0
    faces: list[DetectedFace] = Field(default_factory=list)
    #: one per sampled frame read, in order (empty when the run does not use shots)
    signatures: list[FrameSignature] = Field(default_factory=list)
    #: base64 PNG, one per face (empty once embedded, unless crops are to be saved)
    crops: list[Base64Text] = Field(default_factory=list)
    #: base64 float32, ``len(faces) x DIM`` (empty until embedded)
    embeddings: Base64Text = ""
    failed: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ChunkRecord:
        if self.crops and len(self.crops) != len(self.faces):
            raise ValueError(f"{len(self.crops)} crops for {len(self.faces)} faces")
        if self.embeddings:
            try:
                size = len(base64.b64decode(self.embeddings, validate=True))
            except ValueError:
                raise ValueError("embeddings are not base64") from None
            if size != len(self.faces) * DIM * 4:
                raise ValueError(f"embeddings hold {size} bytes, not one float32 vector per face")
        return self

    @classmethod
    def lost(cls, seq: int, start: int, stop: int, step: int, reason: str) -> ChunkRecord:
        """The record of a chunk given up on: the writer counts its frames as lost."""
        return cls(seq=seq, start=start, stop=stop, step=step, failed=reason[:500])

    def frames(self) -> range:
        return sampled_frames(self.start, self.stop, self.step)

    def set_embeddings(self, matrix: np.ndarray) -> None:
        self.embeddings = base64.b64encode(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).decode()

    def embedding_matrix(self) -> np.ndarray:
        if not self.embeddings:
            return np.zeros((0, DIM), dtype=np.float32)
        flat = np.frombuffer(base64.b64decode(self.embeddings), dtype=np.float32)
        return flat.reshape(len(self.faces), DIM)


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


# -- outputs ------------------------------------------------------------------------------


class FaceLine(Contract):
    """One applied face: a line of ``faces.jsonl`` (``K:faces`` in Redis holds them without
    ``online_identity``, which the final pass adds)."""

    frame: int
    time_s: float
    bbox: list[float]
    det_score: float
    #: the final identity in faces.jsonl; the writer's provisional one in Redis (-1: none yet)
    identity: int
    #: cosine to the centroid the face joined online; None when it founded an identity
    similarity: float | None
    online_identity: int | None = None
    #: the face track (``--clustering tracks``): one person through consecutive sampled frames
    track: int | None = None
    #: the shot (between two cuts) the face is in, numbered from 0
    shot: int | None = None
    #: the false-face gate found it dark and the recogniser unsure (kept only if its track joins
    #: a person)
    suspect: bool | None = None
    #: its identity has fewer than ``--min-faces`` faces (a background person)
    extra: bool | None = None

    def to_json(self) -> bytes:
        """The line without the optional fields that are unset (``similarity`` is always there)."""
        data = self.model_dump()
        for name in OPTIONAL_LINE_FIELDS:
            if data[name] is None:
                del data[name]
        return orjson.dumps(data)


OPTIONAL_LINE_FIELDS = ("online_identity", "track", "shot", "suspect", "extra")


class TrackStateRecord(Contract):
    """The writer's tracking state between chunks (``K:tracks``, see :class:`facepipe.tracks.Tracker`)."""

    last_frame: int
    hist: str | None
    thumb: str | None
    shot: int
    next_track: int
    boxes: list[list[float]]
    embeddings: str
    tracks: list[int]
    identities: list[int]
    norms: list[float | None] = Field(default_factory=list)
