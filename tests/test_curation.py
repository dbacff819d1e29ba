"""A bank people can curate (issue 20), end to end with the real CLI, workers and models:
screen time, edits that stick across --bank runs, the report's controls in a real browser,
find a face, and names from the shared clips' reference photos."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.media.samples import insightface_image, write_video
from tests.helpers import facepipe, leftovers

STEP = 2  # every episode at 10 fps: a face stands for 0.2 s


def _panned(image: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` frames of one still, panned a few pixels a frame (one shot, steady tracks)."""
    height, width = image.shape[:2]
    return [
        cv2.warpAffine(
            image, np.float32([[1, 0, 2 * i], [0, 1, i]]), (width, height), borderMode=cv2.BORDER_REPLICATE
        )
        for i in range(count)
    ]


def _hanks(shape: tuple[int, ...]) -> np.ndarray:
    """InsightFace's Tom Hanks, enlarged on a grey frame of ``shape``."""
    frame = np.full(shape, 90, np.uint8)
    face = cv2.resize(insightface_image("Tom_Hanks_54745.png"), (336, 336))
    y, x = (shape[0] - 336) // 2, (shape[1] - 336) // 2
    frame[y : y + 336, x : x + 336] = face
    return frame


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ep1: the six people of t1.jpg (one shot); ep2 and ep3: Tom Hanks, a cut, then the six."""
    folder = tmp_path_factory.mktemp("curation-videos")
    t1 = insightface_image()
    hanks = _hanks(t1.shape)
    return {
        "ep1": write_video(folder / "ep1.mp4", _panned(t1, 12)),
        "ep2": write_video(folder / "ep2.mp4", [hanks] * 6 + _panned(t1, 6)),
        "ep3": write_video(folder / "ep3.mp4", [hanks] * 6 + _panned(t1, 8)),
    }


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert leftovers(proc) == []
    return proc


def _refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """A one-line error, exit 1, no traceback; returns the line."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("facepipe: error: ") and "Traceback" not in line, line
    for word in words:
        assert word in line, line
    return line


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _bank(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a folder (recursively) and its sha256: to prove nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".edits.lock"
    }


