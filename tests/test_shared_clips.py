"""The real clips in ../shared/data/videos: identities, worker counts, the sequential reference.

Skipped (with the reason) when ../shared/data is not beside the checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_consistent, facepipe, leftovers, read_run, reference_models
from tests.reference import sequential_run

CLIPS = {"hamilton_short.mp4": 3, "two_person_call.mp4": 5, "dance_scene.mp4": 5}  # clip -> frame step


@pytest.fixture(scope="module")
def models():
    return reference_models()


def _params(frame_step: int):
    from facepipe.settings import Settings

    return Settings(frame_step=frame_step)


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_worker_counts_agree_with_each_other_and_with_the_sequential_loop(
    clip: str, shared_data: Path, models, tmp_path: Path
) -> None:
    video = shared_data / "videos" / clip
    step = CLIPS[clip]
    runs = {}
    for det, emb in ((1, 1), (3, 2)):
        out = tmp_path / f"{det}x{emb}"
        proc = facepipe(
            "run",
            str(video),
            "--frame-step",
            str(step),
            "--num-det",
            str(det),
            "--num-emb",
            str(emb),
            "--out",
            str(out),
            "--no-progress",
        )
        assert proc.returncode == 0, proc.stderr
        assert leftovers(proc) == []
        summary, faces = read_run(out)
        assert_consistent(summary, faces)
        runs[(det, emb)] = (summary, faces, (out / "faces.jsonl").read_bytes())
    (s1, f1, raw1), (s2, _, raw2) = runs[(1, 1)], runs[(3, 2)]
    assert raw1 == raw2, "faces.jsonl differs between 1/1 and 3/2 workers"
    assert s1["counts"] == s2["counts"]
    ref = sequential_run(str(video), _params(step), *models)
    assert [f["online_identity"] for f in f1] == ref["assignments"]
    assert [f["identity"] for f in f1] == ref["final"]
    assert s1["counts"] == ref["final_counts"]


def test_hamilton_finds_the_people_and_hand_started_workers_agree(
    shared_data: Path, server, workers, tmp_path: Path
) -> None:
    video = shared_data / "videos" / "hamilton_short.mp4"
    proc = facepipe(
        "run", str(video), "--frame-step", "3", "--out", str(tmp_path / "embedded"), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path / "embedded")
    assert 3 <= summary["identities"] <= 8
    assert_consistent(summary, faces)
    remote = facepipe(
        "run",
        str(video),
        "--frame-step",
        "3",
        "--out",
        str(tmp_path / "remote"),
        "--broker",
        server.url,
        "--redis-prefix",
        "fp-hamilton",
        "--no-progress",
    )
    assert remote.returncode == 0, remote.stderr
    remote_summary, remote_faces = read_run(tmp_path / "remote")
    assert remote_summary["counts"] == summary["counts"]
    assert [f["identity"] for f in remote_faces] == [f["identity"] for f in faces]


def test_two_person_call_has_two_people(shared_data: Path, tmp_path: Path) -> None:
    proc = facepipe(
        "run",
        str(shared_data / "videos" / "two_person_call.mp4"),
        "--frame-step",
        "10",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    summary, _ = read_run(tmp_path)
    assert summary["identities"] == 2
    assert (tmp_path / "report.html").is_file() and (tmp_path / "bank.npz").is_file()
