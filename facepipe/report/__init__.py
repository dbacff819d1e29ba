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

Where things are:

* :mod:`~facepipe.report.build`: reading the outputs and writing the page;
* :mod:`~facepipe.report.identities`: grouping and ranking identities, picking the faces to crop;
* :mod:`~facepipe.report.crops`: reading those frames back from the video (the only video decoding);
* :mod:`~facepipe.report.page`: the page's sections and :func:`render_report`, with the
  person cards in :mod:`~facepipe.report.cards` and the SVG timelines in
  :mod:`~facepipe.report.timeline`;
* ``assets/report.css`` and ``assets/report.js``: the inline style and script, as package data.

Only :mod:`facepipe.errors`, :mod:`facepipe.images` and :mod:`facepipe.keyframes` (PyAV
decoding from keyframes) are imported from the rest of facepipe, so the report can be rebuilt
wherever the outputs are, without the pipeline.
"""

from __future__ import annotations

from facepipe.report.build import REPORT_FILE, build_report, read_outputs, report_command
from facepipe.report.crops import CROP_MARGIN, CROP_PX, GRAB_AHEAD, JPEG_QUALITY
from facepipe.report.formatting import fmt_time
from facepipe.report.identities import (
    CROPS_PER_IDENTITY,
    FULL_CROP_IDENTITIES,
    PALETTE,
    Identity,
    pick_faces,
)
from facepipe.report.page import CSP, CSS, SCRIPT, render_report
from facepipe.report.timeline import TIMELINE_W

__all__ = [
    "CROPS_PER_IDENTITY",
    "CROP_MARGIN",
    "CROP_PX",
    "CSP",
    "CSS",
    "FULL_CROP_IDENTITIES",
    "GRAB_AHEAD",
    "Identity",
    "JPEG_QUALITY",
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
