"""``summary.json``, typed: a finished run's figures, written once and read back by every command.

:class:`Summary` is built from the run's store by :func:`facepipe.app.outputs.build_summary`,
written with :meth:`Summary.write` (key order and indentation as they have always been, so
tools that diff summaries keep working) and read with :meth:`Summary.read` by the report,
``facepipe report RUN_ID`` and the season's pass. Fields a run of an older version did not
write take their defaults, so an old output folder still reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facepipe.app.files import write_atomically
from facepipe.clustering.screen import ScreenTime
from facepipe.errors import FacepipeError


class RejectedFace(BaseModel):
    """A detection the false-face gate found to be no face."""

    frame: int
    bbox: list[float]
    det_score: float


class LostChunk(BaseModel):
    """A chunk given up on: its frame range ``[start, stop)`` and why."""

    seq: int | None = None
    frames: list[int] = Field(default_factory=list)
    reason: str = ""


class DecodeFigures(BaseModel):
    """How much decoding the run did, against the video's frames and the frames up to the last
    sampled one (decoding can stop there): 1.0 means every such frame was decoded once; below
    1.0, frames were skipped (GOPs or non-reference frames no sampled frame needs)."""

    decoder: str = "opencv"
    frames_decoded: int = 0
    video_frames: int = 0
    frames_to_last_sample: int = 0
    per_video_frame: float | None = None
    per_frame_to_last_sample: float | None = None

    @classmethod
    def of(cls, frames_decoded: int, params: dict[str, Any]) -> DecodeFigures:
        count, step = int(params.get("frame_count") or 0), int(params.get("frame_step") or 1)
        to_last = ((count - 1) // step) * step + 1 if count > 0 else 0
        return cls(
            decoder=params.get("decoder", "opencv"),
            frames_decoded=frames_decoded,
            video_frames=count,
            frames_to_last_sample=to_last,
            per_video_frame=round(frames_decoded / count, 3) if count else None,
            per_frame_to_last_sample=round(frames_decoded / to_last, 3) if to_last else None,
        )


def unit_costs(cpu: dict[str, float], decoded: int, sampled: int, faces: int) -> dict[str, dict[str, float]]:
    """``cpu_ms_per_frame`` and ``cpu_ms_per_face`` from the stages' CPU seconds (:class:`Summary`)."""

    def per(stage: str, n: int) -> float | None:
        return round(1000 * cpu[stage] / n, 3) if stage in cpu and n else None

    frame = {"decode": per("decode", decoded), "decode_per_sampled": per("decode", sampled)}
    frame |= {stage: per(stage, sampled) for stage in ("signature", "blur", "detect")}
    face = {stage: per(stage, faces) for stage in ("align", "embed")}
    return {
        "cpu_ms_per_frame": {k: v for k, v in frame.items() if v is not None},
        "cpu_ms_per_face": {k: v for k, v in face.items() if v is not None},
    }


class Summary(BaseModel):
    """A finished run's figures (the README's "What a run leaves" lists each field)."""

    model_config = ConfigDict(extra="allow")

    run_id: str = ""
    video: str | None = None
    elapsed_s: float = 0.0
    chunks: int | None = None
    frames_read: int = 0
    frames_sampled: int = 0
    frames_blurry: int = 0
    frames_lost: int = 0
    faces_detected: int = 0
    faces_embedded: int = 0
    faces_saved: int = 0
    faces_unsaved: int = 0
    frames_unreadable: int = 0
    faces: int = 0
    faces_rejected: int = 0
    #: None only in a summary from before the field existed (the report counts the faces then)
    identities: int | None = None
    people: int | None = None
    extras: list[int] = Field(default_factory=list)
    online_identities: int = 0
    #: identity id (as text) -> its face count
    counts: dict[str, int] = Field(default_factory=dict)
    shots: int | None = None
    tracks: int | None = None
    rejected_faces: list[RejectedFace] = Field(default_factory=list)
    #: the workers' own timers per stage, summed over chunks: wall seconds (with the waits for a
    #: core), and CPU seconds (what each stage cost)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    cpu_seconds: dict[str, float] = Field(default_factory=dict)
    #: CPU milliseconds per unit: ``decode`` per decoded frame, ``signature``/``blur``/``detect``
    #: per sampled frame (and ``decode_per_sampled``); ``align`` (with the crop and thumbnail
    #: encodings) and ``embed`` per face
    cpu_ms_per_frame: dict[str, float] = Field(default_factory=dict)
    cpu_ms_per_face: dict[str, float] = Field(default_factory=dict)
    runtimes: list[str] = Field(default_factory=list)
    decode: DecodeFigures = Field(default_factory=DecodeFigures)
    failed_chunks: list[LostChunk] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    #: the run's :class:`~facepipe.records.RunParams` as it recorded them
    params: dict[str, Any] = Field(default_factory=dict)
    #: identity id (as text) -> seconds on screen, share of the video, first and last
    #: appearance, shots and appearance segments (:mod:`facepipe.clustering.screen`)
    screen_time: dict[str, ScreenTime] = Field(default_factory=dict)
    #: identity id (as text) -> its name (``facepipe name``, ``facepipe edit --rename``)
    names: dict[str, str] = Field(default_factory=dict)
    #: identity id (as text) -> its faces, for identities a person marked not a face: they are
    #: left out of every figure above and of faces.jsonl and bank.npz
    not_faces: dict[str, int] = Field(default_factory=dict)
    #: faces left out by edits (those of ``not_faces``)
    faces_removed: int = 0
    #: the edits in effect, in order ("3: merge 7 into 5"); edits.json has each with its command
    edits: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Summary:
        """A ``summary.json``; a one-line :class:`FacepipeError` when it is not one."""
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            raise FacepipeError(f"{path} is not a readable facepipe summary ({exc})") from None

    def write(self, path: Path) -> Path:
        return write_atomically(Path(path), self.to_json())

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    @property
    def fps(self) -> float:
        return float(self.params.get("fps") or 25.0)

    @property
    def frame_step(self) -> int:
        return int(self.params.get("frame_step") or 1)

    @property
    def lost_ranges(self) -> str:
        """The lost frame ranges as people read them: ``start-end`` (inclusive), comma-separated."""
        return ", ".join(f"{f.frames[0]}-{f.frames[1] - 1}" for f in self.failed_chunks if f.frames)
