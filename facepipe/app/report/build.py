"""Building ``report.html`` for a run's output folder: read the outputs, gather the thumbnails,
write the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from facepipe.app.files import write_atomically
from facepipe.app.report.identities import group_identities, picks_by_identity
from facepipe.app.report.page import render_report
from facepipe.app.report.thumbnails import read_thumbnails
from facepipe.app.summary import Summary
from facepipe.errors import FacepipeError

REPORT_FILE = "report.html"


def read_outputs(out_dir: Path) -> tuple[Summary, list[dict[str, Any]]]:
    """A run's ``summary.json`` and ``faces.jsonl`` lines; a one-line :class:`FacepipeError` for
    anything else."""
    summary, faces = read_json_outputs(out_dir)
    try:
        return Summary.model_validate(summary), faces
    except ValidationError as exc:
        raise FacepipeError(f"{out_dir / 'summary.json'} is not a facepipe summary ({exc})") from None


def read_json_outputs(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``summary.json`` as JSON and the ``faces.jsonl`` lines (a run's or a season's)."""
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


def build_report(
    out_dir: Path,
    video_path: str | None = None,
    kept: Callable[[list[str]], dict[str, bytes]] | None = None,
    outputs: tuple[Summary, list[dict[str, Any]]] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` from the run's outputs and return its path.

    ``video_path`` overrides the video recorded in ``summary.json`` (e.g. after moving it).
    ``kept`` looks up the face thumbnails the run kept (see
    :mod:`~facepipe.app.report.thumbnails`); the others are cut from the video, and a video that
    cannot be read gives placeholders. ``outputs`` are the summary and face lines when they are
    not (yet) in the folder: a run writes ``summary.json`` last.
    """
    out_dir = Path(out_dir)
    summary, faces = outputs if outputs is not None else read_outputs(out_dir)
    identities = group_identities(summary, faces)
    picks = picks_by_identity(identities)
    video = video_path or summary.video or summary.params.get("video")
    thumbs, note = read_thumbnails(video, [f for chosen in picks.values() for f in chosen], kept)
    for ident in identities:
        ident.thumbnails = [(face, thumbs.get(id(face))) for face in picks[ident.id]]
    target = out_dir / REPORT_FILE
    write_atomically(target, render_report(summary, faces, identities, note, out_dir).encode())
    return target


def report_command(target: str) -> int:
    """``facepipe report OUT_DIR``: rebuild ``report.html`` for a finished run's output folder."""
    path = build_report(Path(target))
    print(f"report: {path}")
    return 0
