"""A sampled frame's shot signature: what the writer's cut test compares between frames.

The detect worker computes it for every sampled frame it reads (also frames without faces
and frames the blur gate skips): the frame downscaled to 160x90, then

* a 16 (hue) x 4 (saturation) x 4 (value) HSV histogram, L1-normalised: the palette;
* a 32x18 grey thumbnail: the layout.

It travels as a :class:`~facepipe.records.FrameSignature`; the cut test is
:func:`facepipe.clustering.shots.is_cut`.
"""

from __future__ import annotations

import cv2
import numpy as np

from facepipe.records import HIST_BINS, THUMB_SHAPE, FrameSignature

SIGNATURE_SIZE = (160, 90)
THUMB_SIZE = (THUMB_SHAPE[1], THUMB_SHAPE[0])  # (width, height), as OpenCV takes it
HSV_BINS = (16, 4, 4)
assert HSV_BINS[0] * HSV_BINS[1] * HSV_BINS[2] == HIST_BINS


def frame_signature(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HSV histogram: 256 float32 summing to 1, grey thumbnail: 18x32 uint8) of a BGR frame."""
    small = cv2.resize(frame, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HSV_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    hist = (hist / max(float(hist.sum()), 1.0)).astype(np.float32)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return hist, thumb


def signature_of(index: int, frame: np.ndarray) -> FrameSignature:
    """Frame ``index``'s signature, ready for its chunk record."""
    return FrameSignature.of(index, *frame_signature(frame))
