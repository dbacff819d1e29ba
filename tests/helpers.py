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
    """Run ``facepipe`` as a user would (a separate process); returns CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "facepipe.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
    )
    proc.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return proc


def read_run(out: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((out / "summary.json").read_text())
    faces = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
    return summary, faces


def service_pids() -> set[int]:
    """PIDs of every valkey/redis server and celery worker on the machine."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "valkey-server" in cmd or "redis-server" in cmd or ("celery" in cmd and "worker" in cmd):
            pids.add(int(entry.name))
    return pids


def assert_consistent(summary: dict, faces: list[dict]) -> None:
    """summary.json counts add up to faces_embedded and to the lines of faces.jsonl."""
    assert sum(summary["counts"].values()) == summary["faces_embedded"] == len(faces)
    assert summary["faces_detected"] == summary["faces_embedded"]
    assert summary["identities"] == len(summary["counts"])
    for identity, count in summary["counts"].items():
        assert sum(1 for f in faces if str(f["identity"]) == identity) == count
    frames = [f["frame"] for f in faces]
    assert frames == sorted(frames)


def reference_models():
    from facepipe.models import FaceDetector, FaceEmbedder, resolve_model

    return FaceDetector(resolve_model("detector"), 1), FaceEmbedder(resolve_model("embedder"), 1)


def skip_without(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}")
