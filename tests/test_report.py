"""bank.npz and report.html: the bank format, a real run's report, and the page in a real browser."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import orjson
import pytest

from facepipe.app.banks import BANK_KEYS, RUN_OPTIONAL_KEYS, read_run_bank, write_run_bank
from facepipe.app.report.build import build_report, report_command
from facepipe.app.report.formatting import fmt_time
from facepipe.app.report.identities import THUMBNAILS_PER_IDENTITY
from facepipe.app.report.page import CSP, SCRIPT
from facepipe.distributed.store import RunStore
from facepipe.distributed.writer import Writer, finalise
from facepipe.errors import FacepipeError
from facepipe.records import ChunkRecord, DetectedFace, RunParams, VideoInfo, face_key
from facepipe.settings import Settings
from tests.conftest import write_video

# -- (a) the bank format, from records applied by the real writer -----------------------------


def _params(**settings: object) -> RunParams:
    fps = float(settings.pop("fps"))  # type: ignore[arg-type]
    # the writer's own mechanics, on synthetic records without frame signatures: the seed's mode
    info = VideoInfo("/nowhere.mp4", 100, fps, 640, 480)
    return RunParams.build(Settings(clustering="seed", **settings), info)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_write_bank_from_applied_chunks(redis_client, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    store = RunStore(redis_client, "test-bank", uuid.uuid4().hex[:12])
    params = _params(sim_thresh=0.5, refine_limit=3, fps=10.0, frame_step=2)
    store.create({"video": "/nowhere.mp4", "params": params, "chunks": 4})
    people = _unit(rng.normal(size=(3, 512)))  # random unit vectors are near-orthogonal in 512-d
    plan = {0: [0, 1], 1: [0, 1, 2], 2: [2]}  # chunk seq -> which person each face shows
    expected_faces = []
    for seq, who in plan.items():
        frame = seq * 4
        faces = [
            DetectedFace(
                frame=frame, index=i, bbox=[10.0 * i, 5.0, 10.0 * i + 40, 55.0], det_score=0.9, aligned=True
            )
            for i in range(len(who))
        ]
        emb = _unit(people[who] + 0.02 * rng.normal(size=(len(who), 512)))
        record = ChunkRecord(
            seq=seq, start=frame, stop=frame + 4, step=2, frames_read=4, frames_sampled=2, faces=faces
        )
        record.set_embeddings(emb)
        store.put_chunk(record)
        expected_faces += [(frame, p, e) for p, e in zip(who, emb, strict=True)]
    lost = ChunkRecord.lost(3, 12, 16, 2, "decoder crashed")  # a lost chunk adds no faces
    store.put_chunk(lost)
    try:
        assert Writer().apply_ready(store, params) == 4

        path = write_run_bank(tmp_path, finalise(store), store.params(), store.run_id)
        assert path == tmp_path / "bank.npz"
        with np.load(path, allow_pickle=False) as raw:  # no object arrays anywhere
            assert set(raw.files) == set(BANK_KEYS) | set(RUN_OPTIONAL_KEYS)
            arrays = {key: raw[key] for key in raw.files}
        assert not any(a.dtype.hasobject for a in arrays.values())
        bank = read_run_bank(path)

        n_faces = len(expected_faces)
        assert bank["identity_ids"].tolist() == [0, 1, 2]
        assert bank["centroids"].shape == (3, 512) and bank["centroids"].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(bank["centroids"], axis=1), 1.0, atol=1e-5)
        for key in ("counts", "refine_counts", "first_frame", "last_frame", "face_frames", "face_identities"):
            assert bank[key].dtype == np.int64, key
        assert bank["counts"].tolist() == [2, 2, 2]
        assert int(bank["counts"].sum()) == n_faces
        assert bank["refine_counts"].tolist() == [2, 2, 2]
        assert bank["first_frame"].tolist() == [0, 0, 4]
        assert bank["last_frame"].tolist() == [4, 4, 8]
        assert bank["face_embeddings"].shape == (n_faces, 512)
        assert bank["face_embeddings"].dtype == np.float32
        np.testing.assert_array_equal(bank["face_embeddings"], np.stack([e for _, _, e in expected_faces]))
        assert bank["face_frames"].tolist() == [f for f, _, _ in expected_faces]
        assert bank["face_identities"].tolist() == [p for _, p, _ in expected_faces]
        assert bank["face_bboxes"].shape == (n_faces, 4) and bank["face_bboxes"].dtype == np.float32
        assert bank["face_bboxes"][1].tolist() == [10.0, 5.0, 50.0, 55.0]
        np.testing.assert_array_equal(bank["centroids"], store.load_identities().centroids)
        # each centroid sits on its person: the bank can match new faces
        assert (bank["centroids"] @ people.T).argmax(axis=1).tolist() == [0, 1, 2]
        assert bank["fps"] == 10.0 and bank["frame_step"] == 2
        assert bank["run_id"] == store.run_id
        # what people decide later: nothing yet (no names, every face its own anchor)
        assert bank["names"].tolist() == ["", "", ""] and bank["next_id"] == 3
        np.testing.assert_array_equal(bank["face_anchors"], bank["face_identities"])
        assert bank["model"].startswith("w600k_mbf.onnx:") and bank["video"] == "/nowhere.mp4"
        assert arrays["run_id"].shape == () and arrays["run_id"].dtype.kind == "U"

        # an explicit .npz name is used as is
        named = tmp_path / "named.npz"
        assert write_run_bank(named, finalise(store), store.params(), store.run_id) == named
        assert read_run_bank(tmp_path / "named.npz")["run_id"] == store.run_id
    finally:
        store.delete()


def test_write_bank_of_a_run_without_faces(redis_client, tmp_path: Path) -> None:
    store = RunStore(redis_client, "test-bank", uuid.uuid4().hex[:12])
    params = _params(sim_thresh=0.5, refine_limit=3, fps=25.0, frame_step=5)
    store.create({"video": "/nowhere.mp4", "params": params, "chunks": 1})
    store.put_chunk(ChunkRecord(seq=0, start=0, stop=10, step=5, frames_read=6, frames_sampled=2))
    try:
        Writer().apply_ready(store, params)
        bank = read_run_bank(write_run_bank(tmp_path, finalise(store), store.params(), store.run_id))
        assert bank["centroids"].shape == (0, 512)
        assert bank["face_embeddings"].shape == (0, 512)
        assert bank["face_bboxes"].shape == (0, 4)
        assert bank["counts"].shape == (0,)
    finally:
        store.delete()


# -- (b) a real run end to end: outputs -> bank.npz and report.html --------------------------


def _facepipe() -> list[str]:
    script = Path(sys.executable).with_name("facepipe")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facepipe.app.cli"]


def _run(video: Path, out: Path, broker: str, prefix: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPIPE_")}
    cmd = [*_facepipe(), "run", str(video), "--frame-step", "2", "--out", str(out)]
    cmd += ["--broker", broker, "--redis-prefix", prefix, "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return orjson.loads((out / "summary.json").read_bytes())


@pytest.fixture(scope="module")
def t1_run(server, workers, t1_video: Path, tmp_path_factory: pytest.TempPathFactory):
    """``facepipe run t1.mp4 --frame-step 2`` on the session's workers, then bank and report.

    The run goes to the session server (``--broker``) rather than an embedded one so its
    keys are still there afterwards for :func:`write_run_bank`.
    """
    from facepipe.distributed.store import connect

    out = tmp_path_factory.mktemp("t1-run")
    prefix = f"test-report-{uuid.uuid4().hex[:8]}"
    summary = _run(t1_video, out, server.url, prefix)
    store = RunStore(connect(server.url), prefix, summary["run_id"])
    bank_path = write_run_bank(out, finalise(store), store.params(), store.run_id)
    report = build_report(out, str(t1_video))
    yield out, summary, bank_path, report, store
    store.delete()


@pytest.fixture(scope="module")
def blank_run(server, workers, tmp_path_factory: pytest.TempPathFactory):
    """A real run over a video with no faces at all."""
    from facepipe.distributed.store import connect

    folder = tmp_path_factory.mktemp("blank-run")
    video = write_video(folder / "blank.mp4", [np.full((240, 320, 3), 128, np.uint8)] * 12)
    prefix = f"test-report-{uuid.uuid4().hex[:8]}"
    summary = _run(video, folder / "out", server.url, prefix)
    store = RunStore(connect(server.url), prefix, summary["run_id"])
    yield folder / "out", summary, store, video
    store.delete()


def _faces(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "faces.jsonl").read_bytes().splitlines()]


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_bank_matches_the_run_outputs(t1_run) -> None:
    out, summary, bank_path, _, _ = t1_run
    faces = _faces(out)
    bank = read_run_bank(bank_path)
    assert summary["identities"] >= 1 and len(faces) >= summary["identities"]
    assert len(bank["identity_ids"]) == summary["identities"]
    assert {str(i): int(c) for i, c in zip(bank["identity_ids"], bank["counts"], strict=True)} == summary[
        "counts"
    ]
    assert int(bank["counts"].sum()) == len(faces)
    assert bank["face_embeddings"].shape == (len(faces), 512)
    np.testing.assert_allclose(np.linalg.norm(bank["face_embeddings"], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(bank["centroids"], axis=1), 1.0, atol=1e-4)
    assert bank["face_frames"].tolist() == [f["frame"] for f in faces]
    assert bank["face_identities"].tolist() == [f["identity"] for f in faces]
    np.testing.assert_allclose(bank["face_bboxes"], np.array([f["bbox"] for f in faces]), rtol=1e-6)
    for i in bank["identity_ids"]:
        frames = [f["frame"] for f in faces if f["identity"] == i]
        assert (bank["first_frame"][i], bank["last_frame"][i]) == (min(frames), max(frames))
    # every face is closest to the centroid of the identity it was given
    sims = bank["face_embeddings"] @ bank["centroids"].T
    assert (sims.argmax(axis=1) == bank["face_identities"]).mean() > 0.95
    assert bank["fps"] == summary["params"]["fps"] and bank["frame_step"] == 2
    assert bank["run_id"] == summary["run_id"]


def test_report_of_a_real_run(t1_run) -> None:
    out, summary, _, report, _ = t1_run
    assert report == out / "report.html"
    page = report.read_text(encoding="utf-8")
    params = summary["params"]
    cards = re.findall(r'data-identity="(\d+)"', page)
    assert sorted(cards, key=int) == sorted(summary["counts"], key=int)
    # most frequent first
    ranked = [summary["counts"][c] for c in cards]
    assert ranked == sorted(ranked, reverse=True)
    sources = _img_sources(page)
    assert len(sources) == sum(min(THUMBNAILS_PER_IDENTITY, c) for c in summary["counts"].values())
    for src in sources:
        assert src.startswith("data:image/jpeg;base64,")
        crop = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert crop is not None and 112 <= crop.shape[0] == crop.shape[1] <= 160
    # self-contained: nothing but data: URIs, and the CSP forbids anything else
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?!data:)[a-z]+:""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    # screen time of each identity, and the stage figures
    for count in summary["counts"].values():
        assert fmt_time(count * params["frame_step"] / params["fps"]) in page
    assert f"{summary['identities']} people found in t1.mp4" in page
    for figure in (summary["frames_read"], summary["frames_sampled"], summary["faces_embedded"]):
        assert f"<b>{figure:,}</b>" in page
    assert page.count("<svg class=tl") == summary["identities"]


def test_report_without_the_video(t1_run, tmp_path: Path) -> None:
    out, summary, _, _, _ = t1_run
    for name in ("summary.json", "faces.jsonl"):
        shutil.copy(out / name, tmp_path / name)
    page = build_report(tmp_path, str(tmp_path / "moved-away.mp4")).read_text(encoding="utf-8")
    assert _img_sources(page) == []
    assert "moved-away.mp4" in page and "Face crops not shown" in page
    assert page.count("the video could not be read") == summary["identities"]
    assert page.count("<svg class=tl") == summary["identities"]


def test_report_from_the_crops_the_run_kept_needs_no_video(t1_run, tmp_path: Path) -> None:
    """The detect workers keep every face's crop; a report from them equals one cut from the video."""
    out, summary, _, report, store = t1_run
    for name in ("summary.json", "faces.jsonl"):
        shutil.copy(out / name, tmp_path / name)
    kept_page = build_report(tmp_path, str(tmp_path / "moved-away.mp4"), kept=store.thumbnails).read_text()
    from_video = _img_sources(report.read_text(encoding="utf-8"))
    assert _img_sources(kept_page) == from_video and from_video
    assert "Face crops not shown" not in kept_page
    assert (
        len(store.thumbnails([face_key(f["frame"], f["bbox"]) for f in _faces(out)]))
        == (summary["faces_embedded"])
    ), "a thumbnail for every face"


