"""``series/report.html``: the people of a season, each with the episodes they are in.

Built from ``series/summary.json`` and ``series/faces.jsonl`` alone (plus frames read back
from the episodes' videos for crops), like the episode report: one self-contained page.
Per person, most screen time first: crops taken from different episodes, total faces and
screen time, and a bar per episode of the screen time there.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from facepipe.app.files import write_atomically
from facepipe.app.report.build import read_json_outputs
from facepipe.app.report.controls import edit_controls, edits_panel
from facepipe.app.report.formatting import esc, fmt_time
from facepipe.app.report.identities import PALETTE, pick_faces
from facepipe.app.report.page import _shell
from facepipe.app.report.thumbnails import read_thumbnails

#: people beyond this many (least screen time last) get one crop, to bound video reads
FULL_CROP_PEOPLE = 48


def _person_thumbnails(faces: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Up to ``k`` faces, taken round robin from the episodes the person is in (best first)."""
    by_episode: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for face in faces:
        by_episode[face["episode"]].append(face)
    picks = {name: pick_faces(group, k) for name, group in by_episode.items()}
    chosen: list[dict[str, Any]] = []
    while len(chosen) < k and any(picks.values()):
        for name in sorted(picks):
            if picks[name] and len(chosen) < k:
                chosen.append(picks[name].pop(0))
    return chosen


def _episode_bars(seconds: dict[str, float], episodes: list[str], color: str) -> str:
    """One row per episode of the season: a bar as long as the person's screen time there."""
    longest = max(seconds.values(), default=0.0) or 1.0
    rows = []
    for name in episodes:
        s = float(seconds.get(name, 0.0))
        width = 100 * s / longest
        rows.append(
            f"<tr><td>{esc(name)}</td><td><div style='background:{color};height:10px;width:{width:.1f}%;"
            f"border-radius:3px'></div></td><td>{fmt_time(s) if s else '-'}</td></tr>"
        )
    return f"<table class=eps>{''.join(rows)}</table>"


def _ranked_people(summary: dict[str, Any], faces: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each person's faces, most screen time first (then by id)."""
    screen = summary.get("screen_seconds") or {}
    by_person: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for face in faces:
        by_person[int(face["identity"])].append(face)
    order = sorted(by_person, key=lambda i: (-sum(screen.get(str(i), {}).values()), i))
    return {person: by_person[person] for person in order}


def render_series_report(
    summary: dict[str, Any],
    chosen: dict[int, list[dict[str, Any]]],
    crops: dict[int, str],
    out_dir: Path | None = None,
) -> str:
    """The page: ``chosen`` holds each person's faces to show (ranked), ``crops`` their images."""
    episodes = list(summary.get("all_episodes") or [])
    screen = summary.get("screen_seconds") or {}
    names = summary.get("names") or {}
    new = set(summary.get("new") or [])
    people = list(chosen)
    cards = []
    for rank, person in enumerate(people, 1):
        color = PALETTE[person % len(PALETTE)]
        seconds = screen.get(str(person), {})
        images = "".join(
            f'<img src="{crops[id(f)]}" alt="person {person}, {esc(f["episode"])} frame {f["frame"]}">'
            if id(f) in crops
            else "<div class=ph>no crop</div>"
            for f in chosen[person]
        )
        status = " &middot; new in this run" if person in new else ""
        title = esc(names[str(person)]) if str(person) in names else f"Person {rank}"
        cards.append(
            f"""<section class=id style="--c:{color}" data-identity="{person}">
  <div class=crops>{images}</div>
  <div><div class=who><h3><span class=dot></span>{title}</h3>
    <span class=muted>series id {person} &middot; {summary["counts"].get(str(person), 0):,} faces in
    {len(seconds)} episode(s){status}</span></div>
    <div><span class=big>{fmt_time(sum(seconds.values()))}</span> on screen in all</div>
    {_episode_bars(seconds, episodes, color)}
    {edit_controls(person, names.get(str(person)))}</div>
</section>"""
        )
    missing = summary.get("missing") or []
    notes = (
        [f"<div class='banner bad'><b>Missing episodes:</b> {esc(', '.join(missing))}</div>"]
        if missing
        else []
    )
    notes += [f"<div class='banner note'>{esc(c['note'])}</div>" for c in summary.get("conflicts") or []]
    headline = f"{len(people)} people across {len(summary.get('episodes') or [])} episode(s)"
    main = "\n".join(
        [
            f"<h1>{esc(headline)}</h1>",
            f"<p class=sub>series bank: {summary.get('identities', 0)} people in "
            f"{len(episodes)} episode(s) &middot; {len(summary.get('known') or [])} known before this run, "
            f"{len(new)} new</p>",
            *notes,
            "<h2>Who is in the series, and where</h2>",
            f"<div class=ids>{''.join(cards)}</div>",
            edits_panel(out_dir, [(p, names.get(str(p))) for p in people], list(summary.get("edits") or [])),
            "<footer>facepipe series report &middot; screen time = faces &times; frame step / fps &middot; "
            "identities.csv has the same figures for spreadsheets</footer>",
        ]
    )
    return _shell(headline, main)


def build_series_report(series_dir: Path) -> Path:
    """Write ``series_dir/report.html`` from the series outputs; crops from each episode's video."""
    summary, faces = read_json_outputs(Path(series_dir))
    chosen = {
        person: _person_thumbnails(person_faces, 4 if rank <= FULL_CROP_PEOPLE else 1)
        for rank, (person, person_faces) in enumerate(_ranked_people(summary, faces).items(), 1)
    }
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)  # one pass over each video
    for picked in chosen.values():
        for face in picked:
            by_video[face["video"]].append(face)
    crops: dict[int, str] = {}
    for video, group in by_video.items():
        crops.update(read_thumbnails(video, group)[0])
    target = Path(series_dir) / "report.html"
    write_atomically(target, render_series_report(summary, chosen, crops, Path(series_dir)).encode())
    return target
