"""Ctrl-C and SIGTERM during a run stop everything the command started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import t1_frames, write_video
from tests.helpers import ROOT, leftovers


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough (120 frames at every frame) that the run is still going when interrupted."""
    return write_video(tmp_path_factory.mktemp("long") / "t1-120.mp4", t1_frames(120))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_its_server_and_workers(long_video: Path, tmp_path: Path, sig: int) -> None:
    tag = f"fptag-int-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facepipe.app.cli",
            "run",
            str(long_video),
            "--frame-step",
            "1",
            "--chunk-size",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        cwd=ROOT,
        env={**os.environ, "FACEPIPE_TEST_TAG": tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.tag = tag  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not any("-Q" in cmd for cmd in leftovers(proc)):  # wait until its workers exist
        assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
        time.sleep(0.1)
    time.sleep(2.0)  # let work begin
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 20
    assert "interrupted" in err and "Traceback" not in err
    assert leftovers(proc) == []
