"""``report.html``: one self-contained page that explains a finished run at a glance.

Built from the output folder alone (``summary.json`` and ``faces.jsonl``) plus a few
frames read back from the video for face crops, so it can be rebuilt at any time
(:func:`report_command`). Everything is inline: crops are base64 JPEG ``data:`` URIs,
timelines are inline SVG, styles and the one tiny script sit in the page, and a
Content-Security-Policy forbids loading anything else. The page opens offline, from
an e-mail attachment or a CI artifact alike.

What it shows:

* a headline (how many people, in which video) and the key figures;
* the stage funnel: frames in the video, sampled, blurry (skipped), lost, faces
  detected, embedded, identities;
* one card per identity, most frequent first: up to :data:`CROPS_PER_IDENTITY` face
  crops, its face count, its screen time (``count x frame_step / fps``, also as a share
  of the video's duration ``frame_count / fps``), first and last appearance, and a
  timeline strip marking every appearance across the whole video;
* the run's parameters, and any lost frame ranges.

Crops are chosen to be both good and representative: an identity's faces, in frame
order, are cut into up to four consecutive runs and the best face of each run is
taken, "best" meaning largest ``bbox area x det_score``. So a wrongly merged identity
shows its different faces instead of four near-identical neighbouring frames. Each
chosen frame is read with one seek (or a short forward grab when frames are close).
When the video cannot be read (moved, deleted), the page is still built, with a
placeholder where the crops would be.
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson

from facepipe.errors import FacepipeError

REPORT_FILE = "report.html"
CROPS_PER_IDENTITY = 4
#: identities beyond this many (least frequent last) get a single crop, to bound video reads
FULL_CROP_IDENTITIES = 48
CROP_PX = 144
CROP_MARGIN = 0.3  # of the box's longer side, added on every side
JPEG_QUALITY = 85
#: forward ``grab`` instead of seeking when the next wanted frame is this close
GRAB_AHEAD = 48
TIMELINE_W = 1000  # SVG user units across the whole video

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#2f4b7c",
    "#a05195",
    "#008f7a",
)


@dataclass
class _Identity:
    id: int
    count: int
    faces: list[dict[str, Any]] = field(default_factory=list)
    crops: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)

    @property
    def color(self) -> str:
        return PALETTE[self.id % len(PALETTE)]


# -- inputs ----------------------------------------------------------------------------


def _read_outputs(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary_path, faces_path = out_dir / "summary.json", out_dir / "faces.jsonl"
    missing = [p.name for p in (summary_path, faces_path) if not p.is_file()]
    if not out_dir.is_dir() or missing:
        what = "is not a folder" if not out_dir.is_dir() else f"has no {' or '.join(missing)}"
        raise FacepipeError(f"{out_dir} {what} (pass the --out folder of a finished 'facepipe run')")
    try:
        summary = orjson.loads(summary_path.read_bytes())
        faces = [orjson.loads(line) for line in faces_path.read_bytes().splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise FacepipeError(f"{out_dir} holds a damaged summary.json or faces.jsonl: {exc}") from None
    if not isinstance(summary, dict):
        raise FacepipeError(f"{summary_path} is not a facepipe summary (expected a JSON object)")
    return summary, faces


def _score(face: dict[str, Any]) -> float:
    x1, y1, x2, y2 = (float(v) for v in face["bbox"][:4])
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) * float(face.get("det_score") or 0.0)


def pick_faces(faces: list[dict[str, Any]], k: int = CROPS_PER_IDENTITY) -> list[dict[str, Any]]:
    """Up to ``k`` faces spread over time: the best (area x score) of each of ``k`` consecutive runs."""
    ordered = sorted(faces, key=lambda f: f["frame"])
    k = min(k, len(ordered))
    picked = []
    for part in range(k):
        run = ordered[part * len(ordered) // k : (part + 1) * len(ordered) // k]
        picked.append(max(run, key=_score))
    return picked


# -- crops from the video ----------------------------------------------------------------


def _crop(frame: np.ndarray, bbox: list[float]) -> np.ndarray:
    """A square crop around the box with a margin, padded where it leaves the frame."""
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox[:4])
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * CROP_MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(1, int(round(side)))
    canvas = np.full((size, size, 3), 40, dtype=np.uint8)
    sx1, sy1 = max(0, left), max(0, top)
    sx2, sy2 = min(width, left + size), min(height, top + size)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - top : sy2 - top, sx1 - left : sx2 - left] = frame[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if size > CROP_PX else cv2.INTER_CUBIC
    return cv2.resize(canvas, (CROP_PX, CROP_PX), interpolation=interp)


def _data_uri(image: np.ndarray) -> str | None:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _read_crops(video_path: str | None, wanted: list[dict[str, Any]]) -> tuple[dict[int, str], str | None]:
    """Crop each wanted face (keyed by ``id(face)``) from the video; also says why not, if not."""
    if not wanted:
        return {}, None
    if not video_path or not Path(video_path).is_file():
        return {}, f"video not found at {video_path}" if video_path else "no video path recorded"
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        cap.release()
        return {}, f"cannot open {video_path} as a video"
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for face in wanted:
        by_frame[int(face["frame"])].append(face)
    crops: dict[int, str] = {}
    pos = 0  # index of the frame the next read returns
    try:
        for index in sorted(by_frame):
            if index < pos or index - pos > GRAB_AHEAD:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                pos = index
            while pos < index and cap.grab():
                pos += 1
            ok, frame = cap.read() if pos == index else (False, None)
            pos += 1
            if not ok or frame is None:
                continue
            for face in by_frame[index]:
                uri = _data_uri(_crop(frame, face["bbox"]))
                if uri:
                    crops[id(face)] = uri
    finally:
        cap.release()
    if not crops:
        return crops, f"no frames could be read from {video_path}"
    return crops, None


# -- formatting --------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_time(seconds: float) -> str:
    """``8.8 s`` under a minute, then ``m:ss``, then ``h:mm:ss``."""
    seconds = max(0.0, float(seconds))
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _fmt_tick(seconds: float, duration: float) -> str:
    if duration < 59.95:
        return f"{seconds:g} s"
    return fmt_time(seconds)


def _fmt_num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _esc(value)


def _fmt_param(value: Any) -> str:
    if value is None:
        return "<span class=muted>default</span>"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return _esc(f"{value:g}")
    if isinstance(value, list):
        return _esc(" x ".join(str(v) for v in value))
    return _esc(value)


def _nice_tick(duration: float) -> float:
    raw = duration / 8 if duration > 0 else 1
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * magnitude >= raw:
            return step * magnitude
    return 10 * magnitude


def _segments(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Merge sorted appearance times closer than ``gap`` into ``(start, end)`` runs."""
    runs: list[list[float]] = []
    for t in sorted(times):
        if runs and t - runs[-1][1] <= gap * 1.01:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return [(a, b) for a, b in runs]


