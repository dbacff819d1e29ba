"""Video access for hosts without shared storage: http(s) URLs, and frames shipped in messages."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_consistent, facepipe, leftovers, read_run


@pytest.fixture(scope="module")
def http_url(t1_video: Path) -> Iterator[str]:
    """Serve the test video over HTTP on loopback."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(t1_video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{t1_video.name}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def local_run(t1_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("local")
    proc = facepipe("run", str(t1_video), "--frame-step", "3", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return read_run(out)


def test_a_url_is_fetched_by_the_workers_and_gives_the_local_result(
    http_url: str, local_run, tmp_path: Path
) -> None:
    env = {"FACEPIPE_CACHE_DIR": str(tmp_path / "cache")}
    proc = facepipe(
        "run", http_url, "--frame-step", "3", "--out", str(tmp_path / "out"), "--no-progress", env=env
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path / "out")
    assert summary["video"] == http_url
    assert [f["identity"] for f in faces] == [f["identity"] for f in local_run[1]]
    assert summary["counts"] == local_run[0]["counts"]
    assert len(list((tmp_path / "cache").glob("*.mp4"))) == 1  # one copy per host


def test_a_bad_url_is_one_clear_line(tmp_path: Path) -> None:
    proc = facepipe(
        "run",
        "http://127.0.0.1:9/none.mp4",
        "--no-progress",
        "--out",
        str(tmp_path),
        env={"FACEPIPE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "cannot download" in proc.stderr


def test_shipped_frames_need_no_video_on_the_workers(t1_video: Path, local_run, tmp_path: Path) -> None:
    proc = facepipe(
        "run", str(t1_video), "--frame-step", "3", "--ship-frames", "--out", str(tmp_path), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path)
    assert_consistent(summary, faces)
    assert summary["frames_sampled"] == local_run[0]["frames_sampled"]
    # JPEG (quality 95) moves boxes by a pixel at most; the same six people are found.
    assert summary["identities"] == local_run[0]["identities"] == 6
    for shipped, local in zip(faces, local_run[1], strict=True):
        assert shipped["frame"] == local["frame"]
        assert max(abs(a - b) for a, b in zip(shipped["bbox"], local["bbox"], strict=True)) < 3


def test_a_message_over_the_bound_is_refused(t1_video: Path, tmp_path: Path) -> None:
    proc = facepipe(
        "run",
        str(t1_video),
        "--ship-frames",
        "--max-message-mb",
        "0.05",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert proc.returncode == 1 and "over --max-message-mb" in proc.stderr
    assert leftovers(proc) == []
