"""``facepipe eval``: score a finished run's output folder against labelled faces.

The metrics are :mod:`facepipe.clustering.evaluate`'s; this module reads the run's
``faces.jsonl`` (or ``bank.npz``) and the labels file, and prints the scores.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from facepipe.app.summary import Summary
from facepipe.clustering.evaluate import evaluate, match_labels
from facepipe.errors import FacepipeError


def load_run_faces(out_dir: str | Path) -> list[dict[str, Any]]:
    """The faces of a finished run (``faces.jsonl``, in applied order), or from ``bank.npz``."""
    out_dir = Path(out_dir)
    jsonl = out_dir / "faces.jsonl"
    if jsonl.is_file():
        return [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    with np.load(out_dir / "bank.npz", allow_pickle=False) as data:
        return [
            {"frame": int(f), "bbox": [float(v) for v in b], "identity": int(i)}
            for f, b, i in zip(data["face_frames"], data["face_bboxes"], data["face_identities"], strict=True)
        ]


def evaluate_run(
    out_dir: str | Path,
    labels: str | Path | Sequence[Hashable | None] | Sequence[Mapping[str, Any]],
    mapping: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """Score a finished run's output folder against ground truth.

    ``labels`` is either a sequence with one label per line of ``faces.jsonl`` (``None`` =
    unknown), or a sequence of ``{"frame", "bbox", "label"}`` dicts (or the path of a JSON
    file holding such a list, as ``bench/labelsets.py`` writes) matched to the run's faces by
    frame and box IoU (:func:`match_labels`); then a person's true count is their labelled
    faces on the frames the run sampled, so faces the run never kept count against it too.
    ``mapping`` optionally renames identities first (for example the result of an offline
    merge pass).
    """
    faces = load_run_faces(out_dir)
    if isinstance(labels, (str, Path)):
        labels = json.loads(Path(labels).read_text())
    labels = list(labels)
    labelled = None
    if labels and isinstance(labels[0], Mapping):
        truth = match_labels(faces, labels)
        step = _frame_step(Path(out_dir))
        labelled = Counter(
            item["label"] for item in labels if item.get("label") and int(item["frame"]) % step == 0
        )
    else:
        truth = labels
    predicted = [f["identity"] for f in faces]
    if mapping:
        predicted = [mapping.get(p, p) for p in predicted]
    return evaluate(predicted, truth, labelled)


def _frame_step(out_dir: Path) -> int:
    """The run's frame step (its summary's, else 1: every labelled frame was sampled)."""
    path = out_dir / "summary.json"
    return Summary.read(path).frame_step if path.is_file() else 1


def eval_command(out_dir: str, labels: str) -> int:
    """``facepipe eval``: print the scores of a finished run as JSON."""
    if not (Path(out_dir) / "faces.jsonl").is_file():
        raise FacepipeError(f"{out_dir} has no faces.jsonl (pass the --out folder of a finished run)")
    if not Path(labels).is_file():
        raise FacepipeError(f"labels file not found: {labels}")
    try:
        scores = evaluate_run(out_dir, labels)
    except (ValueError, KeyError, TypeError) as exc:
        raise FacepipeError(f"cannot score {out_dir} against {labels}: {exc}") from None
    print(orjson.dumps(scores, option=orjson.OPT_INDENT_2).decode())
    return 0
