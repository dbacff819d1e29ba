"""SCRFD (det_500m): faces in a frame, with their boxes, scores and five landmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facepipe.errors import ModelLoadError
from facepipe.inference.model import FaceModel
from facepipe.inference.runtimes import OpenVinoSession, scrfd_session_factory


@dataclass
class Detection:
    """One face: box [x1, y1, x2, y2], detector score and 5 landmarks (or None)."""

    bbox: np.ndarray
    score: float
    kps: np.ndarray | None


class FaceDetector(FaceModel):
    """SCRFD (det_500m). :meth:`detect` per frame."""

    kind = "detector"

    def _wrap(self, session: Any) -> Any:
        from insightface.model_zoo.scrfd import SCRFD

        if len(session.get_outputs()) < 5:
            raise ModelLoadError(f"{self.path} is not an SCRFD detector (fix --det-model)")
        # SCRFD runs every input size on a static-shape session of its own, built through
        # this factory; ONNX Runtime's is InsightFace's default.
        factory = scrfd_session_factory if isinstance(session, OpenVinoSession) else None
        net = SCRFD(model_file=str(self.path), session=session, resolution_session_factory=factory)
        # Not prepare(-1): a negative context id switches the session to the CPU, which would
        # silently drop CUDA (and OpenVINO has no providers to switch).
        net.prepare(0)
        return net

    def detect(
        self,
        frame: np.ndarray,
        input_size: tuple[int, int] = (640, 640),
        det_thresh: float = 0.7,
        nms_thresh: float = 0.4,
        min_face: int = 0,
    ) -> list[Detection]:
        """Faces in ``frame`` in the detector's order, narrower than ``min_face`` dropped."""
        net = self.load()._net
        net.nms_thresh = nms_thresh
        boxes, kpss = net.detect(frame, input_size=tuple(input_size), det_thresh=det_thresh)
        faces = []
        for i, box in enumerate(boxes):
            if box[2] - box[0] < min_face:
                continue
            kps = kpss[i] if kpss is not None else None
            faces.append(Detection(box[:4].astype(np.float32), float(box[4]), kps))
        return faces
