"""The blur gate: skip blurry frames before detection.

Variance of the Laplacian, globally or on an N x N grid of tiles. It runs before detection
so that a blurry frame costs one cheap filter instead of a network pass. The grid variant
keeps a frame when enough tiles are sharp, which spares shots with a sharp face in front of
a soft (bokeh) background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlurGate:
    """Decides whether a frame is sharp enough to run detection on."""

    var_thresh: float = 120.0
    grid: int = 0
    grid_min_keep: float = 0.25
    resize: int = 0

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if self.resize:
            longest = max(gray.shape[:2])
            if longest > self.resize:
                scale = self.resize / longest
                gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return gray

    def score(self, frame: np.ndarray) -> float:
        """Global sharpness: the variance of the Laplacian of the grey image."""
        return laplacian_variance(self._gray(frame))

    def tile_scores(self, frame: np.ndarray) -> np.ndarray:
        """Sharpness of each tile of an ``grid x grid`` split (row-major)."""
        gray = self._gray(frame)
        lap = cv2.Laplacian(gray, cv2.CV_64F)
        rows = np.array_split(np.arange(gray.shape[0]), self.grid)
        cols = np.array_split(np.arange(gray.shape[1]), self.grid)
        return np.array([lap[r[0] : r[-1] + 1, c[0] : c[-1] + 1].var() for r in rows for c in cols])

    def is_sharp(self, frame: np.ndarray) -> bool:
        if self.grid <= 1:
            return self.score(frame) >= self.var_thresh
        sharp_share = float(np.mean(self.tile_scores(frame) >= self.var_thresh))
        return sharp_share >= self.grid_min_keep


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian response (higher = more edges = sharper)."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
