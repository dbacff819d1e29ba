"""ArcFace (w600k_mbf): a unit 512-D embedding per aligned 112x112 face crop."""

from __future__ import annotations

from typing import Any

import numpy as np

from facepipe.errors import ModelLoadError
from facepipe.inference.model import FaceModel
from facepipe.records import DIM


class FaceEmbedder(FaceModel):
    """ArcFace (w600k_mbf). :meth:`embed` takes a batch of 112x112 crops."""

    kind = "embedder"

    def _wrap(self, session: Any) -> Any:
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        if len(session.get_outputs()) != 1:
            raise ModelLoadError(f"{self.path} is not an ArcFace recogniser (fix --rec-model)")
        return ArcFaceONNX(model_file=str(self.path), session=session)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per crop (shape ``(n, DIM)``)."""
        return self.embed_with_norms(crops)[0]

    def embed_with_norms(self, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The unit embeddings, and the norm of each raw output before normalising: ArcFace's
        certainty (sharp frontal faces ~20-25; profiles, blur and darkness lower)."""
        if not crops:
            return np.zeros((0, DIM), dtype=np.float32), np.zeros(0, dtype=np.float32)
        net = self.load()._net
        feats = np.asarray(net.get_feat(crops), dtype=np.float32).reshape(len(crops), -1)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12), norms[:, 0]
