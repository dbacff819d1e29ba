"""The base of the two model classes: configured cheaply, loaded once, then predicts.

The wrappers follow Immich's machine-learning models: one class per model
(:class:`~facepipe.inference.detector.FaceDetector`,
:class:`~facepipe.inference.embedder.FaceEmbedder`), constructed with its configuration;
:meth:`FaceModel.load` builds the inference session once (:mod:`facepipe.inference.runtimes`
chooses it) and the predict method loads on first use.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from facepipe.inference.files import resolve_model
from facepipe.inference.runtimes import Runtime, make_session, resolve_runtime

log = logging.getLogger(__name__)


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
        precision: str = "auto",
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
        precision: str = "auto",
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
