"""The one module of facepipe that knows Celery: the app, the sender, the worker command.

The library hands messages to stages through a ``send(stage, message)`` function
(:data:`facepipe.distributed.stages.Send`); this module makes that function from a broker URL.
``tasks/celery_app.py`` builds the workers' app with :func:`make_app` too, so senders and
workers share one configuration (``celeryconfig.py``) and one set of routes
(:mod:`facepipe.distributed.stages`). Nothing here imports ``tasks``: messages are addressed by
task name.
"""

from __future__ import annotations

import sys

from celery import Celery

from facepipe.distributed.messages import TaskMessage
from facepipe.distributed.stages import Stage


def make_app() -> Celery:
    """A Celery app configured from ``celeryconfig.py`` (itself from the worker settings)."""
    app = Celery("facepipe")
    app.config_from_object("celeryconfig")
    return app


class CelerySender:
    """``send(stage, message)`` over a connection to ``broker_url``.

    Each sender has its own connection, so one process can talk to several brokers
    (tests do). The message travels as one JSON object, the task's only argument.
    """

    def __init__(self, broker_url: str, app: Celery | None = None) -> None:
        self.app = app or make_app()
        self.connection = self.app.connection_for_write(broker_url)

    def __call__(self, stage: Stage, message: TaskMessage) -> None:
        self.app.send_task(stage.task, args=(message.payload(),), connection=self.connection)

    def close(self) -> None:
        self.connection.release()


def worker_command(queue: str, procs: int, node_name: str, loglevel: str = "WARNING") -> list[str]:
    """The ``celery worker`` command line for one queue (the same one users run by hand).

    One process runs in the solo pool (no idle pool parent: ~1.3 CPU s and 100 MB a run
    saved); more use prefork.
    """
    return [
        sys.executable, "-m", "celery", "-A", "tasks", "worker",
        "-Q", queue,
        "-c", str(procs),
        "-P", "solo" if procs == 1 else "prefork",
        "-n", node_name,
        "--loglevel", loglevel,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
