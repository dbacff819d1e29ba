"""The one module of facepipe that knows Celery: the app, the sender, the worker command.

The library hands messages to stages through a ``send(stage, message)`` function
(:data:`facepipe.distributed.stages.Send`); this module makes that function from a broker URL.
``tasks/celery_app.py`` builds the workers' app with :func:`make_app` too, so senders and
workers share one configuration (``celeryconfig.py``) and one set of routes
(:mod:`facepipe.distributed.stages`). Nothing here imports ``tasks``: messages are addressed by
task name.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from facepipe.distributed.messages import TaskMessage
from facepipe.distributed.stages import Stage
from facepipe.distributed.store import BrokerDown, BrokerFull, is_full, redact


def make_app() -> Celery:
    """A Celery app configured from ``celeryconfig.py`` (itself from the worker settings)."""
    app = Celery("facepipe")
    app.config_from_object("celeryconfig")
    return app


def tls_options(broker_url: str, ca_certs: Path | str | None) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` for a ``rediss://`` broker: the server's certificate is
    verified, against ``ca_certs`` (``FACEPIPE_TLS_CA_CERTS``) or the system's CAs; None for
    a plain broker."""
    if not broker_url.startswith("rediss://"):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca_certs) if ca_certs else None}


#: the dispatcher's own publish retries: brief, because it shows the user that it waits for the
#: broker and decides how long (:class:`facepipe.distributed.dispatch.BrokerPatience`); workers
#: wait without limit (``task_publish_retry_policy`` in ``celeryconfig.py``)
SENDER_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class CelerySender:
    """``send(stage, message)`` over a connection to ``broker_url``.

    Each sender has its own connection, so one process can talk to several brokers
    (tests do). The message travels as one JSON object, the task's only argument. A broker
    that cannot be reached after Celery's publish retries (``task_publish_retry_policy``)
    raises :class:`~facepipe.distributed.store.BrokerDown`, one that refuses the message for
    want of memory :class:`~facepipe.distributed.store.BrokerFull`: the dispatcher decides.
    """

    def __init__(
        self, broker_url: str, app: Celery | None = None, tls_ca_certs: Path | str | None = None
    ) -> None:
        self.app = app or make_app()
        self.url = broker_url
        self.connection = self.app.connection_for_write(broker_url, ssl=tls_options(broker_url, tls_ca_certs))

    def __call__(self, stage: Stage, message: TaskMessage) -> None:
        try:
            self.app.send_task(
                stage.task,
                args=(message.payload(),),
                connection=self.connection,
                retry_policy=SENDER_RETRY_POLICY,
            )
        except (
            OperationalError,
            redis.ResponseError,
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        ) as exc:
            if is_full(exc):
                raise BrokerFull(f"the broker {redact(self.url)} refused a task: {exc}") from exc
            if isinstance(exc, redis.ResponseError):
                raise
            raise BrokerDown(f"cannot send to the broker {redact(self.url)}: {exc}") from exc

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
