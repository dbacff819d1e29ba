"""The two compute stages as plain functions: a chunk's frames in, a chunk record out.

* :func:`detect_chunk`: decode the chunk's sampled frames, compute each one's shot signature,
  gate blur, detect, align; the aligned crops as PNG;
* :func:`embed_record`: embed the crops in one batch.

Celery tasks call these (``tasks/detect.py``, ``tasks/embed.py``); :func:`facepipe.process_video`,
tests and benchmarks call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


def detect_chunk(
    chunk: Chunk,
    params: RunParams,
    detector: FaceDetector,
    shipped: list[ShippedFrame] | None = None,
    decode_threads: int = 1,
    cache_dir: Path | None = None,
    on_face: Callable[[int, np.ndarray, Detection], None] | None = None,
) -> ChunkRecord:
    """Decode the chunk's sampled frames, gate blur, detect, align; crops as PNG.

    Frames come from the run's video itself, or from ``shipped`` (JPEG frames that
    travelled in the task message, for hosts without the video). ``on_face(frame index,
    frame, face)`` sees each kept face while its frame is at hand (the report's thumbnail).
    """
    record = ChunkRecord(seq=chunk.seq, start=chunk.start, stop=chunk.stop, step=params.frame_step)
    gate = blur_gate(params)
    tracking = params.clustering == Clustering.tracks
    timings = {"decode": 0.0, "blur": 0.0, "detect": 0.0, "align": 0.0}
    if tracking:
        timings["signature"] = 0.0
    mark = time.perf_counter()
    reader = (
        chunk_reader(params.video, chunk, params.frame_step, decode_threads, cache_dir)
        if shipped is None
        else PayloadReader(shipped)
    )
    for index, frame in reader:
        timings["decode"] += time.perf_counter() - mark
        record.frames_sampled += 1
        if tracking:  # before the blur gate: every sampled frame takes part in the cut test
            t_sig = time.perf_counter()
            record.signatures.append(signature_of(index, frame))
            timings["signature"] += time.perf_counter() - t_sig
        if gate is not None:
            t_blur = time.perf_counter()
            sharp = gate.is_sharp(frame)
            timings["blur"] += time.perf_counter() - t_blur
            if not sharp:
                record.frames_blurry += 1
                if tracking:
                    record.signatures[-1].skipped = True
                mark = time.perf_counter()
                continue
        t0 = time.perf_counter()
        faces = detector.detect(
            frame,
            input_size=params.det_input,
            det_thresh=params.det_thresh,
            nms_thresh=params.nms_thresh,
            min_face=params.min_face,
        )
        t1 = time.perf_counter()
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
            record.crops.append(encode_crop(crop))
            if on_face is not None:
                on_face(index, frame, face)
        t2 = time.perf_counter()
        timings["detect"] += t1 - t0
        timings["align"] += t2 - t1
        mark = time.perf_counter()
    record.frames_read = reader.grabbed
    record.frames_unreadable = len(chunk.frames(params.frame_step)) - record.frames_sampled
    record.timings = {k: round(v, 4) for k, v in timings.items()}
    return record


def embed_record(record: ChunkRecord, embedder: FaceEmbedder, keep_crops: bool) -> ChunkRecord:
    """Embed the record's crops in one batch; keep crops only if they are to be saved."""
    t0 = time.perf_counter()
    matrix, norms = embedder.embed_with_norms([decode_crop(crop) for crop in record.crops])
    record.set_embeddings(matrix)
    for face, norm in zip(record.faces, norms, strict=True):
        face.emb_norm = round(float(norm), 4)
    if not keep_crops:
        record.crops = []
    record.timings["embed"] = round(time.perf_counter() - t0, 4)
    return record
