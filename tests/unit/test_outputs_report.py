"""Outputs and the report, built from fixture folders (no server, no workers)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.app.outputs import EXIT_LOST_CHUNKS, exit_status, format_summary, write_outputs
from facepipe.app.report.build import build_report
from facepipe.app.report.identities import pick_faces
from facepipe.app.summary import Summary
from facepipe.clustering.final import FinalIdentities
from facepipe.errors import FacepipeError
from facepipe.media.samples import t1_frames, write_video
from facepipe.records import FaceLine


def _summary(video: str, counts: dict[str, int], failed: list | None = None) -> Summary:
    faces = sum(counts.values())
    return Summary.model_validate({
        "run_id": "fixture-run",
        "video": video,
        "elapsed_s": 1.5,
        "chunks": 3,
        "frames_read": 24,
        "frames_sampled": 12,
        "frames_blurry": 1,
        "frames_lost": 2 if failed else 0,
        "frames_unreadable": 0,
        "faces_detected": faces,
        "faces_embedded": faces,
        "faces_saved": 0,
        "faces_unsaved": 0,
        "identities": len(counts),
        "online_identities": len(counts) + 1,
        "counts": counts,
        "stage_seconds": {"detect": 0.4},
        "failed_chunks": failed or [],
        "warnings": [],
        "params": {"fps": 10.0, "frame_step": 2, "frame_count": 24, "merge_thresh": 0.25, "video": video},
    })


def _lines(t1_boxes: list[list[float]]) -> list[FaceLine]:
    """Faces of identities 0 (frames 0-10) and 1 (frames 0-4), boxes of real faces in t1.jpg."""
    lines = []
    for frame in range(0, 12, 2):
        lines.append(
            FaceLine(
                frame=frame,
                time_s=frame / 10,
                bbox=t1_boxes[0],
                det_score=0.9,
                identity=0,
                similarity=None if frame == 0 else 0.7,
                online_identity=0,
            )
        )
        if frame < 6:
            lines.append(
                FaceLine(
                    frame=frame,
                    time_s=frame / 10,
                    bbox=t1_boxes[1],
                    det_score=0.8,
                    identity=1,
                    similarity=None if frame == 0 else 0.6,
                    online_identity=2,
                )
            )
    return lines


@pytest.fixture()
def run_dir(tmp_path: Path) -> tuple[Path, list[FaceLine]]:
    video = write_video(tmp_path / "t1.mp4", t1_frames(24))
    boxes = [[140.0, 60.0, 200.0, 140.0], [300.0, 80.0, 360.0, 160.0]]
    lines = _lines(boxes)
    final = FinalIdentities(
        embeddings=np.zeros((2, 512), np.float32),
        centroids=np.zeros((2, 512), np.float32),
        refine_counts=np.array([6, 3]),
        counts=np.array([6, 3]),
        extras=np.array([False, False]),
        faces=lines,
        face_embeddings=np.zeros((len(lines), 512), np.float32),
    )
    out = tmp_path / "out"
    write_outputs(out, _summary(str(video), {"0": 6, "1": 3}), final)
    return out, lines


def test_outputs_are_the_summary_and_one_line_per_face(run_dir) -> None:
    out, lines = run_dir
    written = (out / "faces.jsonl").read_bytes().splitlines()
    assert written == [line.to_json() for line in lines]
    assert json.loads((out / "summary.json").read_text())["counts"] == {"0": 6, "1": 3}


def test_summary_text_ranks_identities_and_names_lost_frames(tmp_path: Path) -> None:
    summary = _summary("/v.mp4", {"0": 3, "1": 9}, failed=[{"seq": 1, "frames": [8, 16], "reason": "x"}])
    text = format_summary(summary, tmp_path)
    ranked = [line for line in text.splitlines() if line.strip().startswith("id ")]
    assert ranked[0].split()[1] == "1:" and "75.0%" in ranked[0]
    assert "LOST frame ranges (2 sampled frames): 8-15" in text and "global tally: 12 faces in 2" in text
    assert exit_status(summary) == EXIT_LOST_CHUNKS and exit_status(_summary("/v", {})) == 0


def test_report_from_a_run_folder_has_a_card_and_real_crops_per_identity(run_dir) -> None:
    out, _ = run_dir
    page = build_report(out).read_text()
    assert page.count("<section class=id") == 2 and "2 people found in t1.mp4" in page
    assert page.count('src="data:image/jpeg;base64,') == 4 + 3  # up to 4 crops each
    assert "Content-Security-Policy" in page and "<script>" in page and "http" not in page.split("<body>")[1]


def test_report_without_the_video_still_builds_with_placeholders(run_dir, tmp_path: Path) -> None:
    out, _ = run_dir
    page = build_report(out, str(tmp_path / "moved.mp4")).read_text()
    assert page.count("<section class=id") == 2 and "data:image/jpeg" not in page
    assert "Face crops not shown" in page


def test_report_of_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FacepipeError, match="has no summary.json or faces.jsonl"):
        build_report(tmp_path)


def test_crop_picks_spread_over_time() -> None:
    faces = [{"frame": f, "bbox": [0, 0, 10 + f % 3, 10], "det_score": 0.9} for f in range(40)]
    picked = pick_faces(faces, 4)
    assert len(picked) == 4 and [p["frame"] // 10 for p in picked] == [0, 1, 2, 3]
    assert cv2 is not None  # the crops above were cut with OpenCV from a real video


def test_extras_are_listed_apart_in_the_summary_and_the_report(run_dir) -> None:
    out, _ = run_dir
    summary = json.loads((out / "summary.json").read_text())
    summary.update(extras=[1], people=1, params={**summary["params"], "min_faces": 4})
    (out / "summary.json").write_text(json.dumps(summary))
    page = build_report(out).read_text()
    main, extras = page.split("Extras: 1 background people")
    assert main.count("<section class=id") == 1 and extras.count("<section class=id") == 1
    assert "people (+1 extras)" in main
    text = format_summary(Summary.model_validate(summary), out)
    assert "extras (fewer than 4 faces): 1 (3)" in text and "id    1:" not in text
