"""The page: its style and script (package data), its sections, and :func:`render_report` composing them.

Each section is a small function of the run's figures returning an HTML fragment, so a
section can be read, changed or tested on its own; :func:`render_report` only puts them
in order inside the page shell.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from facepipe.app.report.cards import people_section
from facepipe.app.report.facts import RunFacts, run_facts
from facepipe.app.report.formatting import esc, fmt_num, fmt_param, fmt_time
from facepipe.app.report.identities import Identity
from facepipe.app.summary import Summary


def _asset(name: str) -> str:
    """A file from ``assets/``, starting on its own line (as it sits in the page).

    The style and script live in real ``.css``/``.js`` files so editors and linters see
    them as what they are; they are inlined into the page because it must stay one
    self-contained file.
    """
    return "\n" + (resources.files("facepipe.app.report") / "assets" / name).read_text(encoding="utf-8")


CSS = _asset("report.css")
# Marks the page once loaded: ``<body data-images-ok="LOADED/TOTAL">`` (read by tests and
# handy in devtools), and swaps a crop that failed to decode for its placeholder text.
SCRIPT = _asset("report.js")
# Inline style and script only, images only as data: URIs: the page can load nothing else.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

FOOTER = """<footer>facepipe report &middot; screen time = faces &times; frame step / fps &middot;
outputs next to this file: summary.json, faces.jsonl</footer>"""


def _headline(run: RunFacts, n_ids: int) -> str:
    people = "1 person" if n_ids == 1 else f"{n_ids} people"
    return f"No faces found in {run.name}" if not n_ids else f"{people} found in {run.name}"


def _subtitle(summary: Summary, run: RunFacts) -> str:
    """The video's path, length, size and rate, and the run id: which run this page is about."""
    size = f"{run.params['width']}x{run.params['height']}, " if run.params.get("width") else ""
    runtimes = "; ".join(summary.runtimes)
    return (
        f"{esc(run.video)} &middot; {fmt_time(run.duration)} long ({size}{run.fps:.2f} fps, "
        f"{run.frame_count:,} frames) &middot; run {esc(summary.run_id or '?')}"
        + (f" &middot; models: {esc(runtimes)}" if runtimes else "")
    )


def _tiles(summary: Summary, run: RunFacts, n_ids: int, n_faces: int) -> str:
    """The key figures, big, at the top."""
    people = n_ids if summary.people is None else summary.people
    tiles = [
        (f"{people:,}", "people" if people == n_ids else f"people (+{n_ids - people} extras)"),
        (f"{n_faces:,}", "faces embedded"),
        (fmt_time(run.duration), "video duration"),
        (f"{summary.frames_sampled:,}", f"frames sampled (1 in {run.frame_step})"),
        (f"{summary.elapsed_s:.1f} s", "processing time"),
    ]
    return "".join(f"<div class=tile><b>{v}</b><span>{esc(k)}</span></div>" for v, k in tiles)


def _funnel(summary: Summary, run: RunFacts, n_ids: int) -> str:
    """Frames and faces stage by stage, so a drop (blur, lost chunks, thresholds) shows where it happens."""
    stages = [
        ("frames in video", run.frame_count, False),
        ("frames read", summary.frames_read, False),
        ("sampled", summary.frames_sampled, False),
        ("blurry (skipped)", summary.frames_blurry, False),
        ("lost", summary.frames_lost, bool(summary.frames_lost)),
        ("faces detected", summary.faces_detected, False),
        ("embedded", summary.faces_embedded, False),
        *([("rejected (no face)", summary.faces_rejected, False)] if summary.faces_rejected else []),
        *([("left out (not a face)", summary.faces_removed, False)] if summary.faces_removed else []),
        *([("shots", summary.shots, False)] if summary.shots else []),
        ("identities", n_ids if summary.identities is None else summary.identities, False),
    ]
    return '<span class=arrow aria-hidden="true">&rsaquo;</span>'.join(
        f'<div class="stage{" warn" if warn else ""}"><b>{fmt_num(v)}</b><span>{esc(k)}</span></div>'
        for k, v, warn in stages
    )


def _lost_banner(summary: Summary, run: RunFacts) -> str:
    """Lost chunks, by frame range and reason: their faces are missing from every figure."""
    failed = [f for f in summary.failed_chunks if f.frames]
    if not failed:
        return ""
    ranges = ", ".join(
        f"frames {f.frames[0]}-{f.frames[1] - 1} ({fmt_time(f.frames[0] / run.fps)}-"
        f"{fmt_time(f.frames[1] / run.fps)}): {esc(f.reason or '?')}"
        for f in failed
    )
    return (
        f"<div class='banner bad'><b>{len(failed)} chunk(s) lost</b> "
        f"({summary.frames_lost} sampled frames); faces there are missing, shown in "
        f"red on the timelines. {ranges}</div>"
    )


def _video_banner(video_note: str | None, n_ids: int) -> str:
    """Why there are no crops, and how to get them; not shown when there are no faces to crop."""
    if not (video_note and n_ids):
        return ""
    return (
        f"<div class='banner note'><b>Face crops not shown:</b> {esc(video_note)}. Put the video "
        f"back at that path and rebuild the report to see them.</div>"
    )


def _param_tables(params: dict[str, Any]) -> str:
    """The run's parameters (the video is in the subtitle) in two side-by-side tables."""
    shown = [(k, v) for k, v in params.items() if k != "video"]
    half = (len(shown) + 1) // 2
    return "".join(
        "<table>"
        + "".join(f"<tr><td>{esc(k)}</td><td>{fmt_param(v)}</td></tr>" for k, v in part)
        + "</table>"
        for part in (shown[:half], shown[half:])
    )


def _shell(headline: str, main: str) -> str:
    """The document around ``main``: CSP, inline style and the one inline script."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>facepipe: {esc(headline)}</title>
<style>{CSS}</style></head>
<body><main>
{main}
</main>
<script>{SCRIPT}</script>
</body></html>
"""


def render_report(
    summary: Summary,
    faces: list[dict[str, Any]],
    identities: list[Identity],
    video_note: str | None,
    out_dir: Path | None = None,
) -> str:
    """The page's HTML from the run's figures and identities (thumbnails already attached)."""
    run = run_facts(summary, faces)
    n_ids = len(identities)
    headline = _headline(run, n_ids)
    sections = [
        f"<h1>{esc(headline)}</h1>",
        f"<p class=sub>{_subtitle(summary, run)}</p>",
        f"<div class=tiles>{_tiles(summary, run, n_ids, len(faces))}</div>",
        _lost_banner(summary, run) + _video_banner(video_note, n_ids),
        "<h2>Pipeline</h2>",
        f"<div class=funnel>{_funnel(summary, run, n_ids)}</div>",
        "<h2>Who is on screen, and when</h2>",
        people_section(summary, run, identities, out_dir),
        "<h2>Parameters</h2>",
        f"<div class=cols>{_param_tables(run.params)}</div>",
        FOOTER,
    ]
    return _shell(headline, "\n".join(sections))
