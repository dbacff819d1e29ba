"""The baseline: the plain single-process loop a user would write, with facepipe's defaults.

    python bench/baseline.py VIDEO [--frame-step 15] [--threads 0] [--out result.json]

One OpenCV reader grabs every frame and retrieves every ``frame_step``-th one; SCRFD
detects (facepipe.inference.detector.FaceDetector), ``norm_crop`` aligns (facepipe.inference.align.align),
ArcFace embeds each frame's faces in one batch (facepipe.inference.embedder.FaceEmbedder), and the
seed's online centroid clustering runs in memory (facepipe.clustering.identity.IdentityTable).
No Redis, no Celery, no PNG round trip. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

from facepipe.clustering.identity import IdentityTable
from facepipe.inference.align import align
from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.inference.files import resolve_model
from facepipe.settings import parse_size

# The seed's parameters, written out rather than read from facepipe.settings, so that the
# baseline stays the same loop when facepipe's defaults move.
SEED = {
    "frame_step": 15,
    "det_input": (640, 640),
    "det_thresh": 0.7,
    "nms_thresh": 0.4,
    "min_face": 60,
    "sim_thresh": 0.27,
    "refine_limit": 30,
}


def run_baseline(
    video: str,
    frame_step: int = SEED["frame_step"],
    det_input: tuple[int, int] = SEED["det_input"],
    det_thresh: float = SEED["det_thresh"],
    nms_thresh: float = SEED["nms_thresh"],
    min_face: int = SEED["min_face"],
    sim_thresh: float = SEED["sim_thresh"],
    refine_limit: int = SEED["refine_limit"],
    threads: int = 0,
    det_model: str | None = None,
    rec_model: str | None = None,
) -> dict:
    """Process ``video`` in one loop; return wall time, counts, identities and stage timings."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    detector = FaceDetector(resolve_model("detector", det_model), threads)
    embedder = FaceEmbedder(resolve_model("embedder", rec_model), threads)
    timings = {"load": time.perf_counter() - started, "decode": 0.0, "detect": 0.0}
    timings.update(align=0.0, embed=0.0, cluster=0.0)
    cpu = dict.fromkeys(timings, 0.0)  # process CPU seconds (all threads, ORT's pool included)
    cpu["load"] = time.process_time() - cpu_started
    table = IdentityTable()
    frames, identities, bboxes = [], [], []
    frames_read = sampled = 0
    first_face_epoch = None

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"baseline: cannot open {video}")
    try:
        index = 0
        mark, cmark = time.perf_counter(), time.process_time()
        while cap.grab():
            frames_read += 1
            if index % frame_step:
                index += 1
                continue
            ok, frame = cap.retrieve()
            if not ok:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            timings["decode"] += t0 - mark
            cpu["decode"] += c0 - cmark
            sampled += 1
            faces = detector.detect(frame, det_input, det_thresh, nms_thresh, min_face)
            t1, c1 = time.perf_counter(), time.process_time()
            crops = [align(frame, face) for face in faces]
            t2, c2 = time.perf_counter(), time.process_time()
            embeddings = embedder.embed(crops)
            t3, c3 = time.perf_counter(), time.process_time()
            for face, embedding in zip(faces, embeddings, strict=True):
                match = table.match_or_add(embedding, sim_thresh, refine_limit)
                frames.append(index)
                identities.append(match.identity)
                bboxes.append([round(float(v), 2) for v in face.bbox])
            t4, c4 = time.perf_counter(), time.process_time()
            if faces and first_face_epoch is None:
                first_face_epoch = time.time()
            timings["detect"] += t1 - t0
            timings["align"] += t2 - t1
            timings["embed"] += t3 - t2
            timings["cluster"] += t4 - t3
            for name, (a, b) in {
                "detect": (c0, c1),
                "align": (c1, c2),
                "embed": (c2, c3),
                "cluster": (c3, c4),
            }.items():
                cpu[name] += b - a
            index += 1
            mark, cmark = time.perf_counter(), time.process_time()
        timings["decode"] += time.perf_counter() - mark  # grabs after the last sampled frame
        cpu["decode"] += time.process_time() - cmark
    finally:
        cap.release()
    wall = time.perf_counter() - started
    return {
        "video": str(Path(video).resolve()),
        "wall_s": round(wall, 3),
        "frame_step": frame_step,
        "sim_thresh": sim_thresh,
        "refine_limit": refine_limit,
        "threads": threads,
        "frames_read": frames_read,
        "frames_sampled": sampled,
        "faces": len(identities),
        "identities": len(table),
        "counts": {str(i): c for i, c in enumerate(table.counts)},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "cpu_timings": {k: round(v, 3) for k, v in cpu.items()},
        "first_face_epoch": first_face_epoch,
        "face_frames": frames,
        "face_identities": identities,
        "face_bboxes": bboxes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video")
    parser.add_argument("--frame-step", type=int, default=SEED["frame_step"])
    parser.add_argument("--det-input", type=parse_size, default=SEED["det_input"], metavar="WxH")
    parser.add_argument("--det-thresh", type=float, default=SEED["det_thresh"])
    parser.add_argument("--nms-thresh", type=float, default=SEED["nms_thresh"])
    parser.add_argument("--min-face", type=int, default=SEED["min_face"])
    parser.add_argument("--sim-thresh", type=float, default=SEED["sim_thresh"])
    parser.add_argument("--refine-limit", type=int, default=SEED["refine_limit"])
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = ORT default)")
    parser.add_argument("--det-model", default=None)
    parser.add_argument("--rec-model", default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run_baseline(
        args.video,
        frame_step=args.frame_step,
        det_input=args.det_input,
        det_thresh=args.det_thresh,
        nms_thresh=args.nms_thresh,
        min_face=args.min_face,
        sim_thresh=args.sim_thresh,
        refine_limit=args.refine_limit,
        threads=args.threads,
        det_model=args.det_model,
        rec_model=args.rec_model,
    )
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
