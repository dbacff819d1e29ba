"""Build the benchmark video: the shared clips, looped to ~3.3 minutes of 1280x720.

    python bench/make_video.py [PATH] [--loops 7] [--fourcc mp4v]

One loop is hamilton_short (640x360, upscaled 2x to 1280x720) + two_person_call +
dance_scene, about 842 frames (28 s) at 30 fps; 7 loops give ~5,900 frames (~3.3 min).
The clips are read from ``../shared/data/videos`` (beside the repository; override with
``FACEPIPE_SHARED_DATA``) and never copied into the repository. An existing output is
kept as is (delete it, or pass ``--force``, to rebuild).

The OpenCV wheels here have no H.264 encoder, so the default codec is ``mp4v`` (MPEG-4
Part 2, keyframe every 12 frames); see bench/README.md for what that means for seeking.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIPS = ("hamilton_short.mp4", "two_person_call.mp4", "dance_scene.mp4")
DEFAULT_PATH = Path("/tmp/facepipe-bench/bench720.mp4")
SIZE = (1280, 720)
FPS = 30.0


def clip_paths(shared: Path = SHARED) -> list[Path]:
    """The shared clips, or exit with a message saying where they were looked for."""
    videos = shared / "videos"
    missing = [name for name in CLIPS if not (videos / name).is_file()]
    if missing:
        sys.exit(
            f"make_video: shared clips not found: {', '.join(missing)} in {videos} "
            f"(clone ../shared beside the repository, or set FACEPIPE_SHARED_DATA=/path/to/shared/data)"
        )
    return [videos / name for name in CLIPS]


def build(path: Path = DEFAULT_PATH, loops: int = 7, fourcc: str = "mp4v", force: bool = False) -> Path:
    """Write the video to ``path`` (atomically) unless it already exists; return ``path``."""
    import cv2

    path = Path(path)
    if path.exists() and not force:
        print(f"make_video: {path} exists, not rebuilt (use --force to rebuild)", file=sys.stderr)
        return path
    clips = clip_paths()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    if not writer.isOpened():
        sys.exit(f"make_video: OpenCV cannot write {fourcc!r} video to {partial} (try --fourcc mp4v)")
    started = time.monotonic()
    frames = 0
    try:
        for _ in range(loops):
            for clip in clips:
                cap = cv2.VideoCapture(str(clip))
                if not cap.isOpened():
                    sys.exit(f"make_video: cannot open {clip}")
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if (frame.shape[1], frame.shape[0]) != SIZE:
                        frame = cv2.resize(frame, SIZE, interpolation=cv2.INTER_LINEAR)
                    writer.write(frame)
                    frames += 1
                cap.release()
    finally:
        writer.release()
    os.replace(partial, path)
    print(
        f"make_video: wrote {path}: {frames} frames, {frames / FPS:.1f} s at {FPS:g} fps, "
        f"{SIZE[0]}x{SIZE[1]} {fourcc}, {path.stat().st_size / 1e6:.1f} MB in "
        f"{time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "path", nargs="?", type=Path, default=DEFAULT_PATH, help=f"output (default {DEFAULT_PATH})"
    )
    parser.add_argument("--loops", type=int, default=7, help="times the 3-clip sequence repeats (default 7)")
    parser.add_argument(
        "--fourcc", default="mp4v", help="OpenCV FourCC (default mp4v; avc1 needs an H.264 encoder)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    args = parser.parse_args(argv)
    build(args.path, args.loops, args.fourcc, args.force)
    print(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
