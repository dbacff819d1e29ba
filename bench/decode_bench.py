"""Ways to decode the sampled frames of an H.264 video, measured side by side (CPU and wall time).

    python bench/decode_bench.py [VIDEO] [--frame-step 15] [--repeat 3]
                                 [--json bench/results/decode_results.json]

Every way must return the same sampled frames, pixel for pixel, as the plain loop (OpenCV
grabbing every frame, retrieving every ``frame_step``-th): each frame's md5 is checked against
it. The ways:

* ``opencv-seq``: the plain loop's read, one FFmpeg thread (``opencv-seq-threads``: OpenCV's
  default thread count);
* ``opencv-chunks``: the seed's detect workers: fixed ranges of 8 sampled frames, one
  ``CAP_PROP_POS_FRAMES`` seek each (its hidden decoding from the keyframe included);
* ``pyav-seq``: PyAV decoding every frame in one pass, converting only sampled frames to BGR
  (``pyav-seq-convert-all``: converting every frame, the cost of colour conversion;
  ``pyav-seq-2frame``/``pyav-seq-2slice``: two decoder threads);
* ``pyav-seq-nonref``: one pass, non-reference frames that are not sampled skipped by the
  decoder (``skip_frame = NONREF`` per packet);
* ``keyframe-chunks``: what facepipe's workers do (``--decoder pyav``): GOP chunks from the
  keyframe index, NONREF skipping, decoding stops at each chunk's last sampled frame.

CPU time is the process's (all threads). The default video is bench/make_video.py --tv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import make_video  # noqa: E402


def opencv_seq(path: str, step: int, threads: int | None = 1) -> Iterator[tuple[int, np.ndarray]]:
    params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, threads]
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    index = 0
    while cap.grab():
        if index % step == 0:
            yield index, cap.retrieve()[1]
        index += 1
    cap.release()


def opencv_chunks(path: str, step: int) -> Iterator[tuple[int, np.ndarray]]:
    from facepipe.media.plan import plan_chunks
    from facepipe.media.probe import probe
    from facepipe.media.readers import ChunkReader

    for chunk in plan_chunks(probe(path).frame_count, step, 8):
        yield from ChunkReader(path, chunk, step)


def pyav_seq(
    path: str,
    step: int,
    threads: int = 1,
    kind: str = "FRAME",
    nonref: bool = False,
    convert_all: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        if threads != 1:
            context.thread_type, context.thread_count = kind, threads
        packets = [p for p in container.demux(stream) if p.size]
        order = {pts: n for n, pts in enumerate(sorted(p.pts for p in packets if not p.is_discard))}
        for packet in [*packets, None]:
            if nonref and packet is not None:
                context.skip_frame = "DEFAULT" if order.get(packet.pts, 1) % step == 0 else "NONREF"
            for frame in context.decode(packet):
                n = order.get(frame.pts, -1)
                image = frame.to_ndarray(format="bgr24") if convert_all or n % step == 0 else None
                if n >= 0 and n % step == 0:
                    yield n, image


def keyframe_chunks(path: str, step: int) -> Iterator[tuple[int, np.ndarray]]:
    from facepipe.media.plan import plan
    from facepipe.media.probe import probe
    from facepipe.media.readers import KeyframeReader

    for chunk in plan(probe(path), "pyav", step, 8).chunks:
        yield from KeyframeReader(path, chunk, step)


WAYS: dict[str, Callable[[str, int], Iterator[tuple[int, np.ndarray]]]] = {
    "opencv-seq": opencv_seq,
    "opencv-seq-threads": lambda p, s: opencv_seq(p, s, None),
    "opencv-chunks": opencv_chunks,
    "pyav-seq": pyav_seq,
    "pyav-seq-convert-all": lambda p, s: pyav_seq(p, s, convert_all=True),
    "pyav-seq-2frame": lambda p, s: pyav_seq(p, s, 2, "FRAME"),
    "pyav-seq-2slice": lambda p, s: pyav_seq(p, s, 2, "SLICE"),
    "pyav-seq-nonref": lambda p, s: pyav_seq(p, s, nonref=True),
    "keyframe-chunks": keyframe_chunks,
}


def measure(way: str, path: str, step: int, reference: dict[int, str] | None) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    digests = {n: hashlib.md5(f.tobytes()).hexdigest() for n, f in WAYS[way](path, step)}
    result = {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "frames": len(digests),
    }
    if reference is not None:
        result["identical"] = digests == reference
    return result | {"digests": digests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", nargs="?", type=Path, default=make_video.TV_PATH)
    parser.add_argument("--frame-step", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all the ways (default 3)")
    parser.add_argument("--ways", nargs="*", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "decode_results.json")
    args = parser.parse_args(argv)
    if args.video == make_video.TV_PATH and not args.video.exists():
        make_video.build_tv(args.video)
    path, step = str(args.video), args.frame_step
    reference = measure("opencv-seq", path, step, None)["digests"]
    rows: dict[str, list[dict[str, Any]]] = {way: [] for way in args.ways}
    for _ in range(args.repeat):
        for way in args.ways:
            rows[way].append(measure(way, path, step, reference))
    results = {}
    lines = [
        f"{args.video}: frame step {step}, {len(reference)} sampled frames; median of {args.repeat} rounds",
        "",
        "| way | CPU s | wall s | CPU vs opencv-seq | same frames and pixels |",
        "|---|---|---|---|---|",
    ]
    base = statistics.median(r["cpu_s"] for r in rows["opencv-seq"]) if "opencv-seq" in rows else None
    for way, runs in rows.items():
        cpu = statistics.median(r["cpu_s"] for r in runs)
        wall = statistics.median(r["wall_s"] for r in runs)
        same = all(r["identical"] for r in runs)
        results[way] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "identical": same}
        ratio = f"{cpu / base:.2f}" if base else "-"
        lines.append(f"| {way} | {cpu:.2f} | {wall:.2f} | {ratio} | {same} |")
    text = "\n".join(lines)
    args.json.write_text(
        json.dumps({"video": path, "frame_step": step, "results": results, "table": text}, indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
