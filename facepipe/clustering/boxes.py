"""Box geometry: the one IoU (intersection over union) of face boxes ``x1, y1, x2, y2``.

Tracks link faces whose boxes overlap (:mod:`facepipe.clustering.tracks`); labels are matched
to a run's faces the same way (:func:`facepipe.clustering.evaluate.match_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4); boxes x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes."""
    return float(iou_matrix(np.asarray(a[:4]), np.asarray(b[:4]))[0, 0])
