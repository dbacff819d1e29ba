"""Two runs' faces compared: face by face, and, where detections differ, by face-level agreement.

Each run leaves ``columns.json`` (frames, identities and boxes of its faces, in order) in its
folder (:mod:`harness.contenders`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def compare(a_dir: Path, b_dir: Path) -> dict[str, Any]:
    """B's faces against A's: face by face (same frames, same identities in order), and, for runs
    whose detections differ (another detector input or precision), matched by frame and box."""
    a = json.loads((a_dir / "columns.json").read_text())
    b = json.loads((b_dir / "columns.json").read_text())
    same_frames = a["frames"] == b["frames"]
    mismatches = [i for i, (x, y) in enumerate(zip(a["identities"], b["identities"], strict=False)) if x != y]
    identical = same_frames and not mismatches and len(a["identities"]) == len(b["identities"])
    first = mismatches[0] if mismatches else None
    result = {
        "identical": identical,
        "faces_a": len(a["identities"]),
        "faces_b": len(b["identities"]),
        "same_face_frames": same_frames,
        "identity_mismatches": len(mismatches),
        "first_mismatch": None if first is None else {"face": first, "frame": a["frames"][first]},
    }
    if a.get("bboxes") and b.get("bboxes"):
        result.update(agreement(a, b))
    return result


def agreement(a: dict[str, list], b: dict[str, list], min_iou: float = 0.5) -> dict[str, Any]:
    """Face-level agreement of two runs that may have found slightly different faces.

    Faces are paired by frame and box (IoU >= ``min_iou``, best first); B's identities are
    mapped one-to-one onto A's so as to agree on the most paired faces (Hungarian assignment).
    ``face_agreement`` = paired faces whose identities correspond / faces in the larger run (an
    unpaired face counts as a disagreement); ``bcubed_f`` scores B's identities with A's as
    the truth over the paired faces (facepipe.clustering.evaluate).
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from facepipe.clustering.boxes import box_iou
    from facepipe.clustering.evaluate import bcubed_scores

    by_frame: dict[int, list[int]] = defaultdict(list)
    for j, frame in enumerate(b["frames"]):
        by_frame[frame].append(j)
    pairs: list[tuple[int, int]] = []
    a_by_frame: dict[int, list[int]] = defaultdict(list)
    for i, frame in enumerate(a["frames"]):
        a_by_frame[frame].append(i)
    for frame, a_faces in a_by_frame.items():
        candidates = sorted(
            (
                (box_iou(a["bboxes"][i], b["bboxes"][j]), i, j)
                for i in a_faces
                for j in by_frame.get(frame, ())
            ),
            reverse=True,
        )
        used_a, used_b = set(), set()
        for iou, i, j in candidates:
            if iou < min_iou:
                break
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                pairs.append((i, j))
    ids_a = sorted({a["identities"][i] for i, _ in pairs})
    ids_b = sorted({b["identities"][j] for _, j in pairs})
    table = np.zeros((len(ids_b), len(ids_a)), dtype=np.int64)
    pos_a = {x: n for n, x in enumerate(ids_a)}
    pos_b = {x: n for n, x in enumerate(ids_b)}
    for i, j in pairs:
        table[pos_b[b["identities"][j]], pos_a[a["identities"][i]]] += 1
    rows, cols = linear_sum_assignment(-table) if table.size else ([], [])
    agreeing = int(table[rows, cols].sum()) if table.size else 0
    scores = bcubed_scores([b["identities"][j] for _, j in pairs], [a["identities"][i] for i, _ in pairs])
    larger = max(len(a["frames"]), len(b["frames"])) or 1
    return {
        "paired_faces": len(pairs),
        "face_agreement": round(agreeing / larger, 5),
        "faces_agreeing": agreeing,
        "bcubed_f_vs_a": round(scores["f1"], 5),
        "identities_a": len(set(a["identities"])),
        "identities_b": len(set(b["identities"])),
    }
