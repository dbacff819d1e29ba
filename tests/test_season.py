"""A season in one command: episodes as runs of their own, the series pass, stable ids, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.media.samples import insightface_image, t1_frames, write_video
from tests.helpers import ROOT, leftovers


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three short episodes that share the six people of t1.jpg; the second also has Tom Hanks."""
    folder = tmp_path_factory.mktemp("season")
    t1 = t1_frames(12)
    hanks = np.full_like(t1[0], 90)  # InsightFace's aligned 112x112 Tom Hanks, enlarged on a grey frame
    face = cv2.resize(insightface_image("Tom_Hanks_54745.png"), (336, 336))
    y, x = (hanks.shape[0] - 336) // 2, (hanks.shape[1] - 336) // 2
    hanks[y : y + 336, x : x + 336] = face
    return [
        write_video(folder / "ep1.mp4", t1),
        write_video(folder / "ep2.mp4", [hanks] * 6 + t1[:6]),
        write_video(folder / "ep3.mp4", [cv2.flip(f, 1) for f in t1]),
    ]


def _run(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    from tests.helpers import facepipe

    return facepipe("run", *args, "--frame-step", "2", "--no-progress", env=env, timeout=timeout)


def _series(out: Path) -> tuple[dict, list[dict], dict]:
    summary = json.loads((out / "series" / "summary.json").read_text())
    faces = [json.loads(line) for line in (out / "series" / "faces.jsonl").read_text().splitlines()]
    with np.load(out / "series" / "bank.npz", allow_pickle=False) as data:
        bank = {key: data[key] for key in data.files}
    return summary, faces, bank


def test_a_season_has_episode_outputs_and_one_bank(episodes: list[Path], tmp_path: Path) -> None:
    proc = _run(*map(str, episodes), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert leftovers(proc) == []
    for name in ("ep1", "ep2", "ep3"):
        assert {"summary.json", "faces.jsonl", "bank.npz", "report.html"} <= {
            p.name for p in (tmp_path / name).iterdir()
        }
    summary, faces, bank = _series(tmp_path)
    assert summary["identities"] == 7 and summary["new"] == list(range(7)) and summary["missing"] == []
    assert bank["episodes"].tolist() == ["ep1", "ep2", "ep3"] and bank["episode_counts"].shape == (7, 3)
    episode_faces = sum(
        len((tmp_path / n / "faces.jsonl").read_text().splitlines()) for n in ("ep1", "ep2", "ep3")
    )
    assert len(faces) == episode_faces == int(bank["counts"].sum())
    # the six people of t1 are in all three episodes, under one id each; Tom Hanks only in ep2
    in_all = (bank["episode_counts"] > 0).all(axis=1)
    assert in_all.sum() == 6 and (bank["episode_counts"][~in_all] > 0).tolist() == [[False, True, False]]
    rows = (tmp_path / "series" / "identities.csv").read_text().splitlines()
    assert rows[0] == "identity,name,faces,screen_s,episodes,ep1 (s),ep2 (s),ep3 (s)" and len(rows) == 8
    page = (tmp_path / "series" / "report.html").read_text()
    assert page.count("<section class=id") == 7 and "7 people across 3 episode(s)" in page
    assert "series:" in proc.stdout


def test_the_series_does_not_depend_on_worker_counts(episodes: list[Path], tmp_path: Path) -> None:
    one = _run(*map(str, episodes), "--out", str(tmp_path / "one"))
    three = _run(*map(str, episodes), "--out", str(tmp_path / "three"), "--num-det", "3", "--num-emb", "3")
    assert one.returncode == three.returncode == 0, (one.stderr, three.stderr)
    (s1, f1, b1), (s3, f3, b3) = _series(tmp_path / "one"), _series(tmp_path / "three")
    assert f1 == f3 and s1["counts"] == s3["counts"]
    for key in ("identity_ids", "centroids", "face_identities", "face_embeddings", "episode_counts"):
        np.testing.assert_array_equal(b1[key], b3[key])


def test_a_later_episode_keeps_the_series_ids_with_the_bank(episodes: list[Path], tmp_path: Path) -> None:
    first = _run(str(episodes[0]), str(episodes[1]), "--out", str(tmp_path / "s1"))
    assert first.returncode == 0, first.stderr
    _, _, before = _series(tmp_path / "s1")
    later = _run(
        str(episodes[2]),
        "--bank",
        str(tmp_path / "s1" / "series" / "bank.npz"),
        "--out",
        str(tmp_path / "s2"),
    )
    assert later.returncode == 0, later.stderr
    summary, faces, after = _series(tmp_path / "s2")
    assert summary["new"] == [] and summary["known"] == list(range(6))  # all six are known people
    assert set(before["identity_ids"].tolist()) <= set(after["identity_ids"].tolist())  # a superset
    assert after["episodes"].tolist() == ["ep1", "ep2", "ep3"]
    # each ep3 face has the id its person had: the id of the closest known centroid
    known = before["centroids"] @ after["face_embeddings"][after["face_episodes"] == 2].T
    assert [f["identity"] for f in faces] == before["identity_ids"][known.argmax(axis=0)].tolist()


def test_bad_episodes_and_banks_are_refused_before_anything_starts(
    episodes: list[Path], tmp_path: Path
) -> None:
    missing = _run(str(episodes[0]), str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o"), timeout=60)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "nope.mp4" in missing.stderr and "nothing was started" in missing.stderr
    (tmp_path / "bad.npz").write_bytes(b"junk")
    bad = _run(
        str(episodes[0]), "--bank", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o2"), timeout=60
    )
    assert bad.returncode == 1 and "not a readable .npz bank" in bad.stderr and bad.stderr.count("\n") == 1
    assert not (tmp_path / "o2" / "ep1").exists()


def test_an_episode_that_fails_mid_way_does_not_sink_the_season(episodes: list[Path], tmp_path: Path) -> None:
    """The second episode's file disappears once it is probed: its chunks are lost, the others finish."""
    doomed = tmp_path / "doomed.mp4"
    doomed.write_bytes(episodes[1].read_bytes())
    cmd = [
        sys.executable,
        "-m",
        "facepipe.app.cli",
        "run",
        str(episodes[0]),
        str(doomed),
        str(episodes[2]),
        "--frame-step",
        "2",
        "--task-retries",
        "0",
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "episode 2/3" in line:
            doomed.unlink()  # before the workers have even started
            break
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 3, err
    summary, faces, bank = _series(tmp_path / "out")
    status = {ep["name"]: ep["status"] for ep in summary["episodes"]}
    assert status == {"ep1": "done", "doomed": "incomplete", "ep3": "done"}
    assert "lost frames" in summary["episodes"][1]["problem"]
    assert {f["episode"] for f in faces} == {"ep1", "ep3"} and summary["identities"] == 6
    assert "INCOMPLETE" in out
