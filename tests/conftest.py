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

import pytest

from facepipe.distributed.embedded import EmbeddedServer, EmbeddedWorkers
from facepipe.distributed.store import connect
from facepipe.media.samples import insightface_image, t1_frames, write_video

__all__ = ["SHARED", "insightface_image", "t1_frames", "write_video"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


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
    """Real Celery workers (detect, embed, writer) on the session server, each detect worker with
    the detector only, as a fleet's are: crops travel to the embed worker as PNG in an embed
    message (the embedded default embeds where it detects; tests compare the two paths' runs)."""
    logs = tmp_path_factory.mktemp("worker-logs")
    pool = EmbeddedWorkers(server.url, logs, logs, "tests")
    pool.start({"detect": 1, "embed": 1, "writer": 1}, {"FACEPIPE_ORT_THREADS": "1"}, fuse=False)
    try:
        yield pool
    finally:
        pool.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything outside ``tests/unit`` starts real servers, workers or subprocesses."""
    unit = Path(__file__).parent / "unit"
    for item in items:
        if unit not in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
