"""Identities as the report shows them: grouped from ``faces.jsonl``, ranked, and which faces to show.

Thumbnails are chosen to be both good and representative: an identity's faces, in frame
order, are cut into up to :data:`THUMBNAILS_PER_IDENTITY` consecutive runs and the best face
of each run is taken, "best" meaning largest ``bbox area x det_score``. So a wrongly
merged identity shows its different faces instead of four near-identical neighbouring
frames.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from facepipe.app.summary import Summary

THUMBNAILS_PER_IDENTITY = 4
#: identities beyond this many (least frequent last) get a single thumbnail, to bound video reads
FULL_THUMBNAIL_IDENTITIES = 48

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
class Identity:
    """One person on the page: its faces, its count, and (once read) its thumbnails as data URIs."""

    id: int
    count: int
    faces: list[dict[str, Any]] = field(default_factory=list)
    #: ``(face, data URI or None)`` for each picked face; None where that frame could not be read
    thumbnails: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)

    @property
    def color(self) -> str:
        """Chosen by id, not rank, so a person keeps their colour when the report is rebuilt."""
        return PALETTE[self.id % len(PALETTE)]


def group_identities(summary: Summary, faces: list[dict[str, Any]]) -> list[Identity]:
    """Every identity in the summary's counts or in the faces, most frequent first (then by id).

    The summary's count wins over the number of face lines, so the page agrees with
    ``summary.json`` even if ``faces.jsonl`` was trimmed.
    """
    counts = {int(k): int(v) for k, v in summary.counts.items()}
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for face in faces:
        grouped[int(face["identity"])].append(face)
    ids = set(counts) | set(grouped)
    return sorted(
        (Identity(i, counts.get(i, len(grouped[i])), grouped[i]) for i in ids),
        key=lambda ident: (-ident.count, ident.id),
    )


def _score(face: dict[str, Any]) -> float:
    x1, y1, x2, y2 = (float(v) for v in face["bbox"][:4])
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) * float(face.get("det_score") or 0.0)


def pick_faces(faces: list[dict[str, Any]], k: int = THUMBNAILS_PER_IDENTITY) -> list[dict[str, Any]]:
    """Up to ``k`` faces spread over time: the best (area x score) of each of ``k`` consecutive runs."""
    ordered = sorted(faces, key=lambda f: f["frame"])
    k = min(k, len(ordered))
    picked = []
    for part in range(k):
        run = ordered[part * len(ordered) // k : (part + 1) * len(ordered) // k]
        picked.append(max(run, key=_score))
    return picked


def picks_by_identity(identities: list[Identity]) -> dict[int, list[dict[str, Any]]]:
    """The faces to show for each identity (ranked list in): fewer for the long tail of rare ones."""
    return {
        ident.id: pick_faces(ident.faces, THUMBNAILS_PER_IDENTITY if rank < FULL_THUMBNAIL_IDENTITIES else 1)
        for rank, ident in enumerate(identities)
    }
