"""The typed contracts: what crosses the broker and what Redis stores."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from facepipe.distributed.messages import DetectMessage, EmbedMessage, WriteMessage
from facepipe.records import DIM, Chunk, ChunkRecord, DetectedFace, FaceLine, RunParams, VideoInfo
from facepipe.settings import Settings

INFO = VideoInfo("/videos/ep1.mp4", 250, 25.0, 1280, 720)


def _record(faces: int = 2) -> ChunkRecord:
    record = ChunkRecord(seq=3, start=48, stop=64, step=2, frames_read=15, frames_sampled=8)
    record.faces = [
        DetectedFace(frame=48 + 2 * i, index=0, bbox=[1.0, 2.0, 61.5, 80.25], det_score=0.9, aligned=True)
        for i in range(faces)
    ]
    return record


def test_run_params_are_built_once_from_settings_and_the_video() -> None:
    params = RunParams.build(Settings(frame_step=3, det_input="640x384"), INFO)
    assert params.video == INFO.path and params.fps == 25.0 and params.frame_count == 250
    assert params.frame_step == 3 and params.det_input == (640, 384)
    again = RunParams.model_validate_json(params.to_json())  # as workers read it back from Redis
    assert again == params
    with pytest.raises(ValidationError):
        RunParams.model_validate({**params.model_dump(), "surprise": 1})


def test_messages_validate_ids_ranges_and_shipped_frames() -> None:
    chunk = {"seq": 0, "start": 0, "stop": 30}
    ok = DetectMessage.model_validate({"run_id": "20261128-1-abc", "prefix": "fp", "chunk": chunk})
    assert ok.seq == 0 and ok.frames is None
    hostile = [
        {"run_id": "../../etc", "prefix": "fp", "chunk": chunk},
        {"run_id": "run", "prefix": "fp; FLUSHALL", "chunk": chunk},
        {"run_id": "run", "prefix": "fp", "chunk": {"seq": "0", "start": 0, "stop": 30}},  # text, not int
        {"run_id": "run", "prefix": "fp", "chunk": {"seq": True, "start": 0, "stop": 30}},
        {"run_id": "run", "prefix": "fp", "chunk": {"seq": 0, "start": 30, "stop": 30}},  # empty range
        {"run_id": "run", "prefix": "fp", "chunk": chunk, "frames": [{"index": 31, "jpeg": "AAAA"}]},
        {"run_id": "run", "prefix": "fp", "chunk": chunk, "extra": 1},
    ]
    for payload in hostile:
        with pytest.raises(ValidationError):
            DetectMessage.model_validate(payload)
    with pytest.raises(ValidationError):
        WriteMessage.model_validate("not an object")


def test_embed_message_must_carry_its_own_chunk_with_one_crop_per_face() -> None:
    record = _record()
    record.crops = ["AAAA", "BBBB"]
    chunk = Chunk(seq=3, start=48, stop=64)
    message = EmbedMessage(run_id="r", prefix="fp", chunk=chunk, record=record)
    assert EmbedMessage.model_validate(message.payload()) == message
    with pytest.raises(ValidationError, match="does not belong"):
        EmbedMessage(run_id="r", prefix="fp", chunk=Chunk(seq=4, start=48, stop=64), record=record)
    record.crops = ["AAAA"]
    with pytest.raises(ValidationError, match="crops"):
        ChunkRecord.model_validate(record.model_dump())


def test_chunk_record_embeddings_round_trip_and_are_checked() -> None:
    record = _record(faces=3)
    matrix = np.random.default_rng(1).normal(size=(3, DIM)).astype(np.float32)
    record.set_embeddings(matrix)
    stored = ChunkRecord.model_validate_json(record.to_json())
    np.testing.assert_array_equal(stored.embedding_matrix(), matrix)
    assert stored.frames() == range(48, 64, 2)
    short = record.model_dump()
    short["faces"] = short["faces"][:2]  # three vectors for two faces
    with pytest.raises(ValidationError, match="one float32 vector per face"):
        ChunkRecord.model_validate(short)
    lost = ChunkRecord.lost(3, 48, 64, 2, "x" * 900)
    assert lost.failed is not None and len(lost.failed) == 500 and lost.faces == []


def test_face_line_is_the_faces_jsonl_line() -> None:
    line = FaceLine(
        frame=9, time_s=0.36, bbox=[1.0, 2.0, 3.5, 4.0], det_score=0.8, identity=2, similarity=None
    )
    assert line.to_json() == (
        b'{"frame":9,"time_s":0.36,"bbox":[1.0,2.0,3.5,4.0],"det_score":0.8,"identity":2,"similarity":null}'
    )
    final = line.model_copy(update={"identity": 0, "online_identity": 2})
    assert list(orjson.loads(final.to_json())) == [
        "frame",
        "time_s",
        "bbox",
        "det_score",
        "identity",
        "similarity",
        "online_identity",
    ]