@pytest.fixture(scope="module")
def season(videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A season of ep1 and ep2 at --merge-thresh 0: nothing is joined, so one person is two series
    identities (one per episode) until a person merges them."""
    out = tmp_path_factory.mktemp("season")
    _ok(
        facepipe(
            "run",
            str(videos["ep1"]),
            str(videos["ep2"]),
            "--frame-step",
            str(STEP),
            "--merge-thresh",
            "0",
            "--out",
            str(out),
            "--no-progress",
        )
    )
    return out


def _people_by_episode(bank: dict[str, np.ndarray]) -> tuple[list[int], list[int]]:
    ep_of = {
        int(i): set(bank["face_episodes"][bank["face_identities"] == i].tolist())
        for i in bank["identity_ids"]
    }
    return [i for i, e in ep_of.items() if e == {0}], [i for i, e in ep_of.items() if e == {1}]


def _centroid(bank: dict[str, np.ndarray], identity: int) -> np.ndarray:
    v = bank["face_embeddings"][bank["face_identities"] == identity].mean(axis=0)
    return v / np.linalg.norm(v)


def test_screen_time_in_a_runs_outputs(season: Path) -> None:
    ep1 = season / "ep1"
    summary = _json(ep1 / "summary.json")
    assert summary["identities"] == 6 and set(summary["screen_time"]) == set(summary["counts"])
    for key, seen in summary["screen_time"].items():
        assert seen["seconds"] == pytest.approx(summary["counts"][key] * STEP / 10.0)
        assert seen["share"] == pytest.approx(seen["seconds"] / 1.2, abs=1e-3)  # 12 frames at 10 fps
        assert seen["shots"] == 1 and seen["segments"] == [[0.0, 1.2]]
        assert (seen["first_s"], seen["last_s"]) == (0.0, 1.0)
    rows = (ep1 / "identities.csv").read_text().splitlines()
    assert rows[0] == "identity,name,faces,screen_s,share,first_s,last_s,shots,segments,extra"
    assert len(rows) == 7 and rows[1].split(",")[3] == "1.2"
    page = (ep1 / "report.html").read_text()
    assert page.count("1 shot, 1 appearance") == 6 and page.count("class=edit ") == 6
    series = _json(season / "series" / "summary.json")
    some = series["screen_time"][next(iter(series["counts"]))]
    assert some["seconds"] == sum(e["seconds"] for e in some["episodes"].values()) > 0


def test_a_season_edited_then_a_later_episode_keeps_names_merges_and_not_a_face(
    season: Path, videos: dict[str, Path], tmp_path: Path
) -> None:
    series = season / "series"
    bank = _bank(series / "bank.npz")
    in_ep1, in_ep2 = _people_by_episode(bank)
    assert len(in_ep1) == 6 and len(in_ep2) == 7 and len(bank["identity_ids"]) == 13
    sims = np.array([[_centroid(bank, a) @ _centroid(bank, b) for b in in_ep2] for a in in_ep1])
    lead, twin = in_ep1[0], in_ep2[int(sims[0].argmax())]  # one person, as two series identities
    hanks = in_ep2[int(sims.max(axis=0).argmin())]  # in ep2 only
    assert sims[0].max() > 0.5 and sims.max(axis=0).min() < 0.3
    edit = [
        "edit",
        str(series),
        "--merge",
        str(lead),
        str(twin),
        "--rename",
        str(lead),
        "The Lead",
        "--not-a-face",
        str(hanks),
    ]
    _ok(facepipe(*edit))
    summary = _json(series / "summary.json")
    assert summary["names"] == {str(lead): "The Lead"} and str(twin) not in summary["counts"]
    assert summary["not_faces"] == {str(hanks): int(bank["counts"][bank["identity_ids"] == hanks][0])}
    assert summary["screen_time"][str(lead)]["episodes"].keys() == {"ep1", "ep2"}
    named = [f for f in _lines(series / "faces.jsonl") if f["identity"] == lead]
    assert {f["episode"] for f in named} == {"ep1", "ep2"} and {f.get("name") for f in named} == {"The Lead"}
    assert ",The Lead," in (series / "identities.csv").read_text()
    assert "The Lead" in (series / "report.html").read_text()
    log = _json(series / "edits.json")
    assert [e["op"] for e in log["edits"]] == ["merge", "rename", "not_a_face"]
    assert log["edits"][0]["command"].startswith(f"facepipe edit {series} --merge") and log["edits"][0]["by"]
    # the same command again changes nothing; refused edits change nothing either
    before = _fingerprint(series)
    again = _ok(facepipe(*edit))
    assert "nothing to change" in again.stdout and _fingerprint(series) == before
    together = next(b for b in in_ep1 if b != lead)
    _refused(
        facepipe("edit", str(series), "--merge", str(lead), str(together)), "are both in ep1 frame", "at "
    )
    _refused(facepipe("edit", str(series), "--rename", "99", "x"), "unknown identity 99")
    other = tmp_path / "other-edits.json"
    _ok(facepipe("edit", str(season / "ep1"), "--rename", "0", "Solo"))
    shutil.copy(season / "ep1" / "edits.json", other)
    _refused(facepipe("edit", str(series), "--apply", str(other)), "holds the edits of run")
    assert _fingerprint(series) == before

    # episode 3 against the edited season's bank: the merged person is one, with its name, and
    # the identity marked not a face is not made again
    later = _ok(
        facepipe(
            "run",
            str(videos["ep3"]),
            "--frame-step",
            str(STEP),
            "--bank",
            str(series / "bank.npz"),
            "--out",
            str(tmp_path / "s3"),
            "--no-progress",
        )
    )
    after = _json(tmp_path / "s3" / "series" / "summary.json")
    faces3 = _lines(tmp_path / "s3" / "series" / "faces.jsonl")
    bank3 = _bank(tmp_path / "s3" / "series" / "bank.npz")
    assert after["names"][str(lead)] == "The Lead" and twin not in bank3["identity_ids"].tolist()
    assert after["new"] == [] and set(after["known"]) <= set(in_ep1 + in_ep2) - {twin, hanks}
    assert [r["episode"] for r in after["removed"]] == ["ep3"] and after["removed"][0]["not_a_face"] == hanks
    assert hanks not in bank3["identity_ids"].tolist()
    leads = [f for f in faces3 if f["identity"] == lead]
    assert leads and {f["name"] for f in leads} == {"The Lead"}
    # ep3's lead is the face closest to the lead's ep1 look
    closest = bank3["face_embeddings"][bank3["face_episodes"] == 2] @ _centroid(bank, lead)
    assert leads[0]["episode_identity"] == int(
        bank3["face_episode_identities"][bank3["face_episodes"] == 2][closest.argmax()]
    )
    assert "left out: ep3 identity" in later.stdout and "The Lead" in later.stdout
    assert "The Lead" in (tmp_path / "s3" / "series" / "report.html").read_text()

    # a run's own bank.npz starts a season too (a season of one), with its names
    solo = _ok(
        facepipe(
            "run",
            str(videos["ep3"]),
            "--frame-step",
            str(STEP),
            "--bank",
            str(season / "ep1" / "bank.npz"),
            "--out",
            str(tmp_path / "s4"),
            "--no-progress",
        )
    )
    four = _json(tmp_path / "s4" / "series" / "summary.json")
    assert four["all_episodes"] == ["ep1", "ep3"] and four["names"] == {"0": "Solo"}
    assert sorted(four["known"]) == list(range(6)) and four["new"] == [6]  # Tom Hanks is new
    assert "Solo" in solo.stdout

    # find: a photo of the lead, and of Tom Hanks (marked not a face: nobody)
    ep1_faces = _lines(season / "ep1" / "faces.jsonl")
    ep1_bank = _bank(season / "ep1" / "bank.npz")
    local = int(bank["face_episode_identities"][bank["face_identities"] == lead][0])
    box = next(f["bbox"] for f in ep1_faces if f["identity"] == local and f["frame"] == 0)
    t1 = insightface_image()
    x1, y1, x2, y2 = (int(v) for v in box)
    pad = (x2 - x1) // 2
    photo = tmp_path / "lead.jpg"
    cv2.imwrite(str(photo), t1[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad])
    found = _ok(
        facepipe("find", str(photo), "--bank", str(tmp_path / "s3" / "series" / "bank.npz"), "--top", "2")
    )
    first = found.stdout.splitlines()[1]
    assert first.startswith(f'1. identity {lead} "The Lead": similarity 0.') and "ep3:" in found.stdout
    assert "ep1:" in found.stdout and "s on screen, at 0.0 s-" in found.stdout
    cv2.imwrite(str(tmp_path / "hanks.jpg"), _hanks((480, 480, 3)))
    nobody = facepipe(
        "find", str(tmp_path / "hanks.jpg"), "--bank", str(tmp_path / "s3" / "series" / "bank.npz")
    )
    assert (
        nobody.returncode == 2
        and nobody.stdout.startswith("nobody in ")
        and "below --match-thresh" in nobody.stdout
    )
    cv2.imwrite(str(tmp_path / "grey.jpg"), np.full((200, 200, 3), 128, np.uint8))
    _refused(
        facepipe("find", str(tmp_path / "grey.jpg"), "--bank", str(series / "bank.npz")), "no face found in"
    )
    assert len(ep1_bank["identity_ids"]) == 6

    # a bank another face model made is refused before anything starts
    alien = dict(_bank(series / "bank.npz"))
    alien["model"] = np.array("w600k_r50.onnx:0123456789abcdef")
    np.savez(tmp_path / "alien.npz", **alien)
    _refused(
        facepipe(
            "run", str(videos["ep3"]), "--bank", str(tmp_path / "alien.npz"), "--out", str(tmp_path / "s5")
        ),
        "was made with another face model",
    )
    assert not (tmp_path / "s5" / "ep3").exists()


def test_run_edits_split_undo_and_their_refusals(season: Path, tmp_path: Path) -> None:
    out = tmp_path / "ep2"
    shutil.copytree(season / "ep2", out)
    summary = _json(out / "summary.json")
    faces = _lines(out / "faces.jsonl")
    hanks = faces[0]["identity"]  # the first shot is Tom Hanks alone
    a, b = sorted({f["identity"] for f in faces} - {hanks})[:2]
    frame = next(f["frame"] for f in faces if f["identity"] == a)
    _refused(facepipe("edit", str(out), "--merge", str(a), str(b)), f"are both in frame {frame} (at ")
    _ok(facepipe("edit", str(out), "--merge", str(a), str(hanks)))  # never together: allowed
    merged = _json(out / "summary.json")
    assert merged["counts"][str(a)] == summary["counts"][str(a)] + summary["counts"][str(hanks)]
    assert (out / "original" / "bank.npz").is_file() and _json(out / "original" / "summary.json") == summary
    hanks_track = next(f["track"] for f in faces if f["identity"] == hanks)
    _ok(facepipe("edit", str(out), "--split", str(a), "--tracks", str(hanks_track)))
    split = _json(out / "summary.json")
    new_id = max(int(k) for k in split["counts"])
    assert new_id == 7 and split["counts"][str(new_id)] == summary["counts"][str(hanks)]
    _refused(facepipe("edit", str(out), "--merge", str(new_id), str(a)), "were split apart by edit 2")
    bank = _bank(out / "bank.npz")
    assert bank["kept_apart"].tolist() == [[a, new_id]] and int(bank["next_id"]) == 8
    listing = _ok(facepipe("edit", str(out)))
    assert "1. merge" in listing.stdout and "2. split tracks" in listing.stdout
    _ok(facepipe("edit", str(out), "--undo", "2"))
    assert _json(out / "summary.json")["counts"] == merged["counts"]
    _refused(facepipe("edit", str(out), "--undo", "7"), "no edit 7 to undo")
    _ok(facepipe("edit", str(out), "--undo", "1"))
    back = _json(out / "summary.json")
    assert back["counts"] == summary["counts"] and back["edits"] == []
    assert _lines(out / "faces.jsonl") == faces
    _refused(facepipe("edit", str(tmp_path / "nowhere")), "is not a folder")
    _refused(facepipe("edit", str(out), "--split", str(a), "--tracks", "999"), "has no track 999")
    # another run written into this edited folder: its edits.json is refused, and once moved away
    # the new run's outputs are edited, never the old run's original/
    for name in ("summary.json", "faces.jsonl", "bank.npz"):
        shutil.copy(season / "ep1" / name, out / name)
    refused = facepipe("edit", str(out), "--rename", "0", "X")
    _refused(refused, "holds the edits of run", "move that file away")
    (out / "edits.json").rename(tmp_path / "old-edits.json")
    _ok(facepipe("edit", str(out), "--rename", "0", "X"))
    now = _json(out / "summary.json")
    assert now["run_id"] == _json(season / "ep1" / "summary.json")["run_id"]
    assert len(now["counts"]) == 6 and now["names"] == {"0": "X"}
    assert len(list(out.glob("original-*"))) == 1


# -- the report's controls in a real browser ----------------------------------------------------


def test_the_reports_controls_make_the_command_that_makes_the_edit(season: Path, tmp_path: Path) -> None:
    from tests.cdp import Browser
    from tests.test_report import _chromium

    binary = _chromium()
    out = tmp_path / "my run"  # a space: the command must quote the folder
    shutil.copytree(season / "ep2", out)
    faces = _lines(out / "faces.jsonl")
    hanks = faces[0]["identity"]
    a, b, c = sorted({f["identity"] for f in faces} - {hanks})[:3]
    with Browser(binary, tmp_path / "profile") as browser:
        browser.open((out / "report.html").as_uri())
        assert (
            browser.evaluate("document.getElementById('fp-command').textContent")
            == "no corrections chosen yet"
        )
        browser.choose(f'.edit[data-id="{hanks}"] .fp-merge', str(a))  # Tom Hanks "same as" a
        browser.type_into(f'.edit[data-id="{b}"] .fp-rename', "Ann O'Neil")
        browser.click(f'.edit[data-id="{c}"] .fp-noface')
        command = browser.evaluate("document.getElementById('fp-command').getAttribute('data-command')")
        shown = browser.evaluate("document.getElementById('fp-command').textContent")
        options = browser.evaluate(f"document.querySelectorAll('.edit[data-id=\"{a}\"] option').length")
    assert command == shown
    assert command == (
        f"facepipe edit '{out}' --not-a-face {c} --merge {a} {hanks} --rename {b} 'Ann O'\\''Neil'"
    )
    assert options == len({f["identity"] for f in faces})  # "…" and every other identity
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    pasted = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert pasted.returncode == 0, pasted.stderr
    summary = _json(out / "summary.json")
    assert summary["names"] == {str(b): "Ann O'Neil"} and summary["not_faces"] == {str(c): 3}
    assert str(hanks) not in summary["counts"] and summary["counts"][str(a)] == 3 + 3
    page = (out / "report.html").read_text()
    assert "Ann O&#x27;Neil" in page and f"merge {hanks} into {a}" in page


# -- names from reference photos on the shared clips ---------------------------------------------


def test_names_from_the_shared_reference_photos(shared_data: Path, tmp_path: Path) -> None:
    """hamilton, the call and the dance as one season at frame step 3: `facepipe name` with
    ../shared/data/refs names their people with a photo, and nobody else."""
    clips = ["hamilton_short", "two_person_call", "dance_scene"]
    _ok(
        facepipe(
            "run",
            *(str(shared_data / "videos" / f"{clip}.mp4") for clip in clips),
            "--frame-step",
            "3",
            "--out",
            str(tmp_path),
            "--no-progress",
            timeout=400,
        )
    )
    refs = str(shared_data / "refs")
    named: dict[str, dict[str, list[dict]]] = {}
    for clip in clips:
        proc = _ok(facepipe("name", str(tmp_path / clip), "--refs", refs))
        assert "unknown, left unnamed" in proc.stdout or clip == "two_person_call"
        by_name: dict[str, list[dict]] = {}
        for face in _lines(tmp_path / clip / "faces.jsonl"):
            by_name.setdefault(face.get("name", ""), []).append(face)
        named[clip] = by_name
        summary = _json(tmp_path / clip / "summary.json")
        assert set(summary["names"].values()) == set(by_name) - {""}

    def frames(clip: str, name: str) -> list[int]:
        return [f["frame"] for f in named[clip][name]]

    def centre_x(clip: str, name: str) -> list[float]:
        return [(f["bbox"][0] + f["bbox"][2]) / 2 for f in named[clip][name]]

    assert set(named["hamilton_short"]) == {
        "",
        "hamilton_lin_manuel_miranda",
        "hamilton_alex_lacamoire",
        "hamilton_barack_obama",
    }
    # the bench's hand labels (bench/labelsets.py): Lacamoire in frames 20-40 right of x 250,
    # Barack Obama in the audience shot (frames 212-275) between x 300 and 370
    assert all(20 <= f <= 40 for f in frames("hamilton_short", "hamilton_alex_lacamoire"))
    assert all(212 <= f <= 275 for f in frames("hamilton_short", "hamilton_barack_obama"))
    assert all(300 <= x <= 370 for x in centre_x("hamilton_short", "hamilton_barack_obama"))
    assert len(frames("hamilton_short", "hamilton_lin_manuel_miranda")) > 20
    # the call's split screen: a on the left half, b on the right, everyone named
    assert set(named["two_person_call"]) == {"two_person_call_a", "two_person_call_b"}
    assert (
        max(centre_x("two_person_call", "two_person_call_a"))
        < 640
        < min(centre_x("two_person_call", "two_person_call_b"))
    )
    assert set(named["dance_scene"]) == {"", "dance_scene_patrick_swayze", "dance_scene_jennifer_grey"}
    assert len(frames("dance_scene", "dance_scene_jennifer_grey")) > 20
    assert len(frames("dance_scene", "dance_scene_patrick_swayze")) > 20
    # the season's series names the same people, and a second naming changes nothing
    series = _ok(facepipe("name", str(tmp_path / "series"), "--refs", refs))
    names = _json(tmp_path / "series" / "summary.json")["names"]
    assert len(names) == 7 and len(set(names.values())) == 7, series.stdout
    before = _fingerprint(tmp_path / "series")
    assert "nothing to change" in _ok(facepipe("name", str(tmp_path / "series"), "--refs", refs)).stdout
    assert _fingerprint(tmp_path / "series") == before
    # a refs folder whose photos show no face: one line naming them, nothing changed
    empty = tmp_path / "refs"
    empty.mkdir()
    cv2.imwrite(str(empty / "nobody.png"), np.full((300, 300, 3), 200, np.uint8))
    _refused(facepipe("name", str(tmp_path / "series"), "--refs", str(empty)), "no face found", "nobody.png")
    assert _fingerprint(tmp_path / "series") == before
