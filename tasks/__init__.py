"""facepipe's Celery app and its three thin tasks: ``celery -A tasks worker -Q detect|embed|writer``."""

from tasks import detect, embed, write  # noqa: F401  (registers the tasks)
from tasks.celery_app import app

__all__ = ["app"]
