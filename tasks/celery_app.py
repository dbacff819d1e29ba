"""The Celery application. Configuration comes from ``celeryconfig.py`` (itself from the env)."""

from celery import Celery
from celery.signals import worker_process_init

app = Celery("facepipe")
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Prepare each worker process before its first task, not during it.

    OpenCV gets one thread (parallelism comes from processes; its thread pool would only
    fight ONNX Runtime for the cores), and the models named in ``FACEPIPE_PRELOAD``
    ("detector", "embedder", comma-separated) are loaded now.
    """
    import os

    import cv2

    cv2.setNumThreads(int(os.environ.get("FACEPIPE_CV_THREADS", "1")))
    import insightface.model_zoo  # noqa: F401
    import onnxruntime  # noqa: F401

    from tasks import common

    wanted = {x.strip() for x in os.environ.get("FACEPIPE_PRELOAD", "").split(",") if x.strip()}
    if "detector" in wanted:
        common.detector(None)
    if "embedder" in wanted:
        common.embedder(None)
