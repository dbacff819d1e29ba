"""The workers' Celery application, configured from ``celeryconfig.py`` (via the bridge).

Its signal handlers prepare a worker before the first task: model files named in
``FACEPIPE_PRELOAD`` are checked when the worker starts (a wrong file stops it at once,
in one log line) and loaded in each worker process, OpenCV gets one thread, and the
test-only fault injection hooks in only when ``FACEPIPE_FAULT_INJECT`` is set.
"""

from __future__ import annotations

import logging
import warnings

from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup, worker_init, worker_process_init

from facepipe.distributed.bridge import make_app
from facepipe.errors import FacepipeError
from facepipe.inference.files import check_onnx, resolve_model
from facepipe.settings import load_worker_settings

app = make_app()
log = logging.getLogger("facepipe.tasks")
_settings = load_worker_settings()

if _settings.fault_inject:
    from tasks.faults import install_fault_injection

    install_fault_injection(_settings.fault_inject)


@celeryd_after_setup.connect
def _quiet_reconnections(**_: object) -> None:
    """celeryconfig.py keeps running chunks on a lost connection deliberately (and says why);
    Celery warns about that choice on every reconnection. Filtered here, after Celery's logging
    set-up has turned its own warnings on."""
    warnings.filterwarnings("ignore", r"\s*In Celery 5\.1 we introduced", CPendingDeprecationWarning)


@worker_init.connect
def _check_models(**_: object) -> None:
    """Stop a worker whose preloaded model file is missing or wrong, before it takes work."""
    for kind in sorted(_settings.preloaded()):
        explicit = _settings.det_model if kind == "detector" else _settings.rec_model
        try:
            path = resolve_model(kind, explicit)
            check_onnx(path, kind, "FACEPIPE_DET_MODEL" if kind == "detector" else "FACEPIPE_REC_MODEL")
        except FacepipeError as exc:
            log.critical("cannot start: %s", exc)
            raise SystemExit(1) from None


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Load this process's models now, not during its first task; one OpenCV thread."""
    import cv2

    from tasks.base import detector, embedder

    cv2.setNumThreads(_settings.cv_threads)
    wanted = _settings.preloaded()
    try:
        # The run's backend and precision reach the embedded workers as FACEPIPE_BACKEND and
        # FACEPIPE_PRECISION, so the model loaded here is the one the tasks find cached.
        if "detector" in wanted:
            detector(None, _settings.backend, _settings.precision)
        if "embedder" in wanted:
            embedder(None, _settings.backend, _settings.precision)
    except FacepipeError as exc:  # the first task meets it again and stops the worker
        log.critical("cannot preload a model: %s", exc)
