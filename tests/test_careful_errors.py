"""Failures a user can cause, each with a message that says what to do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.distributed.embedded import EmbeddedServer
from tests.conftest import t1_frames
from tests.helpers import facepipe, read_run


def _avi(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_a_truncated_video_processes_what_it_can_and_says_how_much_was_lost(tmp_path: Path) -> None:
    whole = _avi(tmp_path / "whole.avi", t1_frames(30))
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: int(len(data) * 0.6)])  # the header still announces 30 frames
    proc = facepipe(
        "run", str(truncated), "--frame-step", "2", "--out", str(tmp_path / "out"), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path / "out")
    assert summary["frames_sampled"] + summary["frames_unreadable"] == 15
    assert 0 < summary["frames_unreadable"] < 15
    assert "could not be read" in proc.stdout and "truncated" in proc.stdout
    assert len(faces) == summary["faces_embedded"] > 0


def test_a_video_without_faces_gives_a_valid_empty_result(tmp_path: Path) -> None:
    blank = _avi(tmp_path / "blank.avi", [np.full((240, 320, 3), 90, np.uint8)] * 12)
    proc = facepipe("run", str(blank), "--frame-step", "3", "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path / "out")
    assert summary["identities"] == 0 and faces == [] and summary["counts"] == {}
    assert "No faces were found" in (tmp_path / "out" / "report.html").read_text()
    assert np.load(tmp_path / "out" / "bank.npz", allow_pickle=False)["centroids"].shape == (0, 512)


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_saving_crops_is_reported_and_the_run_completes(
    tiny_disk: Path, tmp_path: Path
) -> None:
    video = _avi(tmp_path / "t1.avi", t1_frames(12))
    out = tmp_path / "out"
    proc = facepipe(
        "run",
        str(video),
        "--frame-step",
        "2",
        "--out",
        str(out),
        "--save-images",
        "--save-dir",
        str(tiny_disk),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(out)
    assert summary["faces_unsaved"] > 0
    assert summary["faces_saved"] + summary["faces_unsaved"] == summary["faces_embedded"] == len(faces)
    assert summary["faces_saved"] == len(list(tiny_disk.glob("*/*.jpg")))
    assert any("No space left on device" in w for w in summary["warnings"])
    assert "WARNING: could not save face crops" in proc.stdout


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = EmbeddedServer(tmp_path_factory.mktemp("locked"), port=port, password="s3cret")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("auth,expected", [("", "needs a password"), (":wrong@", "refused the password")])
def test_a_password_protected_broker_says_so(
    locked_server: EmbeddedServer, t1_video: Path, auth: str, expected: str
) -> None:
    url = f"redis://{auth}127.0.0.1:{locked_server.port}/0"
    proc = facepipe("run", str(t1_video), "--broker", url, "--no-progress", timeout=60)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr
    assert "wrong" not in proc.stderr  # passwords are never printed
