"""The one record a chunk becomes as it moves detect -> embed -> writer.

Detect fills in the frame counters, the faces (box, score, order) and their crops;
embed adds the embeddings (and drops the crops unless they are to be saved); the
writer reads it back from Redis. A chunk that could not be processed becomes the same
record with ``failed`` set, so the writer can skip past it in order.

Everything is plain JSON: embeddings are base64 float32, crops base64 PNG.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import orjson

from facepipe.faces import decode_crop


@dataclass
class ChunkRecord:
    seq: int
    start: int
    stop: int
    step: int
    frames_read: int = 0
    frames_sampled: int = 0
    frames_blurry: int = 0
    #: sampled frames the stream ended before (a truncated file, or a short frame count)
    frames_unreadable: int = 0
    #: one dict per face: frame, index (within the frame), bbox, det_score, aligned
    faces: list[dict[str, Any]] = field(default_factory=list)
    crops: list[str] = field(default_factory=list)
    embeddings: str = ""
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkRecord:
        return cls(**data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ChunkRecord:
        return cls.from_dict(orjson.loads(raw))

    def set_embeddings(self, matrix: np.ndarray) -> None:
        self.embeddings = base64.b64encode(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).decode()

    def embedding_matrix(self) -> np.ndarray:
        if not self.embeddings:
            return np.zeros((0, 512), dtype=np.float32)
        flat = np.frombuffer(base64.b64decode(self.embeddings), dtype=np.float32)
        return flat.reshape(len(self.faces), -1)

    def crop_images(self) -> list[np.ndarray]:
        return [decode_crop(c) for c in self.crops]

    def crop_jpeg(self, i: int) -> bytes:
        ok, buf = cv2.imencode(".jpg", decode_crop(self.crops[i]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        return buf.tobytes() if ok else b""
