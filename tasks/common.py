"""What every task needs: validated arguments, a Redis client, the run's parameters, models.

Everything here is cached per worker process, so models load once, not per task.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
from typing import Any

from facepipe.models import FaceDetector, FaceEmbedder, active_providers, resolve_model
from facepipe.settings import Settings
from facepipe.store import RunStore, connect
from tasks.celery_app import app

log = logging.getLogger("facepipe.tasks")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


class BadMessage(ValueError):
    """A task message that must be dropped (logged), never executed or retried."""


def check_ids(run_id: Any, seq: Any, prefix: Any) -> None:
    if not isinstance(run_id, str) or not _NAME.match(run_id):
        raise BadMessage(f"bad run id {run_id!r}")
    if not isinstance(prefix, str) or not re.match(r"^[A-Za-z0-9_.:-]{1,80}$", prefix):
        raise BadMessage(f"bad prefix {prefix!r}")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10_000_000:
        raise BadMessage(f"bad chunk seq {seq!r}")


@functools.lru_cache(maxsize=1)
def worker_settings() -> Settings:
    return Settings()


@functools.lru_cache(maxsize=4)
def _client(url: str):  # -> redis.Redis
    return connect(url, timeout=30)


def run_store(prefix: str, run_id: str) -> RunStore:
    """The run's store lives in the broker's Redis (under its own prefix)."""
    return RunStore(_client(app.conf.broker_url), prefix, run_id)


@functools.lru_cache(maxsize=64)
def _params(base: str, raw_meta_params: bytes) -> dict[str, Any]:
    import orjson

    return orjson.loads(raw_meta_params)


def run_params(store: RunStore) -> dict[str, Any]:
    """The run's parameters as the dispatcher recorded them (not as a message claims)."""
    raw = store.r.hget(store.key("meta"), "params")
    if raw is None:
        raise BadMessage(f"run {store.run_id} does not exist under {store.prefix}")
    return _params(store.base, raw)


@functools.lru_cache(maxsize=2)
def detector(det_model: str | None) -> FaceDetector:
    settings = worker_settings()
    path = resolve_model("detector", det_model or settings.det_model)
    model = FaceDetector(path, settings.ort_threads, settings.providers)
    log.info(
        "loaded detector %s (%d ORT threads, %s)", path, settings.ort_threads, active_providers(model.model)
    )
    return model


@functools.lru_cache(maxsize=2)
def embedder(rec_model: str | None) -> FaceEmbedder:
    settings = worker_settings()
    path = resolve_model("embedder", rec_model or settings.rec_model)
    model = FaceEmbedder(path, settings.ort_threads, settings.providers)
    log.info(
        "loaded embedder %s (%d ORT threads, %s)", path, settings.ort_threads, active_providers(model.model)
    )
    return model


def maybe_inject_fault(store: RunStore, stage: str, seq: int) -> None:
    """Test hook: SIGKILL this worker once, after the work and before the ack.

    Only active when ``FACEPIPE_FAULT_INJECT`` lists ``stage:seq`` (e.g. ``write:3``);
    a Redis marker makes it fire once per run even though the message is redelivered.
    It exists so the fault tests can crash a worker at an exact point with a real signal.
    """
    spec = os.environ.get("FACEPIPE_FAULT_INJECT")
    if not spec or f"{stage}:{seq}" not in spec.split(","):
        return
    if store.r.set(store.key(f"fault:{stage}:{seq}"), 1, nx=True):
        log.warning("fault injection: SIGKILL in %s of chunk %d (after work, before ack)", stage, seq)
        os.kill(os.getpid(), signal.SIGKILL)
