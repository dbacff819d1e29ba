"""The inference runtimes: which one runs a model (:func:`resolve_runtime`), and its session
(:func:`make_session`).

The one place that chooses how a network runs: ONNX Runtime (CPU, or CUDA where a GPU is
present) or OpenVINO on the CPU (``--backend``), in fp32, bf16 or int8 (``--precision``).
:func:`resolve_runtime` turns the request into what runs, and says so (:class:`Runtime`), so
a run's summary can name it. Models (:mod:`facepipe.inference.model`) take any session with
ONNX Runtime's interface; :class:`OpenVinoSession` gives OpenVINO that interface.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facepipe.errors import ModelLoadError
from facepipe.settings import Backend, Precision, Providers

log = logging.getLogger(__name__)


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
    choice = str(choice).lower()
    if choice == Providers.cpu:
        return ["CPUExecutionProvider"]
    if choice == Providers.cuda:
        if "CUDAExecutionProvider" not in available:
            raise ModelLoadError(
                "--providers cuda, but this onnxruntime has no CUDA (pip install onnxruntime-gpu) "
                "or no GPU is visible; use --providers auto"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if choice not in Providers.values():
        raise ModelLoadError(f"unknown --providers {choice!r} (use {', '.join(Providers.values())})")
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# -- choosing the runtime ------------------------------------------------------------------

#: OpenVINO's names for our precisions (its INFERENCE_PRECISION_HINT); an int8 model's
#: quantized layers are int8 whatever the hint, the rest runs in f32
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@dataclass(frozen=True)
class Runtime:
    """What runs a model: backend, precision and device, resolved from the request.

    ``note`` says why it differs from what was asked (a fallback), so the run's summary can
    state it instead of hiding it.
    """

    backend: str  # 'onnxruntime' or 'openvino'
    precision: str  # 'fp32', 'bf16' or 'int8'
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
    precision: str = "auto",
    providers: str = "auto",
    *,
    strict: bool = True,
    capabilities: tuple[str, ...] | None = None,
    kind: str | None = None,
) -> Runtime:
    """Turn ``--backend``/``--precision``/``--providers`` into the :class:`Runtime` that runs
    model ``kind`` ('detector', 'embedder'; None: the embedder's choice).

    The backend: ``auto`` is ONNX Runtime with CUDA where a GPU is usable (``--providers``);
    else, on an x86-64 CPU with OpenVINO installed, the runtime measured faster for the model
    and precision (:data:`AUTO_CPU_FP32` in fp32; OpenVINO for bf16 and int8); else ONNX Runtime
    on the CPU.

    The precision (:func:`model_precision`): ``auto`` runs SCRFD in fp32 and ArcFace in bf16
    where the CPU has native bf16 (fp32 elsewhere and on a GPU), which was measured to change
    no face and no identity; ``int8`` runs ArcFace quantized (:mod:`facepipe.inference.int8`)
    and SCRFD in fp32; ``fp32`` and ``bf16`` run both models so. bf16 and int8 need OpenVINO
    on the CPU; ``bf16`` also a CPU with native bf16: where it lacks it, ``strict`` (the CLI,
    whose host is the embedded workers' host) raises a one-line error; otherwise (a remote
    worker) the model runs in fp32 and :attr:`Runtime.note` says so. ``capabilities``
    replaces :func:`cpu_capabilities` (to decide for another CPU).
    """
    if backend not in Backend.values():
        raise ModelLoadError(f"unknown --backend {backend!r} (use {', '.join(Backend.values())})")
    if precision not in Precision.values():
        raise ModelLoadError(f"unknown --precision {precision!r} (use {', '.join(Precision.values())})")
    backend = str(backend)
    if backend == "openvino" and str(providers).lower() == "cuda":
        raise ModelLoadError("--providers cuda needs --backend onnxruntime or auto (OpenVINO runs on CPUs)")
    if backend == "openvino" and not openvino_installed():
        raise ModelLoadError("--backend openvino, but OpenVINO is not installed (pip install openvino)")
    cuda = backend != "openvino" and _cuda_wanted(providers)
    caps = cpu_capabilities() if capabilities is None else capabilities
    precision = model_precision(str(precision), kind, backend, cuda, caps)
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if backend == "auto":
        if cuda or not x86 or not openvino_installed():
            backend = "onnxruntime"
        elif precision == "fp32":
            backend = AUTO_CPU_FP32.get(kind or "embedder", "openvino")
        else:
            backend = "openvino"
    if precision == "fp32":
        return Runtime(backend, "fp32", "CUDA" if cuda else "CPU")
    if backend != "openvino":
        if cuda or not openvino_installed():
            why = "a GPU was chosen (CUDA runs fp32)" if cuda else "OpenVINO is not installed"
            raise ModelLoadError(f"--precision {precision} needs OpenVINO, but {why}; use --precision fp32")
        raise ModelLoadError(
            f"--precision {precision} needs --backend openvino (or auto); use --precision fp32"
        )
    if precision == "int8" or "BF16" in caps:
        return Runtime("openvino", precision, "CPU")
    if strict:
        raise ModelLoadError(
            "--precision bf16: this CPU has no native bf16 (AVX512_BF16 or AMX); use --precision auto"
        )
    return Runtime("openvino", "fp32", "CPU", note="bf16 asked for, but this CPU has no native bf16")


def model_precision(
    precision: str, kind: str | None, backend: str, cuda: bool, capabilities: tuple[str, ...]
) -> str:
    """What ``--precision`` means for model ``kind``. ``auto``: ArcFace in bf16 where OpenVINO
    can run it natively on this CPU (measured, README "Performance": the same faces and
    identities as fp32 on every labelled clip, the TV edit and a 50-minute episode, 1.7x faster),
    else fp32; SCRFD always in fp32, its bf16 moving a few faces. ``int8``: ArcFace in int8, SCRFD
    in fp32 (an int8 SCRFD loses faces)."""
    embedder = kind != "detector"
    if precision == "auto":
        native = "BF16" in capabilities and openvino_installed() and not cuda
        return "bf16" if embedder and native and backend != "onnxruntime" else "fp32"
    if precision == "int8":
        return "int8" if embedder else "fp32"
    return precision


class _Arg:
    """An input or output as ONNX Runtime describes it (name, shape, type), for InsightFace."""

    def __init__(self, name: str, shape: list[int | str], type: str = "tensor(float)") -> None:  # noqa: A002
        self.name, self.shape, self.type = name, shape, type


class OpenVinoSession:
    """An OpenVINO model behind ONNX Runtime's session interface (``run``, ``get_inputs``,
    ``get_outputs``, ``get_providers``), which is all InsightFace's model classes use.

    OpenVINO reads the ONNX file itself. The model is compiled on first use, so a detector
    whose every call goes to a session per input size (see :func:`scrfd_session_factory`)
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


def scrfd_session_factory(model_file: str, input_size: tuple[int, int], reference: Any) -> Any:
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
        if runtime.precision == "int8":
            from facepipe.inference.int8 import int8_model  # quantized at first use, then cached

            return OpenVinoSession(int8_model(path), threads, "int8")
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