def _timeline(
    times: list[float], duration: float, step_s: float, color: str, lost: list[tuple[float, float]]
) -> str:
    """An inline SVG strip across the whole video with a mark at every appearance."""
    scale = TIMELINE_W / duration if duration > 0 else 0
    parts = [
        f'<svg class=tl viewBox="0 0 {TIMELINE_W} 20" preserveAspectRatio="none" '
        f'role="img" aria-label="appearances over time">',
        f'<rect width="{TIMELINE_W}" height="20" fill="#eef1f5"/>',
    ]
    if duration > 0:
        tick = _nice_tick(duration)
        for k in range(1, int(duration / tick) + 1):
            x = k * tick * scale
            if x < TIMELINE_W - 1:
                parts.append(f'<rect x="{x:.2f}" width="1" height="20" fill="#dde2ea"/>')
    for a, b in lost:
        parts.append(
            f'<rect x="{a * scale:.2f}" width="{max((b - a) * scale, 2):.2f}" height="20" fill="#f6c9c9"/>'
        )
    for a, b in _segments(times, step_s):
        width = max((b - a + step_s) * scale, 2.0)
        parts.append(
            f'<rect class=mark x="{a * scale:.2f}" y="2" width="{width:.2f}" height="16" fill="{color}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _axis(duration: float) -> str:
    """Time labels for the strips, aligned with them (same columns as a card)."""
    if duration <= 0:
        return ""
    tick = _nice_tick(duration)
    labels = []
    for k in range(int(duration / tick) + 1):
        t = k * tick
        if t > duration * 0.93 and k:
            break  # leave room for the end label
        labels.append(f'<span style="left:{100 * t / duration:.3f}%">{_fmt_tick(t, duration)}</span>')
    labels.append(f'<span class=end style="left:100%">{fmt_time(duration)}</span>')
    return f'<div class=axisrow aria-hidden="true"><div></div><div class=axis>{"".join(labels)}</div></div>'


# -- the page ----------------------------------------------------------------------------

CSS = """
:root{--ink:#1d2330;--muted:#6b7385;--line:#e3e7ee;--bg:#f6f7f9;--card:#fff;--accent:#3b6fd8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 28px 48px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:16px;margin:32px 0 12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.sub{color:var(--muted);margin:0 0 20px;word-break:break-all}
.muted{color:var(--muted)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.tile b{display:block;font-size:24px;line-height:1.2}
.tile span{color:var(--muted);font-size:12px}
.funnel{display:flex;flex-wrap:wrap;align-items:stretch;gap:6px}
.stage{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px;min-width:92px}
.stage b{display:block;font-size:18px}
.stage span{font-size:12px;color:var(--muted)}
.stage.warn{border-color:#e6a0a0;background:#fff4f4}
.arrow{align-self:center;color:#b3bac7;font-size:18px}
.banner{border-radius:8px;padding:10px 14px;margin:16px 0;border:1px solid}
.banner.bad{background:#fff4f4;border-color:#e6a0a0;color:#8a1f1f}
.banner.note{background:#fffaf0;border-color:#ecd39b;color:#6d5213}
.ids{display:flex;flex-direction:column;gap:12px}
.id,.axisrow{display:grid;grid-template-columns:466px 1fr;gap:0 20px;align-items:center}
.id{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--c);border-radius:10px;
 padding:12px 16px}
.axisrow{padding:0 17px 0 23px;margin-bottom:4px}
.crops{display:flex;gap:6px}
.crops img,.ph{width:112px;height:112px;border-radius:8px;display:block;object-fit:cover;background:#dde2ea}
.ph.wide{width:100%}
.ph{display:flex;align-items:center;justify-content:center;text-align:center;color:var(--muted);
 font-size:11px;padding:8px;border:1px dashed #c3cad6;background:#f1f3f7}
.who{display:flex;align-items:baseline;gap:10px;flex-wrap:wrap}
.who h3{margin:0;font-size:18px}
.dot{display:inline-block;width:12px;height:12px;border-radius:50%;background:var(--c);margin-right:6px}
.big{font-size:22px;font-weight:650}
.facts{color:var(--muted);margin:0 0 10px;font-size:13px}
.tl{display:block;width:100%;height:20px;border-radius:4px}
.axis{position:relative;height:16px;font-size:11px;color:var(--muted)}
.axis span{position:absolute;transform:translateX(-50%);white-space:nowrap}
.axis span:first-child{transform:none}
.axis span.end{transform:translateX(-100%);font-weight:600}
.legend{font-size:12px;color:var(--muted);margin:-4px 0 10px}
.legend i{display:inline-block;width:10px;height:10px;vertical-align:-1px;margin:0 4px 0 10px;
 border-radius:2px}
.empty{background:var(--card);border:1px dashed #c3cad6;border-radius:10px;padding:28px;text-align:center}
.empty b{font-size:18px;display:block;margin-bottom:6px}
table{border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:10px;
 overflow:hidden;width:100%}
td{padding:5px 12px;height:31px;border-bottom:1px solid var(--line);vertical-align:middle}
td:first-child{color:var(--muted);width:38%;font-size:12px;
 font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:20px;align-items:start}
footer{margin-top:28px;color:var(--muted);font-size:12px}
@media (max-width:860px){.id{grid-template-columns:1fr;gap:10px}.axisrow{display:none}
 .cols{grid-template-columns:1fr}}
"""

# Marks the page once loaded: ``<body data-images-ok="LOADED/TOTAL">`` (read by tests and
# handy in devtools), and swaps a crop that failed to decode for its placeholder text.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images), ok = 0;
  imgs.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok++; return; }
    var ph = document.createElement("div");
    ph.className = "ph";
    ph.textContent = "crop unreadable";
    img.parentNode.replaceChild(ph, img);
  });
  document.body.setAttribute("data-images-ok", ok + "/" + imgs.length);
});
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _identity_card(
    ident: _Identity, rank: int, frame_step: int, fps: float, duration: float, lost: list[tuple[float, float]]
) -> str:
    step_s = frame_step / fps
    screen = ident.count * step_s
    share = screen / duration if duration > 0 else 0.0
    times = [float(f.get("time_s", f["frame"] / fps)) for f in ident.faces]
    crops = []
    if ident.crops and not any(uri for _, uri in ident.crops):
        ident_crops: list[tuple[dict[str, Any], str | None]] = []
        crops.append("<div class='ph wide'>no face crops: the video could not be read</div>")
    else:
        ident_crops = ident.crops
    for face, uri in ident_crops:
        title = (
            f"frame {face['frame']} at {fmt_time(face['frame'] / fps)}, "
            f"score {float(face.get('det_score') or 0):.2f}"
        )
        if uri:
            crops.append(f'<img src="{uri}" alt="identity {ident.id}, {_esc(title)}" title="{_esc(title)}">')
        else:
            crops.append(f'<div class=ph title="{_esc(title)}">no crop<br>(video unavailable)</div>')
    if not crops:
        crops.append("<div class=ph>no crop</div>")
    first = fmt_time(min(times)) if times else "-"
    last = fmt_time(max(times)) if times else "-"
    sims = [f["similarity"] for f in ident.faces if f.get("similarity") is not None]
    sim_text = f" &middot; mean match similarity {sum(sims) / len(sims):.2f}" if sims else ""
    faces_text = "1 face" if ident.count == 1 else f"{ident.count:,} faces"
    return f"""
<section class=id style="--c:{ident.color}" data-identity="{ident.id}">
  <div class=crops>{"".join(crops)}</div>
  <div>
    <div class=who><h3><span class=dot></span>Person {rank}</h3>
      <span class=muted>identity {ident.id} &middot; {faces_text}</span></div>
    <div><span class=big>{fmt_time(screen)}</span> on screen
      <span class=muted>&middot; {min(100.0, 100 * share):.1f}% of the video</span></div>
    <div class=facts>first seen at {first}, last at {last}{sim_text}</div>
    {_timeline(times, duration, step_s, ident.color, lost)}
  </div>
</section>"""


