"""The typed records that cross layers and processes: one pydantic model per thing that leaves a
function's hands, all plain JSON.

* :class:`RunParams`: what every worker needs to process a run, built once from
  :class:`~facepipe.settings.Settings` and the probed video, stored in the run's meta;
* :class:`Chunk`: a run's unit of work, a frame range (with the keyframe to decode it from);
* :class:`ChunkRecord` with its :class:`DetectedFace` and :class:`FrameSignature` lists: a
  chunk's result as it moves detect -> embed -> store -> writer;
* :class:`FaceLine`: one applied face (a line of ``faces.jsonl``);
* :class:`TrackStateRecord`: the writer's tracking state between chunks;
* :class:`Counters`: the run's exactly-once counters.

The task messages that carry these between Celery workers are in
:mod:`facepipe.distributed.messages`. Validation comes from the models: a malformed record
fails ``model_validate`` with a readable reason. Embeddings travel as base64 float32, crops
as base64 PNG.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facepipe.settings import (
    ClusteringSettings,
    DecodingSettings,
    FrameSettings,
    HandlingSettings,
    ModelFileSettings,
    RuntimeSettings,
    auto_det_input,
)

if TYPE_CHECKING:
    from facepipe.settings import Settings

#: the dimension of an ArcFace (w600k_mbf) embedding
DIM = 512

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


@dataclass(frozen=True)
class VideoInfo:
    """What the dispatcher knows about a video before planning (:func:`facepipe.media.probe.probe`)."""

    path: str
    frame_count: int
    fps: float
    width: int
    height: int


class VideoFacts(BaseModel):
    """The probed video a run processes."""

    video: str
    fps: float
    frame_count: int
    width: int
    height: int


class RunParams(
    DecodingSettings,
    RuntimeSettings,
    HandlingSettings,
    ClusteringSettings,
    ModelFileSettings,
    FrameSettings,
    VideoFacts,
    Contract,
):
    """Everything a worker needs to process one run, recorded once in the run's meta.

    The settings blocks are :mod:`facepipe.settings`' own (each setting declared once); what
    ``auto`` or a default stands for is resolved here, when the run is recorded, so every
    worker uses the same values: the detector input (from the video's size), the online
    threshold (from the mode) and the decoder (what the planner chose). Fields are recorded
    in the order of the bases, read from the last one up. Workers read these from Redis,
    never from a message, so a message cannot change how a run is processed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    det_input: tuple[int, int]
    det_model: str | None = None
    rec_model: str | None = None
    sim_thresh: float
    save_dir: str | None = None

    @classmethod
    def build(cls, settings: Settings, info: VideoInfo, decoder: str | None = None) -> RunParams:
        """From :class:`~facepipe.settings.Settings` and :class:`VideoInfo`;
        ``decoder`` is what the planner chose for ``--decoder auto``."""
        det_input = settings.det_input
        resolved = {
            "video": info.path,
            "fps": info.fps,
            "frame_count": info.frame_count,
            "width": info.width,
            "height": info.height,
            "det_input": auto_det_input(info.width, info.height) if det_input == "auto" else det_input,
            "det_model": str(settings.det_model) if settings.det_model else None,
            "rec_model": str(settings.rec_model) if settings.rec_model else None,
            "sim_thresh": settings.online_sim_thresh(),
            "save_dir": str(settings.save_dir) if settings.save_dir else None,
            "decoder": decoder or settings.decoder,
        }
        shared = settings.model_dump(include=set(cls.model_fields) - set(resolved))
        return cls(**shared, **resolved)


# -- chunks ------------------------------------------------------------------------------


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


class ShippedFrame(Contract):
    """A sampled frame sent inside a detect message (``--ship-frames``)."""

    index: FrameIndex
    jpeg: Base64Text


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


#: a frame signature's parts (:mod:`facepipe.media.signature`): an HSV histogram of this many
#: bins, and a grey thumbnail of this shape (rows, columns)
HIST_BINS = 256
THUMB_SHAPE = (18, 32)


class FrameSignature(Contract):
    """A sampled frame's shot signature (:mod:`facepipe.media.signature`): HSV histogram and
    grey thumbnail, which the writer's cut test compares (:mod:`facepipe.clustering.shots`)."""

    frame: FrameIndex
    #: base64 of 256 little-endian float32
    hist: Annotated[str, Field(max_length=4096)]
    #: base64 of 18 x 32 uint8
    thumb: Annotated[str, Field(max_length=4096)]
    #: the blur gate skipped the frame (no detection ran)
    skipped: bool = False

    @classmethod
    def of(cls, frame: int, hist: np.ndarray, thumb: np.ndarray) -> FrameSignature:
        """The signature of frame ``frame`` from its two arrays, as base64 text."""
        return cls(frame=frame, hist=encode_array(hist, "<f4"), thumb=encode_array(thumb, np.uint8))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(histogram: 256 float32, thumbnail: 18x32 uint8); ValueError when the sizes are wrong."""
        hist = np.frombuffer(base64.b64decode(self.hist), dtype="<f4")
        thumb = np.frombuffer(base64.b64decode(self.thumb), dtype=np.uint8)
        if hist.size != HIST_BINS or thumb.size != THUMB_SHAPE[0] * THUMB_SHAPE[1]:
            raise ValueError("frame signature has the wrong size")
        return hist.astype(np.float32), thumb.reshape(THUMB_SHAPE)


def encode_array(array: np.ndarray, dtype: Any) -> str:
    """An array's bytes (as ``dtype``, C order) as base64 text, for a JSON record."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


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
    #: each face's aligned 112x112 crop (what the embedder sees), base64 PNG; emptied once
    #: embedded, unless the crops are to be saved (``--save-images``)
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
    #: the recogniser's raw output norm (``--clustering tracks``): how clearly the face was seen
    #: (sharp frontal faces 21-26; profiles, blur and darkness lower), which the final pass uses
    emb_norm: float | None = None

    def to_json(self) -> bytes:
        """The line without the optional fields that are unset (``similarity`` is always there)."""
        data = self.model_dump()
        for name in OPTIONAL_LINE_FIELDS:
            if data[name] is None:
                del data[name]
        return orjson.dumps(data)


OPTIONAL_LINE_FIELDS = ("online_identity", "track", "shot", "suspect", "extra", "emb_norm")


class TrackStateRecord(Contract):
    """The writer's tracking state between chunks (``K:tracks``, see
    :class:`facepipe.clustering.tracks.Tracker`)."""

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


def face_key(frame: int, bbox: list[float] | np.ndarray) -> str:
    """How a face is found among a run's kept thumbnails: its frame and its box as
    ``faces.jsonl`` rounds it."""
    return f"{int(frame)}:" + ",".join(f"{round(float(v), 2):.2f}" for v in bbox[:4])


class Counters(BaseModel):
    """A run's counters: each chunk's commit adds to them in the writer's transaction, so they
    are exact whatever the retries and redeliveries (``K:stats``)."""

    frames_read: int = 0
    frames_sampled: int = 0
    frames_blurry: int = 0
    frames_lost: int = 0
    frames_unreadable: int = 0
    faces_detected: int = 0
    faces_embedded: int = 0
    faces_saved: int = 0
    faces_unsaved: int = 0
    #: identities the writer founded online (the identity table's size)
    online_identities: int = 0
    chunks_applied: int = 0
    chunks_failed: int = 0
    cuts: int = 0
    faces_suspect: int = 0

    def nonzero(self) -> dict[str, int]:
        """The counters this holds that are not zero (what a commit adds)."""
        return {name: value for name, value in self.model_dump().items() if value}
