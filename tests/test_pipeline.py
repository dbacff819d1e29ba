"""End to end with real parts: the CLI, a real server, real Celery workers, real models, real faces."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.settings import Settings
from tests.helpers import assert_consistent, facepipe, leftovers, read_run, reference_models
from tests.reference import in_process_run, sequential_run


@pytest.fixture(scope="module")
def embedded_run(t1_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("embedded")
    proc = facepipe("run", str(t1_video), "--frame-step", "2", "--chunk-size", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert leftovers(proc) == [], "the embedded run left a server or worker running"
    return out, proc


def test_embedded_run_writes_consistent_outputs(embedded_run) -> None:
    out, proc = embedded_run
    summary, faces = read_run(out)
    assert_consistent(summary, faces)
    assert summary["frames_sampled"] == 12 and summary["frames_blurry"] == 0
    assert summary["faces_embedded"] >= 12 * 5  # six faces per frame, small ones may drop
    assert summary["params"]["frame_step"] == 2 and summary["params"]["sim_thresh"] == 0.40
    assert summary["elapsed_s"] > 0
    stages = summary["stage_seconds"]
    assert (
        set(stages) == {"decode", "blur", "detect", "align", "embed", "signature"}
        and stages["detect"] > 0 < stages["embed"]
    )
    assert "identities" in proc.stdout and "global tally" in proc.stdout
    for face in faces:
        assert set(face) == {
            "frame",
            "time_s",
            "bbox",
            "det_score",
            "identity",
            "online_identity",
            "similarity",
            "track",
            "shot",
            "suspect",
            "emb_norm",
        }
        assert face["time_s"] == pytest.approx(face["frame"] / 10.0, abs=1e-3)
    founders = [f for f in faces if f["similarity"] is None and not f["suspect"]]
    assert len(founders) == summary["online_identities"] >= summary["identities"]
    assert summary["tracks"] >= summary["identities"] and summary["shots"] >= 1


def test_embedded_run_equals_one_process_walking_the_frames(embedded_run, t1_video: Path) -> None:
    out, _ = embedded_run
    summary, _ = read_run(out)
    detector, embedder = reference_models()
    ref = in_process_run(str(t1_video), Settings(frame_step=2, chunk_size=3), detector, embedder)
    assert (out / "faces.jsonl").read_bytes() == b"".join(line.to_json() + b"\n" for line in ref)
    # Six different people in the picture: six identities.
    assert summary["identities"] == 6


def test_process_video_in_python_equals_the_embedded_run(embedded_run, t1_video: Path, tmp_path) -> None:
    """``facepipe.process_video``: no Celery, no Redis, the same faces and bank as ``facepipe run``."""
    import numpy as np

    from facepipe import process_video

    out, _ = embedded_run
    detector, embedder = reference_models()
    settings = Settings(frame_step=2, chunk_size=3)
    result = process_video(t1_video, settings, detector=detector, embedder=embedder)
    lines = b"".join(line.to_json() + b"\n" for line in result.final.faces)
    assert (out / "faces.jsonl").read_bytes() == lines
    with np.load(out / "bank.npz") as run, np.load(result.write_bank(tmp_path / "bank.npz")) as mine:
        assert sorted(run.files) == sorted(mine.files)
        for key in run.files:
            if key != "run_id":
                np.testing.assert_array_equal(run[key], mine[key], err_msg=key)


def test_clustering_seed_is_the_plain_seed_loop(t1_video: Path, tmp_path: Path) -> None:
    proc = facepipe("run", str(t1_video), "--frame-step", "2", "--clustering", "seed", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path)
    assert_consistent(summary, faces)
    detector, embedder = reference_models()
    ref = sequential_run(
        str(t1_video), Settings(frame_step=2, sim_thresh=0.27, merge_thresh=0), detector, embedder
    )
    assert [f["frame"] for f in faces] == [f["frame"] for f in ref["faces"]]
    assert [f["identity"] for f in faces] == ref["assignments"]
    assert summary["counts"] == ref["final_counts"] and summary["params"]["sim_thresh"] == 0.27


def test_running_workers_give_the_same_identities(
    embedded_run, t1_video: Path, server, workers, tmp_path
) -> None:
    out, _ = embedded_run
    proc = facepipe(
        "run",
        str(t1_video),
        "--frame-step",
        "2",
        "--chunk-size",
        "3",
        "--out",
        str(tmp_path),
        "--broker",
        server.url,
        "--redis-prefix",
        "fp-e2e",
    )
    assert proc.returncode == 0, proc.stderr
    _, remote_faces = read_run(tmp_path)
    _, local_faces = read_run(out)
    assert [f["identity"] for f in remote_faces] == [f["identity"] for f in local_faces]
    assert [f["bbox"] for f in remote_faces] == [f["bbox"] for f in local_faces]
    status = facepipe("status", "--broker", server.url, "--redis-prefix", "fp-e2e")
    assert status.returncode == 0 and "done" in status.stdout, status.stderr
    runs = facepipe("runs", "--broker", server.url, "--redis-prefix", "fp-e2e")
    assert runs.returncode == 0 and str(t1_video) in runs.stdout
    # The run stays in Redis: its outputs can be rebuilt from there.
    run_id = read_run(tmp_path)[0]["run_id"]
    again = facepipe(
        "report", run_id, "--broker", server.url, "--redis-prefix", "fp-e2e", "--out", str(tmp_path / "again")
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "faces.jsonl").read_bytes() == (tmp_path / "faces.jsonl").read_bytes()
    assert (tmp_path / "again" / "report.html").is_file() and (tmp_path / "again" / "bank.npz").is_file()
    missing = facepipe("report", "no-such-run", "--broker", server.url, "--redis-prefix", "fp-e2e")
    assert missing.returncode == 1 and "no run" in missing.stderr
    deleted = facepipe("delete", run_id, "--broker", server.url, "--redis-prefix", "fp-e2e")
    assert deleted.returncode == 0 and "deleted run" in deleted.stdout
    assert run_id not in facepipe("runs", "--broker", server.url, "--redis-prefix", "fp-e2e").stdout


def test_save_images_writes_crops_per_identity(t1_video: Path, tmp_path) -> None:
    proc = facepipe(
        "run", str(t1_video), "--frame-step", "6", "--out", str(tmp_path), "--save-images", "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    summary, faces = read_run(tmp_path)
    crops = sorted((tmp_path / "faces").glob("*/frame_*_*.jpg"))
    assert len(crops) == summary["faces_saved"] == len(faces)
    for face in faces:
        assert any(
            p.parent.name == str(face["identity"]) and p.name.startswith(f"frame_{face['frame']}_")
            for p in crops
        )


def test_eval_scores_a_run_against_labels(embedded_run, tmp_path) -> None:
    import json

    out, _ = embedded_run
    _, faces = read_run(out)
    exact = [{"frame": f["frame"], "bbox": f["bbox"], "label": f"p{f['identity']}"} for f in faces]
    lumped = [{**x, "label": "everyone"} for x in exact]
    (tmp_path / "exact.json").write_text(json.dumps(exact))
    (tmp_path / "lumped.json").write_text(json.dumps(lumped))
    good = facepipe("eval", str(out), str(tmp_path / "exact.json"))
    assert good.returncode == 0, good.stderr
    scores = json.loads(good.stdout)
    assert (
        scores["pairwise"]["f1"] == scores["bcubed"]["f1"] == 1.0 and scores["found"] == scores["true"] == 6
    )
    bad = json.loads(facepipe("eval", str(out), str(tmp_path / "lumped.json")).stdout)
    assert bad["pairwise"]["precision"] == 1.0 and bad["pairwise"]["recall"] < 0.25 and bad["true"] == 1
    missing = facepipe("eval", str(out), str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "labels file not found" in missing.stderr
