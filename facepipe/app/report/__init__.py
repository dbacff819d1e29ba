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
* one card per identity, most frequent first: up to :data:`THUMBNAILS_PER_IDENTITY` face
  crops, its name (once named), its face count, its screen time (``count x frame_step / fps``, also as a share
  of the video's duration ``frame_count / fps``), first and last appearance, and a
  timeline strip marking every appearance across the whole video;
* the run's parameters, and any lost frame ranges.

Where things are:

* :mod:`~facepipe.app.report.build`: reading the outputs and writing the page;
* :mod:`~facepipe.app.report.identities`: grouping and ranking identities, picking the faces to show;
* :mod:`~facepipe.app.report.thumbnails`: their thumbnails, kept by the run or cut again from
  the video (the only video decoding);
* :mod:`~facepipe.app.report.page`: the page's sections and :func:`render_report`, with the
  person cards in :mod:`~facepipe.app.report.cards` and the SVG timelines in
  :mod:`~facepipe.app.report.timeline`;
* :mod:`~facepipe.app.report.controls`: each card's review controls ("same as…", name, "not
  a face") and the panel where the page's script turns them into a ``facepipe edit`` command;
* ``assets/report.css`` and ``assets/report.js``: the inline style and script, as package data.

Only :mod:`facepipe.errors`, :mod:`facepipe.records` (a face's key),
:mod:`facepipe.media.images` and :mod:`facepipe.media.keyframes` (PyAV decoding from
keyframes) are imported from the rest of facepipe, so the report can be rebuilt wherever the
outputs are, without the pipeline.
"""

from __future__ import annotations

from facepipe.app.report.build import REPORT_FILE, build_report, read_outputs, report_command
from facepipe.app.report.formatting import fmt_time
from facepipe.app.report.identities import (
    FULL_THUMBNAIL_IDENTITIES,
    PALETTE,
    THUMBNAILS_PER_IDENTITY,
    Identity,
    pick_faces,
)
from facepipe.app.report.page import CSP, CSS, SCRIPT, render_report
from facepipe.app.report.thumbnails import GRAB_AHEAD
from facepipe.app.report.timeline import TIMELINE_W

__all__ = [
    "THUMBNAILS_PER_IDENTITY",
    "CSP",
    "CSS",
    "FULL_THUMBNAIL_IDENTITIES",
    "GRAB_AHEAD",
    "Identity",
    "PALETTE",
    "REPORT_FILE",
    "SCRIPT",
    "TIMELINE_W",
    "build_report",
    "fmt_time",
    "pick_faces",
    "read_outputs",
    "render_report",
    "report_command",
]
