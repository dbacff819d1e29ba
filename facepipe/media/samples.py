"""A demo video with real faces, built from the photo InsightFace ships (``t1.jpg``, six people).

The demo (``scripts/demo.sh``) uses it when ``../shared/data`` is absent, and the tests
use it for their core fixtures, so neither needs anything outside installed packages.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def insightface_image(name: str = "t1.jpg") -> np.ndarray:
    """A photo from the installed insightface package's ``data/images`` (found, not imported)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.origin:
        raise FileNotFoundError("the insightface package is not installed")
    path = Path(spec.origin).parent / "data" / "images" / name
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return image


def t1_frames(count: int = 24) -> list[np.ndarray]:
    """Frames of t1.jpg (six people) panned slightly, with every 4th frame mirrored."""
    image = insightface_image()
    height, width = image.shape[:2]
    frames = []
    for i in range(count):
        shift = (i % 8) * 4
        matrix = np.float32([[1, 0, shift], [0, 1, shift // 2]])
        frame = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
        if i % 4 == 3:
            frame = cv2.flip(frame, 1)
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Frames as an MPEG-4 Part 2 ``.mp4`` (OpenCV's built-in encoder)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write a video at {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def write_h264(
    path: Path, frames: Iterable[np.ndarray], fps: float = 10.0, keyint: int | None = None
) -> Path:
    """BGR frames as H.264 in the container the suffix of ``path`` names (.mp4, .ts, .mkv),
    encoded by x264 (through PyAV) with its defaults: CRF 23, a keyframe at most every 250
    frames (``keyint`` overrides it; 1 = all-intra), 3 B-frames, closed GOPs; frame threads
    rather than slices, as the ffmpeg command line encodes. Frame sides must be even (4:2:0)."""
    import av

    with av.open(str(path), "w") as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.thread_type = "FRAME"
                if keyint is not None:
                    stream.options = {"x264-params": f"keyint={keyint}:min-keyint={keyint}"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return path


if __name__ == "__main__":
    import tempfile

    demo = Path(tempfile.gettempdir()) / "facepipe-demo-t1.mp4"
    if not demo.exists():
        write_video(demo, t1_frames(48))
    print(demo)
