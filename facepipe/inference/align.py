"""Align detected faces to the 112x112 crops ArcFace sees, and encode crops for the wire.

The alignment is InsightFace's ``norm_crop`` (the five landmarks mapped onto ArcFace's template
by a least-squares similarity, then one ``warpAffine``) without scikit-image: InsightFace builds a
``skimage.transform.SimilarityTransform`` per face, whose machinery costs more than the algorithm
and the warp together. :func:`umeyama` is scikit-image's ``_umeyama`` for 2-D points, the same
numpy calls in the same order, so matrices and crops are bit-identical to ``norm_crop``'s
(``tests/test_models.py`` holds them to it). ``cv2.estimateAffinePartial2D`` would not be: it is
a robust estimator with a refinement step, and its matrices differ in the last bits.

Crops travel from the detect worker to the embed worker as PNG inside JSON (base64).
PNG is lossless, so the embedding a distributed run computes is bit-for-bit the
embedding a single process computes from the same pixels (JPEG would shift
similarities near the threshold and change identities), and it is about half the
size of raw pixels (~20 KB against 37 KB for 112x112x3).
"""

from __future__ import annotations

import cv2
import numpy as np

from facepipe.inference.detector import Detection
from facepipe.media.images import decode_image, encode_png, from_base64, square_crop, to_base64

CROP_SIZE = 112
#: InsightFace's ArcFace template: where the five landmarks go in a 112x112 crop
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
_EPS = np.finfo(float).eps


def align(frame: np.ndarray, face: Detection) -> np.ndarray:
    """The 112x112 ArcFace crop: 5-point ``norm_crop``, or a square box crop without landmarks."""
    if face.kps is not None:
        return norm_crop(frame, face.kps)
    return square_crop(frame, face.bbox, CROP_SIZE)


def norm_crop(frame: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """InsightFace's ``face_align.norm_crop`` (arcface mode), bit for bit, without scikit-image."""
    if size % 112 == 0:
        ratio, shift = size / 112.0, 0.0
    else:
        ratio, shift = size / 128.0, 8.0 * size / 128.0
    template = ARCFACE_TEMPLATE * ratio
    template[:, 0] += shift
    matrix = umeyama(landmarks, template)[0:2, :]
    return cv2.warpAffine(frame, matrix, (size, size), borderValue=0.0)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 similarity (rotation, uniform scale, translation) mapping 2-D points ``src`` onto
    ``dst`` in the least-squares sense (Umeyama 1991): scikit-image 0.26's ``_umeyama(src, dst,
    estimate_scale=True)``, the same operations in the same order and dtypes."""
    src, dst = np.asarray(src), np.asarray(dst)
    num, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / num
    d = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1, dtype=np.float64)
    u, s, v = np.linalg.svd(a)
    rank = np.count_nonzero(s.max() * max(a.shape) * _EPS < s)
    if rank == 0:
        return np.nan * t
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(v) > 0:
            t[:dim, :dim] = u @ v
        else:
            keep = d[dim - 1]
            d[dim - 1] = -1
            t[:dim, :dim] = u @ np.diag(d) @ v
            d[dim - 1] = keep
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


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
