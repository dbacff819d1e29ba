"""SCRFD (det_500m): faces in a frame, with their boxes, scores and five landmarks.

InsightFace's ``SCRFD`` does the pre-processing, the network call and the NMS. Its
``forward`` decodes the boxes and landmarks of *every* anchor (10,080 at 640x384) before
keeping the few above the score threshold; :func:`_forward` does the same element-wise
operations on the kept anchors only, so boxes and landmarks are the same float32 values, bit
for bit, at 1.3 ms less per frame (``tests/test_models.py`` holds the two to each other).
"""

from __future__ import annotations

import types
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
        net.forward = types.MethodType(_forward, net)  # the kept anchors only: the same results
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


def _anchor_centers(net: Any, height: int, width: int, stride: int) -> np.ndarray:
    """The anchor centres of one stride's feature map, cached on the net as InsightFace caches them."""
    key = (height, width, stride)
    centers = net.center_cache.get(key)
    if centers is None:
        centers = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
        centers = (centers * stride).reshape((-1, 2))
        if net._num_anchors > 1:
            centers = np.stack([centers] * net._num_anchors, axis=1).reshape((-1, 2))
        if len(net.center_cache) < 100:
            net.center_cache[key] = centers
    return centers


def _forward(net: Any, img: np.ndarray, threshold: float) -> tuple[list, list, list]:
    """InsightFace's ``SCRFD.forward`` with boxes and landmarks decoded for the anchors at or above
    ``threshold`` only (module docstring): per stride, (scores, boxes, landmarks) of those."""
    scores_list, bboxes_list, kpss_list = [], [], []
    blob = net._prepare_input_blob(img, tuple(img.shape[0:2][::-1]))
    outs = net._session_for_input_size(tuple(img.shape[0:2][::-1])).run(
        net.output_names, {net.input_name: blob}
    )
    height, width, fmc = blob.shape[2], blob.shape[3], net.fmc
    for idx, stride in enumerate(net._feat_stride_fpn):
        scores, bbox_preds = outs[idx], outs[idx + fmc]
        kps_preds = outs[idx + fmc * 2] if net.use_kps else None
        if net.batched:
            scores, bbox_preds = scores[0], bbox_preds[0]
            kps_preds = kps_preds[0] if kps_preds is not None else None
        points_all = _anchor_centers(net, height // stride, width // stride, stride)
        kept = np.where(scores >= threshold)[0]
        points = points_all[kept]
        distance = bbox_preds[kept] * stride
        boxes = np.stack(
            [
                points[:, 0] - distance[:, 0],
                points[:, 1] - distance[:, 1],
                points[:, 0] + distance[:, 2],
                points[:, 1] + distance[:, 3],
            ],
            axis=-1,
        )
        scores_list.append(scores[kept])
        bboxes_list.append(boxes)
        if kps_preds is not None:
            kd = kps_preds[kept] * stride
            coords = []
            for i in range(0, kd.shape[1], 2):
                coords.append(points[:, i % 2] + kd[:, i])
                coords.append(points[:, i % 2 + 1] + kd[:, i + 1])
            kpss = np.stack(coords, axis=-1)
            kpss_list.append(kpss.reshape((kpss.shape[0], kd.shape[1] // 2, 2)))
    return scores_list, bboxes_list, kpss_list
