"""Helpers for end-to-end tests: run the real CLI, read its outputs, check for leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def facepipe(*args: str, timeout: float = 240, env: dict | None = None, cwd: Path | None = None):
    """Run ``facepipe`` as a user would (a separate process); returns CompletedProcess.

    Every call gets a unique ``FACEPIPE_TEST_TAG`` in its environment, which every process
    it starts inherits, so :func:`leftovers` can find exactly the processes of this call.
    """
    tag = f"fptag-{os.getpid()}-{time.monotonic_ns()}"
    full_env = {**os.environ, **(env or {}), "FACEPIPE_TEST_TAG": tag}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "facepipe.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
    )
    proc.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    proc.tag = tag  # type: ignore[attr-defined]
    return proc


def read_run(out: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((out / "summary.json").read_text())
    faces = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
    return summary, faces


def leftovers(proc) -> list[str]:
    """Command lines of processes still running that a :func:`facepipe` call started."""
    return processes_with(f"FACEPIPE_TEST_TAG={proc.tag}".encode())


def processes_with(needle: bytes) -> list[str]:
    """Command lines of the other processes whose environment contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def assert_consistent(summary: dict, faces: list[dict]) -> None:
    """summary.json counts add up to the lines of faces.jsonl, and with the rejected faces to
    every face embedded."""
    assert sum(summary["counts"].values()) == summary["faces"] == len(faces)
    assert summary["faces"] + summary["faces_rejected"] == summary["faces_embedded"]
    assert len(summary["rejected_faces"]) == summary["faces_rejected"]
    assert summary["faces_detected"] == summary["faces_embedded"]
    assert summary["identities"] == len(summary["counts"])
    for identity, count in summary["counts"].items():
        assert sum(1 for f in faces if str(f["identity"]) == identity) == count
    frames = [f["frame"] for f in faces]
    assert frames == sorted(frames)


def reference_models(backend: str = "auto", precision: str = "auto"):
    """The models a default run's workers load (``--backend auto`` and ``--precision auto``
    resolve per model the same way here), on one thread as the embedded workers run them."""
    from facepipe.inference.detector import FaceDetector
    from facepipe.inference.embedder import FaceEmbedder

    return (
        FaceDetector.from_settings(None, 1, "auto", backend, precision),
        FaceEmbedder.from_settings(None, 1, "auto", backend, precision),
    )


def skip_without(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}")
