"""A private server plus hand-managed workers, for tests that crash and restart things."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facepipe.dispatch import new_run_id, submit
from facepipe.embedded import EmbeddedServer, EmbeddedWorkers
from facepipe.settings import Settings
from facepipe.store import RunStore, connect
from facepipe.video import probe
from tests.helpers import ROOT

FAST_RECOVERY = {
    "FACEPIPE_ORT_THREADS": "1",
    "FACEPIPE_VISIBILITY_TIMEOUT": "4",  # redeliver a dead worker's message after 4 s
    "FACEPIPE_RESTORE_INTERVAL": "1",
}


class Cluster:
    """Server + named workers. ``run`` submits a video and waits, calling ``on_tick`` meanwhile."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="fp-cluster-"))
        self.server = EmbeddedServer(self.tmp)
        self.server.start()
        self.env = {**FAST_RECOVERY, **(env or {})}
        self.workers = EmbeddedWorkers(self.server.url, ROOT, self.tmp / "logs", "fault")
        self.client = connect(self.server.url)

    def start(self, name: str, queue: str, procs: int = 1, **env: str) -> None:
        self.workers.start_one(name, queue, procs, {**self.env, **env})

    def start_all(self) -> None:
        for queue in ("detect", "embed", "writer"):
            self.start(queue, queue)

    def run(
        self,
        video: Path,
        settings: Settings,
        send: Callable[[str, tuple[Any, ...]], None] | None = None,
        on_tick: Callable[[RunStore], None] | None = None,
        timeout: float = 120,
    ) -> RunStore:
        from facepipe.runner import celery_sender

        store = RunStore(self.client, "fp", new_run_id())
        chunks = submit(store, probe(video), settings, send or celery_sender(self.server.url))
        deadline = time.monotonic() + timeout
        while store.next_seq() < len(chunks):
            if on_tick is not None:
                on_tick(store)
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-2000:] for p in (self.tmp / "logs").glob("*.log")}
                raise AssertionError(f"run did not finish: {store.progress()} of {len(chunks)}; {logs}")
            time.sleep(0.05)
        return store

    def close(self) -> None:
        try:
            self.workers.stop()
        finally:
            self.server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def identity_table(store: RunStore) -> dict[str, Any]:
    """Everything the run decided, field by field, for exact comparison."""
    bank = store.load_bank()
    stats = store.stats()
    return {
        "identities": [
            {
                "embedding": bank.embeddings[i].tobytes(),
                "centroid": bank.centroids[i].tobytes(),
                "refine_count": bank.refine_counts[i],
                "count": bank.counts[i],
            }
            for i in range(len(bank))
        ],
        "faces": store.faces(),
        "stats": {k: stats[k] for k in ("frames_sampled", "faces_detected", "faces_embedded", "identities")},
    }


def describe(table: dict[str, Any]) -> str:
    counts = [i["count"] for i in table["identities"]]
    return f"{len(counts)} identities, counts {counts}, {table['stats']['faces_embedded']} faces"
