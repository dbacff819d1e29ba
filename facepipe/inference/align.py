"""Align detected faces to the 112x112 crops ArcFace sees, and encode crops for the wire.

Crops travel from the detect worker to the embed worker as PNG inside JSON (base64).
PNG is lossless, so the embedding a distributed run computes is bit-for-bit the
embedding a single process computes from the same pixels (JPEG would shift
similarities near the threshold and change identities), and it is about half the
size of raw pixels (~20 KB against 37 KB for 112x112x3).
"""

from __future__ import annotations

import warnings

import numpy as np

from facepipe.inference.detector import Detection
from facepipe.media.images import decode_image, encode_png, from_base64, square_crop, to_base64

CROP_SIZE = 112


def align(frame: np.ndarray, face: Detection) -> np.ndarray:
    """The 112x112 ArcFace crop: 5-point ``norm_crop``, or a square box crop without landmarks."""
    if face.kps is not None:
        from insightface.utils import face_align

        with warnings.catch_warnings():  # scikit-image deprecation noise inside norm_crop
            warnings.simplefilter("ignore", FutureWarning)
            return face_align.norm_crop(frame, face.kps, CROP_SIZE)
    return square_crop(frame, face.bbox, CROP_SIZE)


def encode_crop(crop: np.ndarray) -> str:
    """PNG (lossless) then base64 text, to sit in a JSON task message."""
    return to_base64(encode_png(crop))


def decode_crop(text: str) -> np.ndarray:
    """Inverse of :func:`encode_crop`; raises ValueError on anything but a 112x112 colour image."""
    try:
        crop = decode_image(from_base64(text, "crop"), "crop")
    except ValueError:
        crop = None
    if crop is None or crop.shape != (CROP_SIZE, CROP_SIZE, 3):
        raise ValueError("crop is not a 112x112 colour image")
    return crop
