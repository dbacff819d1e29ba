"""Build the benchmark videos from the shared clips (never copied into the repository).

    python bench/make_video.py [PATH] [--loops 7] [--fourcc mp4v]              # bench720.mp4 (MPEG-4 Part 2)
    python bench/make_video.py --tv [PATH] [--loops 4] [--keyint 250]         # tv720_h264.mp4 (H.264)
    python bench/make_video.py --episode [PATH] [--copies 10] [--source TV]   # episode720_h264.mp4

``bench720.mp4`` (the first benchmark): hamilton_short (640x360, upscaled 2x to 1280x720) +
two_person_call + dance_scene, about 842 frames (28 s) at 30 fps per loop; 7 loops give
~5,900 frames (~3.3 min), written by OpenCV as **mp4v** (its wheels have no H.264 encoder),
a keyframe every 12 frames.

``tv720_h264.mp4`` (``--tv``): real TV is H.264, so this one is encoded by **x264 with its
defaults** (through PyAV's libx264: CRF 23, preset medium, a keyframe at most every 250
frames plus one at each scene cut, 3 B-frames with B-pyramid, closed GOPs), frame threads
rather than slices, as the ffmpeg command line would. One loop is the three clips above plus
the two real TV clips (debate_clip, 1280x720; talk_show_montage, 708x532 pillarboxed to
1280x720): ~2,250 frames; 4 loops give ~9,000 frames (5 min at 30 fps). ``--keyint 1`` makes an
all-intra file (every frame a keyframe).

``episode720_h264.mp4`` (``--episode``): ``--copies`` copies of the TV edit, concatenated by
copying packets (no re-encoding, so the GOP structure is the edit's): 10 copies are ~50 min.

The clips are read from ``../shared/data/videos`` (beside the repository; override with
``FACEPIPE_SHARED_DATA``). An existing output is kept as is (``--force`` rebuilds).
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
TV_CLIPS = CLIPS + ("debate_clip.mp4", "talk_show_montage.mp4")
DEFAULT_PATH = Path("/tmp/facepipe-bench/bench720.mp4")
TV_PATH = Path("/tmp/facepipe-bench/tv720_h264.mp4")
EPISODE_PATH = Path("/tmp/facepipe-bench/episode720_h264.mp4")
SIZE = (1280, 720)
FPS = 30.0


def clip_paths(shared: Path = SHARED, names: tuple[str, ...] = CLIPS) -> list[Path]:
    """The shared clips, or exit with a message saying where they were looked for."""
    videos = shared / "videos"
    missing = [name for name in names if not (videos / name).is_file()]
    if missing:
        sys.exit(
            f"make_video: shared clips not found: {', '.join(missing)} in {videos} "
            f"(clone ../shared beside the repository, or set FACEPIPE_SHARED_DATA=/path/to/shared/data)"
        )
    return [videos / name for name in names]


def fit_frame(frame, size: tuple[int, int] = SIZE):
    """``frame`` scaled to fit ``size`` (aspect kept) and centred on black: the letterbox TV uses."""
    import cv2
    import numpy as np

    height, width = frame.shape[:2]
    if (width, height) == size:
        return frame
    scale = min(size[0] / width, size[1] / height)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if (new_w, new_h) == size:
        return resized
    canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x0, y0 = (size[0] - new_w) // 2, (size[1] - new_h) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return canvas


def source_frames(clips: list[Path], loops: int):
    """Every frame of the clips, ``loops`` times over, fitted to 1280x720."""
    import cv2

    for _ in range(loops):
        for clip in clips:
            cap = cv2.VideoCapture(str(clip))
            if not cap.isOpened():
                sys.exit(f"make_video: cannot open {clip}")
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield fit_frame(frame)
            cap.release()


def _done(path: Path, frames: int, what: str, started: float) -> None:
    print(
        f"make_video: wrote {path}: {frames} frames, {frames / FPS:.1f} s at {FPS:g} fps, "
        f"{SIZE[0]}x{SIZE[1]} {what}, {path.stat().st_size / 1e6:.1f} MB in "
        f"{time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )


def _exists(path: Path, force: bool) -> bool:
    if path.exists() and not force:
        print(f"make_video: {path} exists, not rebuilt (use --force to rebuild)", file=sys.stderr)
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    return False


def build(path: Path = DEFAULT_PATH, loops: int = 7, fourcc: str = "mp4v", force: bool = False) -> Path:
    """The MPEG-4 Part 2 bench video, written by OpenCV (atomically) unless it exists."""
    import cv2

    path = Path(path)
    if _exists(path, force):
        return path
    clips = clip_paths()
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    if not writer.isOpened():
        sys.exit(f"make_video: OpenCV cannot write {fourcc!r} video to {partial} (try --fourcc mp4v)")
    started = time.monotonic()
    frames = 0
    try:
        for frame in source_frames(clips, loops):
            writer.write(frame)
            frames += 1
    finally:
        writer.release()
    os.replace(partial, path)
    _done(path, frames, fourcc, started)
    return path


def encode_h264(frames, path: Path, fps: float = FPS, keyint: int | None = None) -> int:
    """Encode BGR ``frames`` to H.264 in MP4 with x264's defaults (``keyint`` overrides the GOP):
    :func:`facepipe.media.samples.write_h264`. Returns the number of frames."""
    from facepipe.media.samples import write_h264

    count = 0

    def counted():
        nonlocal count
        for frame in frames:
            count += 1
            yield frame

    write_h264(path, counted(), fps, keyint)
    return count


def build_tv(path: Path = TV_PATH, loops: int = 4, keyint: int | None = None, force: bool = False) -> Path:
    """The H.264 TV edit (x264 defaults), unless it exists."""
    path = Path(path)
    if _exists(path, force):
        return path
    clips = clip_paths(names=TV_CLIPS)
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    started = time.monotonic()
    frames = encode_h264(source_frames(clips, loops), partial, keyint=keyint)
    os.replace(partial, path)
    _done(path, frames, f"H.264 (x264 defaults{'' if keyint is None else f', keyint {keyint}'})", started)
    return path


def concat_copies(source: Path, path: Path, copies: int) -> int:
    """``copies`` copies of ``source`` one after another, packets copied (no re-encoding)."""
    import av

    count = 0
    with av.open(str(source)) as first:
        span = None
        in_stream = first.streams.video[0]
        with av.open(str(path), "w") as out:
            out_stream = out.add_stream_from_template(in_stream)
            for copy in range(copies):
                with av.open(str(source)) as src:
                    stream = src.streams.video[0]
                    packets = [p for p in src.demux(stream) if p.size]
                    if span is None:  # one copy's duration, in the stream's time base
                        ends = [p.pts + (p.duration or 0) for p in packets]
                        span = max(ends) - min(p.pts for p in packets)
                    for packet in packets:
                        packet.pts += copy * span
                        packet.dts += copy * span
                        packet.stream = out_stream
                        out.mux(packet)
                        count += 1
    return count


def build_episode(
    path: Path = EPISODE_PATH, source: Path = TV_PATH, copies: int = 10, force: bool = False
) -> Path:
    """``copies`` copies of the TV edit (built first if missing), unless it exists."""
    path = Path(path)
    if _exists(path, force):
        return path
    if not Path(source).exists():
        build_tv(source)
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    started = time.monotonic()
    frames = concat_copies(Path(source), partial, copies)
    os.replace(partial, path)
    _done(path, frames, f"H.264, {copies} copies of {Path(source).name}", started)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", type=Path, default=None, help="output (default: see above)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--tv", action="store_true", help="the H.264 TV edit (x264 defaults)")
    kind.add_argument("--episode", action="store_true", help="copies of the TV edit, concatenated")
    parser.add_argument("--loops", type=int, default=None, help="times the clip sequence repeats (7; --tv 4)")
    parser.add_argument(
        "--fourcc", default="mp4v", help="OpenCV FourCC (default mp4v; avc1 needs an H.264 encoder)"
    )
    parser.add_argument("--keyint", type=int, default=None, help="--tv: keyframe interval (1 = all-intra)")
    parser.add_argument("--copies", type=int, default=10, help="--episode: copies of the TV edit (10)")
    parser.add_argument(
        "--source", type=Path, default=TV_PATH, help=f"--episode: the edit (default {TV_PATH})"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    args = parser.parse_args(argv)
    if args.tv:
        path = build_tv(args.path or TV_PATH, args.loops or 4, args.keyint, args.force)
    elif args.episode:
        path = build_episode(args.path or EPISODE_PATH, args.source, args.copies, args.force)
    else:
        path = build(args.path or DEFAULT_PATH, args.loops or 7, args.fourcc, args.force)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