def test_report_of_a_video_without_faces(blank_run, tmp_path: Path) -> None:
    out, summary, store, video = blank_run
    assert summary["identities"] == 0 and summary["faces_embedded"] == 0
    page = build_report(out, str(video)).read_text(encoding="utf-8")
    assert "No faces were found in this video." in page
    assert "No faces found in blank.mp4" in page
    assert _img_sources(page) == [] and "data-identity" not in page
    bank = read_run_bank(write_run_bank(out, finalise(store), store.params(), store.run_id))
    assert bank["centroids"].shape == (0, 512) and bank["face_embeddings"].shape == (0, 512)


def test_report_command(t1_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = t1_run[0]
    (out / "report.html").unlink()
    assert report_command(str(out)) == 0
    assert (out / "report.html").is_file()
    assert str(out / "report.html") in capsys.readouterr().out
    with pytest.raises(FacepipeError, match="has no summary.json or faces.jsonl"):
        report_command(str(tmp_path))
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(FacepipeError, match="has no faces.jsonl") as err:
        report_command(str(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(FacepipeError, match="is not a folder"):
        report_command(str(tmp_path / "missing"))


# -- (c) the page in a real browser --------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _chromium() -> str:
    for name in (os.environ.get("FACEPIPE_CHROMIUM"), *CHROMIUM_NAMES):
        found = name and shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium binary found (install it: apt-get install -y chromium)")


def _chromium_run(binary: str, profile: Path, *args: str) -> tuple[str, str]:
    """Run headless chromium to completion; kill its whole process group whatever happens."""
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, stderr[-2000:]
    return stdout, stderr


def _load_in_browser(binary: str, page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the page's ``data-images-ok`` after load, every console message the page printed)."""
    dom, stderr = _chromium_run(binary, profile, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    match = re.search(r'<body[^>]*\bdata-images-ok="(\d+/\d+)"', dom)
    assert match, f"page script did not run; dom starts {dom[:300]!r}"
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return match.group(1), console


def test_browser_check_catches_broken_images_and_console_errors(tmp_path: Path) -> None:
    """The check below is not vacuous: a bad crop, a remote image and a console error are all seen."""
    binary = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
        '<body><img src="data:image/jpeg;base64,AAAA"><img src="https://example.invalid/x.png">'
        f'<script>console.error("boom")</script><script>{SCRIPT}</script></body></html>'
    )
    images, console = _load_in_browser(binary, bad, tmp_path / "profile")
    assert images == "0/2"
    assert any("boom" in line for line in console)
    assert any("Content Security Policy" in line for line in console)


def test_report_in_a_real_browser(t1_run, blank_run, tmp_path: Path) -> None:
    binary = _chromium()
    out, summary, _, report, _ = t1_run
    expected = len(_img_sources(report.read_text(encoding="utf-8")))
    assert expected > 0
    images, console = _load_in_browser(binary, report, tmp_path / "profile")
    assert images == f"{expected}/{expected}", "some face crops did not load"
    assert console == [], "the page printed to the console:\n" + "\n".join(console)

    # the page without its video, and the page of a faceless video: also clean
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("summary.json", "faces.jsonl"):
        shutil.copy(out / name, moved / name)
    for page in (build_report(moved, str(moved / "gone.mp4")), build_report(blank_run[0], str(blank_run[3]))):
        images, console = _load_in_browser(binary, page, tmp_path / "profile")
        assert images == "0/0" and console == [], (page, console)

    shot = Path(os.environ.get("FACEPIPE_REPORT_SCREENSHOT", tmp_path / "report.png"))
    _chromium_run(
        binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()
    )
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1600, 1200)
    assert image.std() > 10  # rendered content, not a blank page


def test_outputs_rebuilt_from_redis_keep_the_runs_edits(t1_run, capsys: pytest.CaptureFixture[str]) -> None:
    """``facepipe report RUN_ID`` writes the outputs again from the store: a person's edits of that
    run (edits.json) apply to them again, and the machine's outputs are kept anew in original/."""
    from facepipe.app.curate import Request, edit_command
    from facepipe.app.outputs import finish_run
    from facepipe.clustering.curation import Edit

    out, summary, _, _, store = t1_run
    ids = sorted(summary["counts"], key=int)
    edit_command(str(out), Request(ops=[Edit(n=1, op="rename", id=int(ids[0]), name="Zed")]), ["edit"])
    assert orjson.loads((out / "summary.json").read_bytes())["names"] == {ids[0]: "Zed"}
    again, _ = finish_run(store, out, 0.0)
    assert again.names == {}  # what the store holds: the machine's identities
    rebuilt = orjson.loads((out / "summary.json").read_bytes())
    assert rebuilt["names"] == {ids[0]: "Zed"} and rebuilt["edits"] == [f'1: name {ids[0]} "Zed"']
    assert orjson.loads((out / "original" / "summary.json").read_bytes())["names"] == {}
    assert "Zed" in (out / "report.html").read_text() and "applied again" in capsys.readouterr().err