def render_report(
    summary: dict[str, Any],
    faces: list[dict[str, Any]],
    identities: list[_Identity],
    video_note: str | None,
) -> str:
    """The page's HTML from the run's figures and identities (crops already attached)."""
    params = summary.get("params") or {}
    fps = float(params.get("fps") or 25.0)
    frame_step = int(params.get("frame_step") or 1)
    last_frame = max((int(f["frame"]) for f in faces), default=-1)
    frame_count = int(params.get("frame_count") or last_frame + 1 or 0)
    duration = frame_count / fps if fps > 0 else 0.0
    video = summary.get("video") or params.get("video") or "?"
    name = Path(str(video)).name
    n_ids = len(identities)
    n_faces = len(faces)
    lost = [
        (int(f["frames"][0]) / fps, int(f["frames"][1]) / fps)
        for f in summary.get("failed_chunks") or []
        if f.get("frames")
    ]

    people = "1 person" if n_ids == 1 else f"{n_ids} people"
    headline = f"No faces found in {name}" if not n_ids else f"{people} found in {name}"
    size = f"{params['width']}x{params['height']}, " if params.get("width") else ""
    sub = (
        f"{_esc(video)} &middot; {fmt_time(duration)} long ({size}{fps:.2f} fps, "
        f"{frame_count:,} frames) &middot; run {_esc(summary.get('run_id', '?'))}"
    )
    sampled = summary.get("frames_sampled", 0)
    tiles = [
        (f"{n_ids:,}", "people (identities)"),
        (f"{n_faces:,}", "faces embedded"),
        (fmt_time(duration), "video duration"),
        (f"{sampled:,}", f"frames sampled (1 in {frame_step})"),
        (f"{float(summary.get('elapsed_s') or 0):.1f} s", "processing time"),
    ]
    tiles_html = "".join(f"<div class=tile><b>{v}</b><span>{_esc(k)}</span></div>" for v, k in tiles)

    stages = [
        ("frames in video", frame_count, False),
        ("frames read", summary.get("frames_read", 0), False),
        ("sampled", sampled, False),
        ("blurry (skipped)", summary.get("frames_blurry", 0), False),
        ("lost", summary.get("frames_lost", 0), bool(summary.get("frames_lost"))),
        ("faces detected", summary.get("faces_detected", 0), False),
        ("embedded", summary.get("faces_embedded", 0), False),
        ("identities", summary.get("identities", n_ids), False),
    ]
    funnel = '<span class=arrow aria-hidden="true">&rsaquo;</span>'.join(
        f'<div class="stage{" warn" if warn else ""}"><b>{_fmt_num(v)}</b><span>{_esc(k)}</span></div>'
        for k, v, warn in stages
    )

    banners = []
    failed = summary.get("failed_chunks") or []
    if failed:
        ranges = ", ".join(
            f"frames {f['frames'][0]}-{f['frames'][1] - 1} ({fmt_time(f['frames'][0] / fps)}-"
            f"{fmt_time(f['frames'][1] / fps)}): {_esc(f.get('reason', '?'))}"
            for f in failed
        )
        banners.append(
            f"<div class='banner bad'><b>{len(failed)} chunk(s) lost</b> "
            f"({summary.get('frames_lost', 0)} sampled frames); faces there are missing, shown in "
            f"red on the timelines. {ranges}</div>"
        )
    if video_note and n_ids:
        banners.append(
            f"<div class='banner note'><b>Face crops not shown:</b> {_esc(video_note)}. Put the video "
            f"back at that path and rebuild the report to see them.</div>"
        )

    if identities:
        legend = (
            "<div class=legend>Most screen time first. Each strip spans the whole video; a coloured "
            "mark is a stretch where that person's face was found"
            + ("; <i style='background:#f6c9c9'></i>lost frames (not searched)" if lost else "")
            + "</div>"
        )
        cards = "".join(
            _identity_card(ident, rank, frame_step, fps, duration, lost)
            for rank, ident in enumerate(identities, 1)
        )
        body = f"{legend}{_axis(duration)}<div class=ids>{cards}</div>"
    else:
        body = (
            "<div class=empty><b>No faces were found in this video.</b>"
            f"<span class=muted>{sampled:,} sampled frames were searched "
            f"(detection threshold {_fmt_param(params.get('det_thresh'))}, faces narrower than "
            f"{_fmt_param(params.get('min_face'))} px ignored).</span></div>"
        )

    shown = [(k, v) for k, v in params.items() if k != "video"]
    half = (len(shown) + 1) // 2
    tables = "".join(
        "<table>"
        + "".join(f"<tr><td>{_esc(k)}</td><td>{_fmt_param(v)}</td></tr>" for k, v in part)
        + "</table>"
        for part in (shown[:half], shown[half:])
    )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>facepipe: {_esc(headline)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{_esc(headline)}</h1>
<p class=sub>{sub}</p>
<div class=tiles>{tiles_html}</div>
{"".join(banners)}
<h2>Pipeline</h2>
<div class=funnel>{funnel}</div>
<h2>Who is on screen, and when</h2>
{body}
<h2>Parameters</h2>
<div class=cols>{tables}</div>
<footer>facepipe report &middot; screen time = faces &times; frame step / fps &middot;
outputs next to this file: summary.json, faces.jsonl</footer>
</main>
<script>{SCRIPT}</script>
</body></html>
"""


def build_report(out_dir: Path, video_path: str | None = None) -> Path:
    """Write ``out_dir/report.html`` from the run's outputs and return its path.

    ``video_path`` overrides the video recorded in ``summary.json`` (e.g. after moving
    it). A video that cannot be read gives placeholders instead of crops.
    """
    out_dir = Path(out_dir)
    summary, faces = _read_outputs(out_dir)
    counts = {int(k): int(v) for k, v in (summary.get("counts") or {}).items()}
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for face in faces:
        grouped[int(face["identity"])].append(face)
    ids = set(counts) | set(grouped)
    identities = sorted(
        (_Identity(i, counts.get(i, len(grouped[i])), grouped[i]) for i in ids),
        key=lambda ident: (-ident.count, ident.id),
    )
    picks = {
        ident.id: pick_faces(ident.faces, CROPS_PER_IDENTITY if rank < FULL_CROP_IDENTITIES else 1)
        for rank, ident in enumerate(identities)
    }
    video = video_path or summary.get("video") or (summary.get("params") or {}).get("video")
    crops, note = _read_crops(video, [f for chosen in picks.values() for f in chosen])
    for ident in identities:
        ident.crops = [(face, crops.get(id(face))) for face in picks[ident.id]]
    page = render_report(summary, faces, identities, note)
    target = out_dir / REPORT_FILE
    partial = out_dir / (REPORT_FILE + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)
    return target


def report_command(target: str) -> int:
    """``facepipe report OUT_DIR``: rebuild ``report.html`` for a finished run's output folder."""
    path = build_report(Path(target))
    print(f"report: {path}")
    return 0
