"""The Celery application. Configuration comes from ``celeryconfig.py`` (itself from the env)."""

from celery import Celery
from celery.signals import worker_process_init

app = Celery("facepipe")
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _warm_imports(**_: object) -> None:
    """Import the heavy libraries before the first task, not during it."""
    import insightface.model_zoo  # noqa: F401
    import onnxruntime  # noqa: F401
