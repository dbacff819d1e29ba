"""Shared fixtures: a real Redis-compatible server, real Celery workers, real videos.

Core fixtures are built from files that installed packages ship (insightface's
``t1.jpg``, six real faces); the clips in ``../shared/data`` are used where present
and their tests skip with a reason where not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.embedded import EmbeddedServer, EmbeddedWorkers
from facepipe.store import connect

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def insightface_image(name: str = "t1.jpg") -> np.ndarray:
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    assert spec is not None and spec.origin
    path = Path(spec.origin).parent / "data" / "images" / name
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


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


@pytest.fixture(scope="session")
def t1_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-frame video of six real faces (from insightface's t1.jpg)."""
    return write_video(tmp_path_factory.mktemp("video") / "t1.mp4", t1_frames())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "videos").is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (clone with ../shared beside the repo)")
    return SHARED


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer]:
    """A real valkey-server on a unix socket, for the whole session."""
    workdir = Path(tempfile.mkdtemp(prefix="fp-test-"))
    srv = EmbeddedServer(workdir)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def redis_client(server: EmbeddedServer):
    return connect(server.url)


@pytest.fixture(scope="session")
def workers(server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedWorkers]:
    """Real Celery workers (detect, embed, writer) on the session server."""
    logs = tmp_path_factory.mktemp("worker-logs")
    pool = EmbeddedWorkers(server.url, logs, logs, "tests")
    pool.start({"detect": 1, "embed": 1, "writer": 1}, {"FACEPIPE_ORT_THREADS": "1"})
    try:
        yield pool
    finally:
        pool.stop()
