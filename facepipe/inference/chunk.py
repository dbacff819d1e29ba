"""The two compute stages as plain functions: a chunk's frames in, a chunk record out.

* :func:`detect_chunk`: decode the chunk's sampled frames, compute each one's shot signature,
  gate blur, detect, align; the aligned crops as PNG;
* :func:`embed_record`: embed the crops in one batch.

Each stage is timed twice (:class:`Stopwatch`): on the wall clock (``stage_seconds`` in the
summary: how long a chunk took) and on the thread's CPU clock (``cpu_*``: what it cost, which
the summary turns into ``cpu_ms_per_frame`` and ``cpu_ms_per_face``). A worker shares the
cores with the other workers, so its wall time includes waiting for one; ONNX Runtime and
OpenVINO run a one-thread model on the calling thread, so the thread's CPU clock holds the
inference too.

Celery tasks call these (``tasks/detect.py``, ``tasks/embed.py``); :func:`facepipe.process_video`,
tests and benchmarks call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from facepipe.inference.align import align, decode_crop, encode_crop
from facepipe.inference.detector import Detection, FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.media.blur import BlurGate
from facepipe.media.readers import PayloadReader, chunk_reader
from facepipe.media.signature import signature_of
from facepipe.records import Chunk, ChunkRecord, DetectedFace, RunParams, ShippedFrame
from facepipe.settings import Clustering


def blur_gate(params: RunParams) -> BlurGate | None:
    """The gate a run asked for, or None when the gate is off."""
    if not params.blur_enable:
        return None
    return BlurGate(
        var_thresh=params.blur_var_thresh,
        grid=params.blur_grid,
        grid_min_keep=params.blur_grid_min_keep,
        resize=params.blur_resize,
    )


class Stopwatch:
    """Wall and CPU (this thread's) seconds per stage: :meth:`lap` charges the time since the
    last lap to a stage, so consecutive laps cover the loop without gaps."""

    def __init__(self, stages: Iterable[str]) -> None:
        self.wall = dict.fromkeys(stages, 0.0)
        self.cpu = dict.fromkeys(self.wall, 0.0)
        self._wall, self._cpu = time.perf_counter(), time.thread_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.wall[stage] += wall - self._wall
        self.cpu[stage] += cpu - self._cpu
        self._wall, self._cpu = wall, cpu

    def timings(self) -> dict[str, float]:
        """``stage: wall seconds`` and ``cpu_stage: CPU seconds``, as a chunk record carries them."""
        return {
            **{k: round(v, 4) for k, v in self.wall.items()},
            **{f"cpu_{k}": round(v, 4) for k, v in self.cpu.items()},
        }


def detect_chunk(
    chunk: Chunk,
    params: RunParams,
    detector: FaceDetector,
    shipped: list[ShippedFrame] | None = None,
    decode_threads: int = 1,
    cache_dir: Path | None = None,
    on_face: Callable[[int, np.ndarray, Detection], None] | None = None,
    pixels: list[np.ndarray] | None = None,
    hwaccel: str | None = None,
) -> ChunkRecord:
    """Decode the chunk's sampled frames, gate blur, detect, align; crops as PNG.

    Frames come from the run's video itself, or from ``shipped`` (JPEG frames that
    travelled in the task message, for hosts without the video). ``on_face(frame index,
    frame, face)`` sees each kept face while its frame is at hand (the report's thumbnail).
    With ``pixels`` the crops are appended to it as arrays instead of going into the record as
    PNG: the worker embeds them itself (:func:`embed_record`), and nothing is encoded.
    ``hwaccel`` (``cuda``) decodes on the GPU where one can (:func:`facepipe.media.keyframes.open_container`).
    """
    record = ChunkRecord(seq=chunk.seq, start=chunk.start, stop=chunk.stop, step=params.frame_step)
    gate = blur_gate(params)
    tracking = params.clustering == Clustering.tracks
    clock = Stopwatch(["decode", "blur", "detect", "align", *(["signature"] if tracking else [])])
    reader = (
        chunk_reader(params.video, chunk, params.frame_step, decode_threads, cache_dir, hwaccel)
        if shipped is None
        else PayloadReader(shipped)
    )
    for index, frame in reader:
        clock.lap("decode")
        record.frames_sampled += 1
        if tracking:  # before the blur gate: every sampled frame takes part in the cut test
            record.signatures.append(signature_of(index, frame))
            clock.lap("signature")
        if gate is not None:
            sharp = gate.is_sharp(frame)
            clock.lap("blur")
            if not sharp:
                record.frames_blurry += 1
                if tracking:
                    record.signatures[-1].skipped = True
                continue
        faces = detector.detect(
            frame,
            input_size=params.det_input,
            det_thresh=params.det_thresh,
            nms_thresh=params.nms_thresh,
            min_face=params.min_face,
        )
        clock.lap("detect")
        for n, face in enumerate(faces):
            crop = align(frame, face)
            record.faces.append(
                DetectedFace(
                    frame=index,
                    index=n,
                    bbox=[round(float(v), 2) for v in face.bbox],
                    det_score=round(face.score, 5),
                    aligned=face.kps is not None,
                    crop_mean=round(float(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).mean()), 3)
                    if tracking
                    else None,
                )
            )
            if pixels is None:
                record.crops.append(encode_crop(crop))
            else:
                pixels.append(crop)
            if on_face is not None:
                on_face(index, frame, face)
        clock.lap("align")
    record.frames_read = reader.grabbed
    record.frames_unreadable = len(chunk.frames(params.frame_step)) - record.frames_sampled
    record.timings = clock.timings()
    return record


def embed_record(
    record: ChunkRecord, embedder: FaceEmbedder, keep_crops: bool, pixels: list[np.ndarray] | None = None
) -> ChunkRecord:
    """Embed the record's crops in one batch; keep crops only if they are to be saved.

    ``pixels``: the crops as arrays, from :func:`detect_chunk` in the same process (they go
    into the record as PNG only when they are to be saved)."""
    clock = Stopwatch(["embed"])
    crops = [decode_crop(crop) for crop in record.crops] if pixels is None else pixels
    matrix, norms = embedder.embed_with_norms(crops)
    record.set_embeddings(matrix)
    for face, norm in zip(record.faces, norms, strict=True):
        face.emb_norm = round(float(norm), 4)
    if not keep_crops:
        record.crops = []
    elif pixels is not None:
        record.crops = [encode_crop(crop) for crop in pixels]
    clock.lap("embed")
    record.timings.update(clock.timings())
    return record
