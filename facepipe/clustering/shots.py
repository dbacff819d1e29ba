"""Shot boundaries: the cut test between the signatures of two consecutive sampled frames.

The detect worker computes each sampled frame's signature (:mod:`facepipe.media.signature`:
an HSV histogram, the palette, and a 32x18 grey thumbnail, the layout); the writer, which
applies chunks in video order, compares each sampled frame with the one before it, across
chunk boundaries too (the previous signature is part of its state). A face track never
continues across a cut (:mod:`facepipe.clustering.tracks`).

There is a cut between ``a`` and ``b`` when the histograms' L1 distance is at least
:data:`HIST_T` (a change of palette: most cuts), or when the zero-mean normalised
cross-correlation distance of the thumbnails (area-resized to 8x5, robust to motion and to
brightness) is at least :data:`ZNCC_T` (a change of layout in one palette: two speakers in
front of one backdrop, cuts between dark frames). A flat thumbnail (a fade to black or
white) has no layout, so only the palette decides there.

Measured on the shared clips' 30 hand-found cuts: all found, 1 / 2 / 4 false cuts at frame
steps 3 / 6 / 15; on the TV edit 159 of 171 over its 9 piece orders (``bench/accuracy.py``).
The threshold leans towards recall: a false cut only ends a track early (the final pass joins its pieces),
while a missed cut matters only if a face of the new shot overlaps one of the old *and*
passes the track's embedding gate.
"""

from __future__ import annotations

import cv2
import numpy as np

HIST_T = 0.35
ZNCC_T = 0.70
#: thumbnails flatter than this (grey-level std) have no layout to correlate
FLAT_STD = 4.0


def hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    """L1 distance of two L1-normalised histograms, in [0, 2]."""
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).sum())


def zncc_distance(thumb_a: np.ndarray, thumb_b: np.ndarray) -> float | None:
    """1 - zero-mean normalised cross-correlation of the 8x5 versions of two thumbnails, in
    [0, 2]; None when either is flat (correlation means nothing there)."""
    a = cv2.resize(np.asarray(thumb_a, np.float32), (8, 5), interpolation=cv2.INTER_AREA).astype(np.float64)
    b = cv2.resize(np.asarray(thumb_b, np.float32), (8, 5), interpolation=cv2.INTER_AREA).astype(np.float64)
    a, b = a.ravel(), b.ravel()
    if a.std() < FLAT_STD or b.std() < FLAT_STD:
        return None
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    return float(1.0 - (a * b).mean())


def is_cut(hist_a: np.ndarray, thumb_a: np.ndarray, hist_b: np.ndarray, thumb_b: np.ndarray) -> bool:
    """Whether a shot boundary lies between consecutive sampled frames ``a`` and ``b``."""
    if hist_distance(hist_a, hist_b) >= HIST_T:
        return True
    z = zncc_distance(thumb_a, thumb_b)
    return z is not None and z >= ZNCC_T
