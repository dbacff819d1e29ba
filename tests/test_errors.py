"""Bad input: one line that says what to do, a non-zero exit within seconds, nothing left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.inference.files import vectron_model_dir
from tests.helpers import facepipe, leftovers


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    (root / "model.onnx").write_bytes(b"\x00garbage" * 100)
    return {"empty": root / "empty.mp4", "text": root / "text.mp4", "model": root / "model.onnx", "dir": root}


def _cases(video: Path, bad: dict[str, Path]) -> list[tuple[list[str], str]]:
    models = vectron_model_dir()
    assert models is not None
    v = str(video)
    return [
        (["/no/such/video.mp4"], "video not found"),
        ([str(bad["empty"])], "is empty"),
        ([str(bad["text"])], "cannot open"),
        ([str(bad["dir"])], "is a folder"),
        ([v, "--det-input", "641x640"], "--det-input"),
        ([v, "--det-input", "big"], "--det-input"),
        ([v, "--frame-step", "0"], "--frame-step"),
        ([v, "--frame-step", "two"], "--frame-step"),
        ([v, "--sim-thresh", "1.5"], "--sim-thresh"),
        ([v, "--sim-thresh", "-1.01"], "--sim-thresh"),
        ([v, "--det-model", "/no/such/det.onnx"], "model file not found"),
        ([v, "--rec-model", str(bad["model"])], "not a valid ONNX model"),
        ([v, "--det-model", str(models / "w600k_mbf.onnx")], "not an SCRFD face detector"),
        ([v, "--broker", "redis://127.0.0.1:1/0"], "cannot reach broker"),
        ([v, "--broker", "http://example"], "broker"),
        ([v, "--out", "/proc/facepipe-cannot-write-here"], "cannot write to output folder"),
    ]


def test_bad_input_gets_one_clear_line(t1_video: Path, bad_files: dict[str, Path]) -> None:
    for args, expected in _cases(t1_video, bad_files):
        proc = facepipe("run", *args, "--no-progress", timeout=60)
        assert proc.returncode != 0, args
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("facepipe: error:") and expected in lines[0], (args, lines[0])
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.elapsed < 15, (args, proc.elapsed)  # type: ignore[attr-defined]
        assert leftovers(proc) == [], args


def test_status_needs_a_broker() -> None:
    proc = facepipe("status", timeout=30, env={"FACEPIPE_BROKER_URL": ""})
    assert proc.returncode == 1 and "pass --broker" in proc.stderr


def test_help_explains_every_seed_flag() -> None:
    proc = facepipe("run", "--help", timeout=30, env={"COLUMNS": "250"})
    assert proc.returncode == 0
    for flag in (
        "--det-input",
        "--det-thresh",
        "--nms-thresh",
        "--min-face",
        "--frame-step",
        "--num-det",
        "--num-emb",
        "--redis-host",
        "--redis-port",
        "--redis-prefix",
        "--sim-thresh",
        "--refine-limit",
        "--blur-enable",
        "--blur-var-thresh",
        "--blur-grid",
        "--blur-grid-min-keep",
        "--blur-resize",
        "--save-images",
        "--save-dir",
        "--debug",
        "--broker",
    ):
        assert flag in proc.stdout, flag
    assert "(default: 15)" in proc.stdout and "(default: auto)" in proc.stdout
